-- The zone chain looks up a customer's earlier carts by identity on every event.
CREATE INDEX carts_customer ON carts (shop, customer_ref, updated_at);
