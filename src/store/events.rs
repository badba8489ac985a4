//! Received webhook deliveries: the idempotency record and the raw evidence.

use std::collections::HashSet;

use super::{Params, StoreError, Tx, on_tx, on_tx_now};

/// A delivery to record, with what it did.
#[derive(Debug)]
pub struct EventRecord<'a> {
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
    /// The cart it was applied to, if any.
    pub cart_id: Option<i64>,
    /// What it did (`active: watching for inactivity`, `ignored: …`, …).
    pub outcome: String,
    /// The raw body (invalid UTF-8, which a parsed event cannot have, is replaced).
    pub body: std::borrow::Cow<'a, str>,
}

/// Deliveries one `INSERT` writes (8 parameters each, far below either database's limit).
const EVENTS_PER_INSERT: usize = 200;

impl Tx {
    /// Which of `webhook_ids` `shop` has recorded already, in one query.
    pub async fn recorded_deliveries(
        &mut self,
        shop: &str,
        webhook_ids: &[&str],
    ) -> Result<HashSet<String>, StoreError> {
        if webhook_ids.is_empty() {
            return Ok(HashSet::new());
        }
        if let super::Inner::Postgres { tx, .. } = &mut self.inner {
            // One text whatever the number of ids: prepared once.
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT webhook_id FROM webhook_events WHERE shop = $1 AND webhook_id = ANY($2::text[])",
            )
            .bind(shop)
            .bind(webhook_ids)
            .fetch_all(&mut **tx)
            .await?;
            return Ok(rows.into_iter().collect());
        }
        let slots: Vec<String> = (2..webhook_ids.len() + 2).map(|i| format!("${i}")).collect();
        let sql =
            format!("SELECT webhook_id FROM webhook_events WHERE shop = $1 AND webhook_id IN ({})", slots.join(", "));
        // Deliveries are never among the writes a transaction holds back.
        let rows = on_tx_now!(self, |c| {
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.clone()))
                .persistent(super::keep_prepared(webhook_ids.len()))
                .bind(shop);
            for id in webhook_ids {
                q = q.bind(*id);
            }
            q.fetch_all(&mut *c).await?
        });
        Ok(rows.into_iter().collect())
    }

    /// Record deliveries, one multi-row `INSERT` per [`EVENTS_PER_INSERT`]; returns how many
    /// were new. A delivery another transaction recorded meanwhile (PostgreSQL: a second
    /// machine took the same delivery) is left as it is and not counted.
    pub async fn record_events(&mut self, events: &[EventRecord<'_>]) -> Result<u64, StoreError> {
        if let super::Inner::Postgres { tx, .. } = &mut self.inner {
            // Column by column: one text whatever the number of deliveries, prepared once.
            let n = sqlx::query(
                "INSERT INTO webhook_events (shop, webhook_id, kind, occurred_at, received_at, cart_id, outcome, body)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
                                      $7::text[], $8::text[])
                 ON CONFLICT (shop, webhook_id) DO NOTHING",
            )
            .bind(events.iter().map(|e| e.shop).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.webhook_id).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.kind).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.received_at).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.cart_id).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.outcome.as_str()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.body.as_ref()).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
            return Ok(n.rows_affected());
        }
        let mut new = 0;
        for chunk in events.chunks(EVENTS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO webhook_events (shop, webhook_id, kind, occurred_at, received_at, cart_id, outcome, body) VALUES ",
            );
            let mut p = Params::of(self);
            let rows: Vec<String> = chunk.iter().map(|_| p.row(8)).collect();
            sql.push_str(&rows.join(", "));
            sql.push_str(" ON CONFLICT (shop, webhook_id) DO NOTHING");
            new += on_tx_now!(self, |c| {
                let mut q =
                    sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).persistent(super::keep_prepared(chunk.len()));
                for e in chunk {
                    q = q
                        .bind(e.shop)
                        .bind(e.webhook_id)
                        .bind(e.kind)
                        .bind(e.occurred_at)
                        .bind(e.received_at)
                        .bind(e.cart_id)
                        .bind(e.outcome.as_str())
                        .bind(e.body.as_ref());
                }
                q.execute(&mut *c).await?.rows_affected()
            });
        }
        Ok(new)
    }

    /// How many deliveries a shop has recorded (tests and stats).
    pub async fn count_events(&mut self, shop: &str) -> Result<i64, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM webhook_events WHERE shop = $1")
            .bind(shop)
            .fetch_one(&mut *c)
            .await?))
    }
}
