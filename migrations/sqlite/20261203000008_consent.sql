-- Consent belongs to the person: each cart remembers when the event that set its consent
-- happened and which event it was, so the newest event that carries a customer sets the
-- consent of every open cart of theirs, and older news never overrides newer.
ALTER TABLE carts ADD COLUMN consent_at BIGINT;
ALTER TABLE carts ADD COLUMN consent_source TEXT;
UPDATE carts SET consent_at = last_activity_at;

-- Carts are found by email in its canonical form (attribution of an order by address).
CREATE INDEX carts_email_canonical ON carts (shop, lower(email));
