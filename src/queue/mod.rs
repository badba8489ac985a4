//! The job queue: with the worker, the only code that knows apalis.
//!
//! Jobs are pushed inside Cartback's own transactions, so a job exists exactly when the
//! change that needs it commits. [`schedule`] keeps the one rule every job relies on (a cart
//! has one live job: the one carrying its current `seq`); [`tables`] holds every statement
//! Cartback runs on apalis's own tables, in both dialects.

pub mod schedule;
pub mod tables;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{Dialect, StoreError, Tx};

pub use schedule::{ensure_job, reschedule};

/// Apply every migration: the queue's own tables, then Cartback's (some refer to the queue's).
pub async fn migrate(db: &crate::store::Db) -> Result<(), StoreError> {
    tables::migrate(db).await?;
    db.migrate().await
}

/// Default log levels of the queue library (its per-poll lines); `RUST_LOG` overrides them.
pub const LOG_DEFAULTS: &str = "apalis=warn";

/// The queue every recovery job lives in.
pub const QUEUE: &str = "cartback.recovery";

/// The payload: ids and the due time. The job re-reads everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryJob {
    /// Cart row id.
    pub cart: i64,
    /// The cart's `seq` when this job was scheduled.
    pub seq: i64,
    /// When the job is due, Unix milliseconds ([`push`] sets it). The queue keeps whole
    /// seconds and hands the job out up to [`LEAD`] early; the worker waits for this instant.
    /// Absent in jobs queued by earlier versions, which the queue hands out on time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_ms: Option<i64>,
}

/// How early the queue hands out a recovery job: the queue's clock has whole seconds and a
/// worker looks for due jobs every `worker.poll_interval`, so a job becomes available between
/// one and two seconds before it is due and the worker sleeps to the exact millisecond.
pub const LEAD: Duration = Duration::from_secs(1);

/// Queue-level attempts for a job that fails unexpectedly (database down, a bug). Delivery
/// failures never reach this: they are retried by the recovery logic with backoff.
pub(crate) const MAX_JOB_ATTEMPTS: usize = 5;

/// The queue of outbound webhooks (`incentive.issued`, `order.expire`).
pub const OUTBOUND_QUEUE: &str = "cartback.outbound";

/// An outbound webhook delivery attempt: the row id; the row holds the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundJob {
    /// `outbound_webhooks` row id.
    pub id: i64,
    /// Attempt number this job makes (1-based).
    pub attempt: i64,
}

/// On SQLite, recovery jobs due more than [`HORIZON`] ahead wait under this queue name, which
/// no worker polls, and [`promote`] moves them into [`QUEUE`] shortly before their time.
/// apalis-sqlite's due-job query (`run_at IS NULL OR run_at <= now`) cannot read an index
/// range, so each look for due jobs reads every pending job of its queue: 114 ms per look with
/// a million carts waiting, on the database's one connection, every `worker.poll_interval`
/// while the worker is idle. With the far future kept apart, a look reads the jobs due within
/// the horizon.
pub const LATER: &str = "cartback.recovery.later";

/// The recovery lane's two queue names, as operators see them: one queue.
pub const RECOVERY: (&str, &str) = (QUEUE, LATER);

/// A recovery job due within this goes straight into [`QUEUE`].
pub const HORIZON: Duration = Duration::from_secs(120);

/// Enqueue `job` to run at `run_at`, inside `tx`: it exists exactly when the transaction commits.
pub async fn push(tx: &mut Tx, job: RecoveryJob, run_at: DateTime<Utc>) -> Result<(), StoreError> {
    let ms = run_at.timestamp_millis().max(0);
    let job = RecoveryJob { due_ms: Some(ms), ..job };
    // Whole seconds, at least LEAD early; the worker holds the job until `due_ms`.
    let lead = i64::try_from(LEAD.as_millis()).unwrap_or(1000);
    let secs = (ms - lead).max(0) / 1000;
    let horizon = i64::try_from(HORIZON.as_millis()).unwrap_or(i64::MAX / 4);
    let far = ms > Utc::now().timestamp_millis() + horizon;
    let queue = if far && tx.dialect() == Dialect::Sqlite { LATER } else { QUEUE };
    push_to(tx, queue, &job, secs, format!("{}:{}", job.cart, job.seq)).await
}

/// Enqueue an outbound delivery attempt inside `tx`.
pub async fn push_outbound(tx: &mut Tx, job: OutboundJob, run_at: DateTime<Utc>) -> Result<(), StoreError> {
    // Whole seconds, rounded up so it never runs before its time.
    let secs = (run_at.timestamp_millis().max(0) + 999) / 1000;
    push_to(tx, OUTBOUND_QUEUE, &job, secs, format!("out:{}:{}", job.id, job.attempt)).await
}

async fn push_to(tx: &mut Tx, queue: &str, job: &impl Serialize, secs: i64, key: String) -> Result<(), StoreError> {
    let args = serde_json::to_vec(job).map_err(|e| StoreError::Queue(e.to_string()))?;
    let max_attempts = i64::try_from(MAX_JOB_ATTEMPTS).unwrap_or(i64::MAX);
    tx.insert_rows(&tables::PUSH, vec![tables::job_row(args, queue, max_attempts, secs.max(0), key)]).await
}
