-- Events Cartback sends to shops (incentive.issued, order.expire), retried until acknowledged.
CREATE TABLE outbound_webhooks (
    id           BIGSERIAL PRIMARY KEY,
    public_id    TEXT NOT NULL UNIQUE,   -- webhook-id: the receiver deduplicates on it
    shop         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    delivered_at BIGINT,
    dead_at      BIGINT
);
CREATE INDEX outbound_webhooks_pending ON outbound_webhooks (delivered_at, dead_at, created_at);

-- A code is single-use: the order that redeemed it.
ALTER TABLE incentives ADD COLUMN redeemed_at BIGINT;
ALTER TABLE incentives ADD COLUMN redeemed_order TEXT;

-- What recovered a cart: the last step clicked before the order, the code used, the discount given.
ALTER TABLE carts ADD COLUMN recovered_step TEXT;
ALTER TABLE carts ADD COLUMN incentive_code_used TEXT;
ALTER TABLE carts ADD COLUMN discount_minor BIGINT;

-- What kind of sequence a cart runs: an abandoned cart, or an order placed but not paid.
ALTER TABLE carts ADD COLUMN kind TEXT NOT NULL DEFAULT 'cart';

-- "What stopped you?" answers from /f/{token}; the cart keeps the latest credible one.
CREATE TABLE feedback (
    id      BIGSERIAL PRIMARY KEY,
    send_id BIGINT NOT NULL REFERENCES sends (id),
    reason  TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX feedback_send ON feedback (send_id, at);
ALTER TABLE carts ADD COLUMN reported_reason TEXT;

-- A customer's orders, imported (`cartback import orders`) or seen as events, so
-- behaviour-based incentives know history from day one. One row per shop order.
CREATE TABLE customer_orders (
    id          BIGSERIAL PRIMARY KEY,
    shop        TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    customer_id TEXT,
    email       TEXT,
    phone       TEXT,
    currency    TEXT NOT NULL,
    total_minor BIGINT NOT NULL,
    placed_at   BIGINT NOT NULL,
    source      TEXT NOT NULL,   -- import | event
    UNIQUE (shop, order_id)
);
CREATE INDEX customer_orders_email ON customer_orders (shop, email);
CREATE INDEX customer_orders_phone ON customer_orders (shop, phone);
CREATE INDEX customer_orders_customer ON customer_orders (shop, customer_id);

-- One person behind several identities (shop customer id, email, phone): carts, sends and
-- incentives carry the person key in customer_ref; merging two persons re-points them.
CREATE TABLE identities (
    shop     TEXT NOT NULL,
    identity TEXT NOT NULL,   -- id:<shop customer id> | email:<lower-case> | phone:<E.164>
    person   TEXT NOT NULL,
    PRIMARY KEY (shop, identity)
);
CREATE INDEX identities_person ON identities (shop, person);
CREATE INDEX carts_shop_person ON carts (shop, customer_ref, status);
