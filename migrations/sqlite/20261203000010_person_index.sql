-- A person's carts are found by (shop, customer_ref). The index no longer holds updated_at,
-- which every event changes: a cart's row can then be updated in place without touching the
-- index (PostgreSQL's HOT updates), and on a table the planner has no statistics for yet the
-- two-column index is the one it picks for a person's carts.
DROP INDEX carts_customer;
CREATE INDEX carts_person ON carts (shop, customer_ref);
