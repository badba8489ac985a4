//! Events Cartback sends to shops, stored before they are sent: a row exists exactly when
//! the fact it announces is committed, and stays until the shop acknowledges it.

use super::{StoreError, Tx, on_tx};

/// One outbound webhook.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
#[allow(missing_docs)]
pub struct OutboundRow {
    pub id: i64,
    pub public_id: String,
    pub shop: String,
    pub kind: String,
    pub payload: String,
    pub created_at: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
    pub dead_at: Option<i64>,
}

impl Tx {
    /// Store an outbound event; returns its row id (for the delivery job).
    pub async fn insert_outbound(
        &mut self,
        shop: &str,
        kind: &str,
        payload: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let public_id = format!("msg_{}", super::public_id());
        Ok(on_tx!(self, |c| {
            sqlx::query_scalar::<_, i64>(
            "INSERT INTO outbound_webhooks (public_id, shop, kind, payload, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id"
        )
        .bind(&public_id)
        .bind(shop)
        .bind(kind)
        .bind(payload)
        .bind(now_ms)
        .fetch_one(&mut *c)
        .await?
        }))
    }

    /// The row, if it still exists.
    pub async fn outbound(&mut self, id: i64) -> Result<Option<OutboundRow>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, OutboundRow>("SELECT * FROM outbound_webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *c)
            .await?))
    }

    /// Record one attempt: delivered, or the error (and `dead` when Cartback gives up).
    pub async fn outbound_attempt(
        &mut self,
        id: i64,
        now_ms: i64,
        error: Option<&str>,
        dead: bool,
    ) -> Result<(), StoreError> {
        on_tx!(self, |c| sqlx::query(
            "UPDATE outbound_webhooks SET attempts = attempts + 1, last_error = $3,
             delivered_at = CASE WHEN $3 IS NULL THEN $2 ELSE delivered_at END,
             dead_at = CASE WHEN $4 THEN $2 ELSE dead_at END
             WHERE id = $1"
        )
        .bind(id)
        .bind(now_ms)
        .bind(error)
        .bind(dead)
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(())
    }
}

/// Which outbound webhooks to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboundState {
    /// Not acknowledged yet, still being retried.
    Pending,
    /// Acknowledged by the shop.
    Delivered,
    /// Given up on.
    Dead,
}

impl OutboundState {
    /// Parse `pending`, `delivered`, `dead`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }
}

impl Tx {
    /// Newest first, at most `limit`.
    pub async fn list_outbound(
        &mut self,
        state: Option<OutboundState>,
        limit: i64,
    ) -> Result<Vec<OutboundRow>, StoreError> {
        let filter = match state {
            None => "",
            Some(OutboundState::Pending) => "WHERE delivered_at IS NULL AND dead_at IS NULL",
            Some(OutboundState::Delivered) => "WHERE delivered_at IS NOT NULL",
            Some(OutboundState::Dead) => "WHERE dead_at IS NOT NULL",
        };
        let sql = format!("SELECT * FROM outbound_webhooks {filter} ORDER BY id DESC LIMIT $1");
        Ok(on_tx!(self, |c| sqlx::query_as::<_, OutboundRow>(sqlx::AssertSqlSafe(sql.clone()))
            .bind(limit)
            .fetch_all(&mut *c)
            .await?))
    }

    /// Bring a dead webhook back to pending; false if it is not dead.
    pub async fn revive_outbound(&mut self, id: i64) -> Result<bool, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query(
            "UPDATE outbound_webhooks SET dead_at = NULL, created_at = $2 WHERE id = $1 AND dead_at IS NOT NULL"
        )
        .bind(id)
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(&mut *c)
        .await?
        .rows_affected())
            == 1)
    }
}
