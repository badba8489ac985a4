//! The worker: apalis lanes for recovery jobs and outbound webhooks, the promoter that moves
//! far-future SQLite jobs into the live queue, and the maintenance loop. With [`crate::queue`],
//! the only code that knows apalis.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use chrono::Utc;
use tokio::sync::{Semaphore, watch};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::app::App;
use crate::queue::{HORIZON, LATER, OUTBOUND_QUEUE, OutboundJob, QUEUE, RecoveryJob};

/// The longest a fetched job waits for its due time; anything further off (a clock step) runs
/// at once and reschedules itself.
const MAX_HOLD: Duration = Duration::from_secs(5);

/// How often waiting jobs are moved into [`QUEUE`]: each moves between 90 s and 120 s before
/// it is due.
const PROMOTE_EVERY: Duration = Duration::from_secs(30);

/// The recovery lane's running jobs: the queue hands out up to `worker.prefetch` jobs ahead
/// of time; this many of them (`worker.concurrency`) do their work at once.
#[derive(Debug, Clone)]
struct Running(Arc<Semaphore>, InHand);

/// Which jobs have started their work, and whether the worker is stopping.
///
/// Invariant: a job either starts (and then finishes and records its result, however long
/// the provider takes, up to `worker.shutdown_grace`) or, once the worker is stopping, never
/// starts: it stays taken in the queue under this worker's name and the queue gives it to
/// another worker when this one's heartbeat stops, as after a crash. The queue itself is
/// never told to stop while work is in hand: on SQLite its fetch then waits, unpolled, for
/// the one connection and every job in hand would wait behind it (docs/delivery.md).
#[derive(Debug, Clone)]
struct InHand {
    stopping: watch::Receiver<bool>,
    started: Arc<AtomicUsize>,
}

/// A started job, counted until it ends.
struct Started(Arc<AtomicUsize>);

impl Drop for Started {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl InHand {
    /// Start a job's work; once the worker is stopping, never (the future stays pending until
    /// the worker drops it).
    async fn start(&self) -> Started {
        if *self.stopping.borrow() {
            std::future::pending::<()>().await;
        }
        self.started.fetch_add(1, Ordering::SeqCst);
        Started(self.started.clone())
    }
}

async fn handle(
    job: RecoveryJob,
    app: Data<Arc<App>>,
    running: Data<Running>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    if let Some(due) = job.due_ms {
        let early = due - Utc::now().timestamp_millis();
        if early > 0 {
            let hold = Duration::from_millis(u64::try_from(early).unwrap_or(0)).min(MAX_HOLD);
            tokio::time::sleep(hold).await;
        }
    }
    let Running(permits, in_hand) = &*running;
    let _turn = permits.acquire().await?;
    let started = in_hand.start().await;
    let span = info_span!("recovery_job", cart = job.cart, seq = job.seq, attempt = attempt.current());
    let result = crate::recovery::run(&app, job).instrument(span).await;
    // Done with the work; a pause before a retry does not hold up a stopping worker.
    drop(started);
    match result {
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

async fn handle_outbound(
    job: OutboundJob,
    app: Data<Arc<App>>,
    in_hand: Data<InHand>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let started = in_hand.start().await;
    let span = info_span!("outbound_job", id = job.id, attempt = job.attempt);
    let result = crate::outbound::run(&app, job).instrument(span).await;
    drop(started);
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let pause = Duration::from_secs(1 << attempt.current().min(5)).min(Duration::from_secs(30));
            error!(id = job.id, error = %e, ?pause, "outbound job failed; will retry");
            tokio::time::sleep(pause).await;
            Err(Box::new(e) as BoxDynError)
        }
    }
}

fn worker_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!("cartback-{host}-{}-{}", std::process::id(), &crate::store::public_id()[..8])
}

/// Build and run one apalis worker for `$job` on `$queue` until `$signal` resolves, with
/// `$concurrency` jobs in hand and `$data` for the handler.
macro_rules! run_apalis {
    ($app:expr, $name:expr, $signal:expr, $queue:expr, $job:ty, $handler:expr, $concurrency:expr, $data:expr) => {{
        let ws = &$app.settings.worker;
        match ($app.db.as_sqlite(), $app.db.as_postgres()) {
            (Some(pool), _) => {
                let config = apalis_sqlite::Config::default()
                    .queue($queue)
                    .batch_size($concurrency)
                    .heartbeat_interval(ws.heartbeat);
                let backend = SqliteStorage::<$job>::new(pool).with_config(config).poll_with_interval(ws.poll_interval);
                WorkerBuilder::new($name)
                    .backend(backend)
                    .data($app.clone())
                    .data($data)
                    .concurrency($concurrency)
                    .build($handler)
                    .run_until($signal)
                    .await
            }
            (None, pool) => {
                let pool = pool.expect("a database is SQLite or PostgreSQL");
                let config = apalis_postgres::Config::default()
                    .queue($queue)
                    .batch_size($concurrency)
                    .heartbeat_interval(ws.heartbeat);
                let backend =
                    PostgresStorage::<$job>::new(pool).with_config(config).poll_with_interval(ws.poll_interval);
                WorkerBuilder::new($name)
                    .backend(backend)
                    .data($app.clone())
                    .data($data)
                    .concurrency($concurrency)
                    .build($handler)
                    .run_until($signal)
                    .await
            }
        }
    }};
}

