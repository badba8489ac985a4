//! Outbound webhooks: events Cartback sends to a shop (`incentive.issued`, `order.expire`).
//!
//! The event is stored in the same transaction as the fact it announces, with a delivery job.
//! Each attempt POSTs it, signed like incoming events (Standard Webhooks, the shop's
//! `webhook_secret`, `webhook-id` stable across attempts so the shop deduplicates). A 2xx is
//! an acknowledgement; anything else is retried with exponential backoff and jitter until
//! `worker.outbound_give_up` has passed since the event, then it is dead (operators see it
//! with its last error and can retry it).

use chrono::Utc;
use serde_json::Value;
use tracing::{info, warn};

use crate::app::App;
use crate::config::Shop;
use crate::queue::{OutboundJob, push_outbound};
use crate::store::{StoreError, Tx};

/// Outbound delivery failures that are not the shop's answer (those are retried).
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Store `payload` as a `kind` event for `shop` and schedule its first delivery, inside `tx`.
/// Does nothing (and says so) when the shop has no `events_url`.
pub async fn enqueue(tx: &mut Tx, shop: &Shop, kind: &str, data: Value, now_ms: i64) -> Result<bool, StoreError> {
    if shop.events_url.is_none() {
        return Ok(false);
    }
    let payload = serde_json::json!({
        "type": kind,
        "timestamp": crate::domain::from_millis(now_ms).to_rfc3339(),
        "data": data,
    })
    .to_string();
    let id = tx.insert_outbound(shop.id.as_str(), kind, &payload, now_ms).await?;
    push_outbound(tx, OutboundJob { id, attempt: 1 }, crate::domain::from_millis(now_ms)).await?;
    Ok(true)
}

/// The pause before attempt `n + 1` after `n` failed ones: 10 s doubling to 1 h, ±20 %.
pub fn backoff_ms(failed: i64) -> i64 {
    let base = 10_000_i64.saturating_mul(1 << failed.clamp(0, 20)).min(3_600_000);
    let jitter = rand::random_range(-base / 5..=base / 5);
    base + jitter
}

/// One delivery attempt.
pub async fn run(app: &App, job: OutboundJob) -> Result<(), OutboundError> {
    let mut tx = app.db.begin().await?;
    let Some(row) = tx.outbound(job.id).await? else {
        return Ok(()); // erased
    };
    tx.commit().await?;
    if row.delivered_at.is_some() || row.dead_at.is_some() {
        return Ok(());
    }
    let shop = app.shop(&row.shop);
    let outcome = match shop.and_then(|s| s.events_url.clone().map(|u| (s, u))) {
        None => Err(format!("shop {:?} has no events_url any more", row.shop)),
        Some((shop, url)) => {
            let ts = Utc::now().timestamp();
            let sig = crate::crypto::sign_webhook(&shop.webhook_key, &row.public_id, ts, row.payload.as_bytes());
            let started = std::time::Instant::now();
            let resp = app
                .http
                .post(url)
                .header("content-type", "application/json")
                .header("webhook-id", &row.public_id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(row.payload.clone())
                .send()
                .await;
            let took = started.elapsed();
            match resp {
                Ok(r) if r.status().is_success() => {
                    info!(kind = %row.kind, shop = %row.shop, status = r.status().as_u16(), ?took, "outbound webhook acknowledged");
                    Ok(())
                }
                Ok(r) => Err(format!("the shop answered {}", r.status())),
                Err(e) if e.is_timeout() => Err("the shop did not answer in time".to_owned()),
                Err(e) => Err(format!("could not reach the shop: {}", chain(&e))),
            }
        }
    };
    let now = Utc::now().timestamp_millis();
    let mut tx = app.db.begin().await?;
    match outcome {
        Ok(()) => tx.outbound_attempt(row.id, now, None, false).await?,
        Err(e) => {
            let give_up = i64::try_from(app.settings.worker.outbound_give_up.as_millis()).unwrap_or(i64::MAX);
            let next = now + backoff_ms(row.attempts);
            let dead = next - row.created_at > give_up;
            tx.outbound_attempt(row.id, now, Some(&e), dead).await?;
            if dead {
                warn!(kind = %row.kind, shop = %row.shop, attempts = row.attempts + 1, error = %e, "outbound webhook given up");
            } else {
                warn!(kind = %row.kind, shop = %row.shop, attempt = row.attempts + 1, error = %e, "outbound webhook failed; will retry");
                push_outbound(
                    &mut tx,
                    OutboundJob { id: row.id, attempt: job.attempt + 1 },
                    crate::domain::from_millis(next),
                )
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// An error with its causes (`error sending request: connection refused`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn backoff_stays_within_bounds_and_grows(n in 0_i64..40) {
            let d = backoff_ms(n);
            let base = (10_000_i64 << n.min(20)).min(3_600_000);
            prop_assert!(d >= base - base / 5 && d <= base + base / 5, "{d} vs {base}");
            // The lower bound of the next attempt is never below this one's base (until the cap).
            let next_base = (10_000_i64 << (n + 1).min(20)).min(3_600_000);
            prop_assert!(next_base >= base);
        }
    }
}
