-- Signed requests other than webhook deliveries (the shop-signed customer erase), remembered
-- by webhook-id so that the same signed request is carried out at most once. Rows older than
-- three times the signature's tolerance are deleted by the worker's maintenance: a replay that old
-- is refused by its timestamp.
CREATE TABLE signed_requests (
    shop        TEXT   NOT NULL,
    webhook_id  TEXT   NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (shop, webhook_id)
);