/// Which queue a worker loop serves.
#[derive(Debug, Clone, Copy)]
enum Lane {
    Recovery,
    Outbound,
}

/// Run workers until `shutdown` flips to `true`: the recovery queue and the outbound-webhook
/// queue, each restarted after a pause, under a new name, when its backend fails.
///
/// Stopping: jobs that have started finish and record their results; the others are left
/// to the queue ([`InHand`]); the worker returns as soon as the last started job ends.
pub async fn run_worker(app: Arc<App>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let in_hand = InHand { stopping: shutdown.clone(), started: Arc::new(AtomicUsize::new(0)) };
    let tasks = [
        tokio::spawn(maintain(app.clone(), shutdown.clone())),
        tokio::spawn(promote(app.clone(), shutdown.clone())),
        tokio::spawn(lane(app.clone(), shutdown.clone(), Lane::Outbound, in_hand.clone())),
        tokio::spawn(lane(app, shutdown.clone(), Lane::Recovery, in_hand.clone())),
    ];
    let _ = shutdown.wait_for(|stop| *stop).await;
    while in_hand.started.load(Ordering::SeqCst) > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Dropping the lanes drops the queue's streams and the jobs that never started, and with
    // them every pooled connection they held.
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    info!("worker stopped");
    Ok(())
}

async fn lane(app: Arc<App>, mut shutdown: watch::Receiver<bool>, lane: Lane, in_hand: InHand) {
    let concurrency = app.settings.worker.concurrency.max(1);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let name = format!("{}-{}", worker_name(), if matches!(lane, Lane::Recovery) { "r" } else { "o" });
        info!(worker = %name, backend = app.db.backend(), ?lane, concurrency, "worker starting");
        // Never told to stop: `run_worker` drops the lane once the work in hand is done.
        let signal = std::future::pending::<Result<(), std::io::Error>>();
        let result = match lane {
            Lane::Recovery => {
                let prefetch = app.settings.worker.in_hand();
                let running = Running(Arc::new(Semaphore::new(concurrency)), in_hand.clone());
                run_apalis!(app, name.clone(), signal, QUEUE, RecoveryJob, handle, prefetch, running)
            }
            // Shops' endpoints are few and slow at worst: a handful at a time is enough.
            Lane::Outbound => {
                let c = concurrency.min(4);
                run_apalis!(app, name.clone(), signal, OUTBOUND_QUEUE, OutboundJob, handle_outbound, c, in_hand.clone())
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
}

/// Move the jobs waiting under [`LATER`] that fall due within [`HORIZON`] into [`QUEUE`], at
/// start and every [`PROMOTE_EVERY`].
async fn promote(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let until = Utc::now().timestamp() + i64::try_from(HORIZON.as_secs()).unwrap_or(0);
        match crate::queue::tables::promote(&app.db, LATER, QUEUE, until).await {
            Ok(0) => {}
            Ok(n) => debug!(moved = n, "jobs falling due soon moved into the recovery queue"),
            Err(e) => warn!(error = %e, "moving jobs that fall due soon into the recovery queue failed; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PROMOTE_EVERY) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Periodically delete finished jobs so the queue stays as large as the number of live carts,
/// and keep the database's statistics current ([`Db::optimize`]).
async fn strand_hand_overs(app: &App, before_ms: i64, now_ms: i64) -> Result<u64, crate::store::StoreError> {
    let mut tx = app.db.begin().await?;
    let n = tx.strand_hand_overs(before_ms, now_ms).await?;
    tx.commit().await?;
    Ok(n)
}

async fn maintain(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let keep = app.settings.worker.keep_done_jobs;
    let mut first = true;
    loop {
        if let Err(e) = app.db.optimize(first).await {
            warn!(error = %e, "updating the database's statistics failed");
        }
        first = false;
        let before = Utc::now().timestamp() - i64::try_from(keep.as_secs()).unwrap_or(i64::MAX / 2);
        let replays_refused_before = Utc::now().timestamp_millis() - 3 * 1000 * crate::crypto::TOLERANCE_SECS;
        if let Err(e) = app.db.forget_requests(replays_refused_before).await {
            warn!(error = %e, "forgetting old signed requests failed");
        }
        let now = Utc::now().timestamp_millis();
        let lease = i64::try_from(app.settings.worker.claim_lease.as_millis()).unwrap_or(60_000);
        match strand_hand_overs(&app, now - 2 * lease, now).await {
            Ok(0) => {}
            Ok(n) => warn!(
                sends = n,
                "messages handed over by a worker that stopped before recording them are unconfirmed now (cartback jobs unconfirmed)"
            ),
            Err(e) => warn!(error = %e, "looking for stranded hand-overs failed"),
        }
        for queue in [QUEUE, OUTBOUND_QUEUE] {
            match crate::queue::tables::vacuum(&app.db, queue, before).await {
                Ok(0) => {}
                Ok(n) => info!(queue, deleted = n, "vacuumed finished jobs"),
                Err(e) => warn!(queue, error = %e, "vacuuming finished jobs failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(300)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
