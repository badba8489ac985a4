-- When a worker handed a message to a provider that cannot deduplicate (SMTP): a claim that
-- carries it and was left by a crashed worker is "in doubt" and is not sent a second time.
ALTER TABLE sends ADD COLUMN handed_at BIGINT;
