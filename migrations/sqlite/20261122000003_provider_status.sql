-- What the SMS/email provider reported after accepting a message (status callbacks).
ALTER TABLE sends ADD COLUMN provider_status TEXT;
CREATE INDEX sends_message_ref ON sends (message_ref);
