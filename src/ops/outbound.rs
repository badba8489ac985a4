//! Operator view of the events Cartback sends to shops (`incentive.issued`, `order.expire`).

use chrono::Utc;

use super::OpsError;
use crate::app::App;
use crate::queue::{OutboundJob, push_outbound};
use crate::store::outbound::{OutboundRow, OutboundState};

/// Outbound webhooks, newest first.
pub async fn list(app: &App, state: Option<OutboundState>, limit: i64) -> Result<Vec<OutboundRow>, OpsError> {
    let mut tx = app.db.begin().await?;
    let rows = tx.list_outbound(state, limit.clamp(1, 1000)).await?;
    tx.commit().await?;
    Ok(rows)
}

/// Send a dead webhook again, now, with a fresh give-up period.
pub async fn retry(app: &App, id: i64) -> Result<String, OpsError> {
    let mut tx = app.db.begin().await?;
    let row = tx.outbound(id).await?.ok_or_else(|| OpsError::NotFound(format!("no outbound webhook {id}")))?;
    if row.delivered_at.is_some() {
        return Err(OpsError::Conflict(format!("outbound webhook {id} was acknowledged already")));
    }
    if !tx.revive_outbound(id).await? {
        return Err(OpsError::Conflict(format!("outbound webhook {id} is still being retried (it is not dead)")));
    }
    push_outbound(&mut tx, OutboundJob { id, attempt: row.attempts + 1 }, Utc::now()).await?;
    tx.commit().await?;
    Ok(format!("outbound webhook {id} ({}) is queued again, due now", row.kind))
}
