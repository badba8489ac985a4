-- Which arm of the experiment a cart is in, kept after the cart's status moves on.
ALTER TABLE carts ADD COLUMN arm TEXT;
-- Operator switches per campaign.
CREATE TABLE campaign_state (
    name       TEXT PRIMARY KEY,
    paused     BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at BIGINT NOT NULL
);
CREATE INDEX carts_campaign ON carts (campaign, created_at);
