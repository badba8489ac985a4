//! The job queue: the only code besides [`crate::worker`] that knows apalis.
//!
//! Jobs are pushed inside Cartback's own transactions, so a job exists exactly when the
//! change that needs it commits. [`schedule`] keeps the one rule every job relies on (a cart
//! has one live job: the one carrying its current `seq`); [`tables`] holds every statement
//! Cartback runs on apalis's own tables, in both dialects.

pub mod schedule;
pub mod tables;

use std::time::Duration;

use apalis::prelude::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{JobRow, StoreError, Tx, TxInner};

pub use schedule::{ensure_job, reschedule};

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
    let queue = if far && matches!(tx.inner, TxInner::Sqlite(_)) { LATER } else { QUEUE };
    push_to(tx, queue, &job, secs, format!("{}:{}", job.cart, job.seq)).await
}

/// Enqueue an outbound delivery attempt inside `tx`.
pub async fn push_outbound(tx: &mut Tx, job: OutboundJob, run_at: DateTime<Utc>) -> Result<(), StoreError> {
    // Whole seconds, rounded up so it never runs before its time.
    let secs = (run_at.timestamp_millis().max(0) + 999) / 1000;
    push_to(tx, OUTBOUND_QUEUE, &job, secs, format!("out:{}:{}", job.id, job.attempt)).await
}

async fn push_to(tx: &mut Tx, queue: &str, job: &impl Serialize, secs: i64, key: String) -> Result<(), StoreError> {
    let secs = u64::try_from(secs).unwrap_or(0);
    let args = serde_json::to_vec(job).map_err(|e| StoreError::Queue(e.to_string()))?;
    let task =
        TaskBuilder::new(args).run_at_timestamp(secs).max_attempts(MAX_JOB_ATTEMPTS).idempotency_key(key).build();
    if tx.deferring() {
        // Held back with the transaction's other writes: the row apalis-sqlite's push writes.
        let job = JobRow {
            id: ulid::Ulid::generate().to_string(),
            queue: queue.to_owned(),
            max_attempts: i64::try_from(task.max_attempts().unwrap_or(MAX_JOB_ATTEMPTS)).unwrap_or(i64::MAX),
            run_at: i64::try_from(task.run_at().unwrap_or(secs)).unwrap_or(i64::MAX),
            priority: i64::try_from(task.priority().unwrap_or_default()).unwrap_or(0),
            metadata: serde_json::to_string(task.metadata()).unwrap_or_default(),
            idempotency_key: task.idempotency_key().map(str::to_owned),
            args: task.args,
        };
        return tx.defer_job(job);
    }
    match &mut tx.inner {
        TxInner::Sqlite(t) => apalis_sqlite::queries::push_tasks(&mut **t, queue, &[task])
            .await
            .map_err(|e| StoreError::Queue(e.to_string())),
        TxInner::Postgres(t) => apalis_postgres::queries::push_tasks(&mut **t, queue, vec![task])
            .await
            .map_err(|e| StoreError::Queue(e.to_string())),
    }
}
