//! apalis wiring: the queue name, pushing jobs inside our own transactions, running workers.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{Instrument, error, info, info_span, warn};

use crate::app::App;
use crate::store::{Db, StoreError, Tx};

/// The queue every recovery job lives in.
pub const QUEUE: &str = "cartback.recovery";

/// The payload: ids only. The job re-reads everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryJob {
    /// Cart row id.
    pub cart: i64,
    /// The cart's `seq` when this job was scheduled.
    pub seq: i64,
}

/// Queue-level attempts for a job that fails unexpectedly (database down, a bug). Delivery
/// failures never reach this: they are retried by the recovery logic with backoff.
const MAX_JOB_ATTEMPTS: usize = 5;

/// Enqueue `job` to run at `run_at`, inside `tx`: it exists exactly when the transaction commits.
pub async fn push(tx: &mut Tx, job: RecoveryJob, run_at: DateTime<Utc>) -> Result<(), StoreError> {
    // The queue stores whole seconds; round up so a job never runs before its time.
    let ms = run_at.timestamp_millis().max(0);
    let secs = u64::try_from((ms + 999) / 1000).unwrap_or(0);
    let args = serde_json::to_vec(&job).map_err(|e| StoreError::Queue(e.to_string()))?;
    let task = TaskBuilder::new(args)
        .run_at_timestamp(secs)
        .max_attempts(MAX_JOB_ATTEMPTS)
        .idempotency_key(format!("{}:{}", job.cart, job.seq))
        .build();
    match tx {
        Tx::Sqlite(t) => apalis_sqlite::queries::push_tasks(&mut **t, QUEUE, &[task])
            .await
            .map_err(|e| StoreError::Queue(e.to_string())),
        Tx::Postgres(t) => apalis_postgres::queries::push_tasks(&mut **t, QUEUE, vec![task])
            .await
            .map_err(|e| StoreError::Queue(e.to_string())),
    }
}

async fn handle(job: RecoveryJob, app: Data<Arc<App>>, attempt: Attempt) -> Result<(), BoxDynError> {
    let span = info_span!("recovery_job", cart = job.cart, seq = job.seq, attempt = attempt.current());
    match super::recovery::run(&app, job).instrument(span).await {
        Ok(()) => Ok(()),
        Err(e) => {
            // The queue retries a failed job as soon as it is fetched again. Hold it for a
            // growing pause first (1 s, 2 s, 4 s … 30 s) so a database outage is not hammered.
            let pause = Duration::from_secs(1 << attempt.current().min(5)).min(Duration::from_secs(30));
            error!(cart = job.cart, seq = job.seq, attempt = attempt.current(), error = %e, ?pause, "recovery job failed; will retry");
            tokio::time::sleep(pause).await;
            Err(Box::new(e) as BoxDynError)
        }
    }
}

fn worker_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!("cartback-{host}-{}-{}", std::process::id(), &crate::store::public_id()[..8])
}

/// Run workers until `shutdown` flips to `true`. A worker whose backend fails (database
/// unreachable) is restarted after a pause, under a new name.
pub async fn run_worker(app: Arc<App>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let ws = app.settings.worker.clone();
    let maintenance = tokio::spawn(maintain(app.clone(), shutdown.clone()));
    loop {
        if *shutdown.borrow() {
            break;
        }
        let name = worker_name();
        info!(worker = %name, backend = app.db.backend(), concurrency = ws.concurrency, "worker starting");
        let mut rx = shutdown.clone();
        let signal = async move {
            let _ = rx.wait_for(|stop| *stop).await;
            Ok::<(), std::io::Error>(())
        };
        let result = match &app.db {
            Db::Sqlite(pool) => {
                let config = apalis_sqlite::Config::default()
                    .queue(QUEUE)
                    .batch_size(ws.concurrency.max(1))
                    .heartbeat_interval(ws.heartbeat);
                let backend =
                    SqliteStorage::<RecoveryJob>::new(pool).with_config(config).poll_with_interval(ws.poll_interval);
                WorkerBuilder::new(name.clone())
                    .backend(backend)
                    .data(app.clone())
                    .concurrency(ws.concurrency.max(1))
                    .build(handle)
                    .run_until(signal)
                    .await
            }
            Db::Postgres(pool) => {
                let config = apalis_postgres::Config::default()
                    .queue(QUEUE)
                    .batch_size(ws.concurrency.max(1))
                    .heartbeat_interval(ws.heartbeat);
                let backend =
                    PostgresStorage::<RecoveryJob>::new(pool).with_config(config).poll_with_interval(ws.poll_interval);
                WorkerBuilder::new(name.clone())
                    .backend(backend)
                    .data(app.clone())
                    .concurrency(ws.concurrency.max(1))
                    .build(handle)
                    .run_until(signal)
                    .await
            }
        };
        match result {
            Ok(()) if *shutdown.borrow() => break,
            Ok(()) => warn!(worker = %name, "worker stopped unexpectedly; restarting"),
            Err(e) => error!(worker = %name, error = %e, "worker failed; restarting in 1s"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    maintenance.abort();
    info!("worker stopped");
    Ok(())
}

/// Periodically delete finished jobs so the queue stays as large as the number of live carts.
async fn maintain(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let keep = app.settings.worker.keep_done_jobs;
    loop {
        let before = Utc::now().timestamp() - i64::try_from(keep.as_secs()).unwrap_or(i64::MAX / 2);
        match app.db.vacuum_jobs(QUEUE, before).await {
            Ok(0) => {}
            Ok(n) => info!(deleted = n, "vacuumed finished jobs"),
            Err(e) => warn!(error = %e, "vacuuming finished jobs failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(300)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
