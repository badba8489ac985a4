-- Cartback's own tables (SQLite). Times are Unix milliseconds (INTEGER).

CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,           -- base64
    created_at INTEGER NOT NULL
);

CREATE TABLE webhook_events (
    shop        TEXT NOT NULL,
    webhook_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    cart_id     INTEGER,
    outcome     TEXT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (shop, webhook_id)
);
CREATE INDEX webhook_events_cart ON webhook_events (cart_id);

CREATE TABLE carts (
    id                INTEGER PRIMARY KEY,
    public_id         TEXT NOT NULL UNIQUE,
    shop              TEXT NOT NULL,
    external_id       TEXT NOT NULL,
    status            TEXT NOT NULL,
    currency          TEXT,
    total_minor       INTEGER,
    items             TEXT NOT NULL DEFAULT '[]',
    restore_url       TEXT,
    cart_locale       TEXT,
    customer_ref      TEXT,
    email             TEXT,
    phone             TEXT,
    first_name        TEXT,
    timezone          TEXT,
    timezone_source   TEXT,
    locale            TEXT,
    country           TEXT,
    orders_count      INTEGER NOT NULL DEFAULT 0,
    total_spent_minor INTEGER,
    accepts_email     BOOLEAN NOT NULL DEFAULT FALSE,
    accepts_sms       BOOLEAN NOT NULL DEFAULT FALSE,
    stage             TEXT,
    reason            TEXT,
    reason_detail     TEXT,
    last_activity_at  INTEGER NOT NULL,
    campaign          TEXT,
    abandoned_at      INTEGER,
    next_step         INTEGER NOT NULL DEFAULT 0,
    seq               INTEGER NOT NULL DEFAULT 0,
    next_run_at       INTEGER,
    exit_reason       TEXT,
    recovered_at      INTEGER,
    order_id          TEXT,
    order_total_minor INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (shop, external_id)
);
CREATE INDEX carts_contact ON carts (shop, email);
CREATE INDEX carts_phone ON carts (shop, phone);

CREATE TABLE sends (
    id           INTEGER PRIMARY KEY,
    public_id    TEXT NOT NULL UNIQUE,
    cart_id      INTEGER NOT NULL REFERENCES carts (id),
    step         TEXT NOT NULL,
    channel      TEXT NOT NULL,
    status       TEXT NOT NULL,       -- claimed | sent | skipped | failed
    reason       TEXT,
    due_at       INTEGER NOT NULL,
    claimed_at   INTEGER NOT NULL,
    completed_at INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 1,
    customer_ref TEXT,
    message_ref  TEXT,
    UNIQUE (cart_id, step, channel)
);
CREATE INDEX sends_customer ON sends (customer_ref, completed_at);

CREATE TABLE clicks (
    id         INTEGER PRIMARY KEY,
    send_id    INTEGER NOT NULL REFERENCES sends (id),
    clicked_at INTEGER NOT NULL
);
CREATE INDEX clicks_send ON clicks (send_id);

CREATE TABLE cart_log (
    id      INTEGER PRIMARY KEY,
    cart_id INTEGER NOT NULL REFERENCES carts (id),
    at      INTEGER NOT NULL,
    what    TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX cart_log_cart ON cart_log (cart_id, id);

CREATE TABLE incentives (
    id           INTEGER PRIMARY KEY,
    cart_id      INTEGER NOT NULL REFERENCES carts (id),
    step         TEXT NOT NULL,
    customer_ref TEXT,
    tier         TEXT NOT NULL,
    code         TEXT NOT NULL UNIQUE,
    offer        TEXT NOT NULL,
    issued_at    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    UNIQUE (cart_id, step)
);
CREATE INDEX incentives_customer ON incentives (customer_ref, issued_at);

CREATE TABLE suppressions (
    shop       TEXT NOT NULL,
    channel    TEXT NOT NULL,
    address    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (shop, channel, address)
);

-- apalis-sqlite 1.0 ships an index on Jobs(lock_by). Finished jobs keep their lock_by, so
-- the planner walks every finished row of a worker on each acknowledgement through it
-- (≈120 acks/s at a few thousand rows instead of ≈2,300/s). The primary key serves the ack.
DROP INDEX IF EXISTS LIdx;
