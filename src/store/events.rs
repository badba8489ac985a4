//! Received webhook deliveries: the idempotency record and the raw evidence.

use super::{StoreError, Tx, on_tx};

/// A delivery to record.
#[derive(Debug)]
pub struct EventInsert<'a> {
    /// Shop id.
    pub shop: &'a str,
    /// `webhook-id` (or the Shopify webhook id).
    pub webhook_id: &'a str,
    /// Event type as sent.
    pub kind: &'a str,
    /// `occurred_at`, Unix ms.
    pub occurred_at: i64,
    /// Arrival, Unix ms.
    pub received_at: i64,
    /// The raw body.
    pub body: &'a str,
}

impl Tx {
    /// Record a delivery; `false` when this `(shop, webhook_id)` was already taken.
    pub async fn insert_event(&mut self, e: &EventInsert<'_>) -> Result<bool, StoreError> {
        let n = on_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO webhook_events (shop, webhook_id, kind, occurred_at, received_at, outcome, body)
             VALUES ($1, $2, $3, $4, $5, 'received', $6) ON CONFLICT (shop, webhook_id) DO NOTHING",
            )
            .bind(e.shop)
            .bind(e.webhook_id)
            .bind(e.kind)
            .bind(e.occurred_at)
            .bind(e.received_at)
            .bind(e.body)
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Note what a delivery did (`applied`, `ignored: older than …`, …) and its cart.
    pub async fn set_event_outcome(
        &mut self,
        shop: &str,
        webhook_id: &str,
        cart_id: Option<i64>,
        outcome: &str,
    ) -> Result<(), StoreError> {
        on_tx!(self, |c| {
            sqlx::query("UPDATE webhook_events SET cart_id = $3, outcome = $4 WHERE shop = $1 AND webhook_id = $2")
                .bind(shop)
                .bind(webhook_id)
                .bind(cart_id)
                .bind(outcome)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// How many deliveries a shop has recorded (tests and stats).
    pub async fn count_events(&mut self, shop: &str) -> Result<i64, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM webhook_events WHERE shop = $1")
            .bind(shop)
            .fetch_one(&mut *c)
            .await?))
    }
}
