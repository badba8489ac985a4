//! The worker: apalis lanes for recovery jobs and outbound webhooks, the promoter that moves
//! far-future SQLite jobs into the live queue, and the maintenance loop. With [`crate::queue`],
//! the only code that knows apalis.

use std::sync::Arc;
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
struct Running(Arc<Semaphore>);

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
    let Running(permits) = &*running;
    let _turn = permits.acquire().await?;
    let span = info_span!("recovery_job", cart = job.cart, seq = job.seq, attempt = attempt.current());
    match crate::recovery::run(&app, job).instrument(span).await {
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

async fn handle_outbound(job: OutboundJob, app: Data<Arc<App>>, attempt: Attempt) -> Result<(), BoxDynError> {
    let span = info_span!("outbound_job", id = job.id, attempt = job.attempt);
    match crate::outbound::run(&app, job).instrument(span).await {
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
pub async fn run_worker(app: Arc<App>, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let maintenance = tokio::spawn(maintain(app.clone(), shutdown.clone()));
    let promoter = tokio::spawn(promote(app.clone(), shutdown.clone()));
    let outbound = tokio::spawn(lane(app.clone(), shutdown.clone(), Lane::Outbound));
    lane(app, shutdown, Lane::Recovery).await;
    let _ = outbound.await;
    maintenance.abort();
    promoter.abort();
    info!("worker stopped");
    Ok(())
}

async fn lane(app: Arc<App>, mut shutdown: watch::Receiver<bool>, lane: Lane) {
    let concurrency = app.settings.worker.concurrency.max(1);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let name = format!("{}-{}", worker_name(), if matches!(lane, Lane::Recovery) { "r" } else { "o" });
        info!(worker = %name, backend = app.db.backend(), ?lane, concurrency, "worker starting");
        let mut rx = shutdown.clone();
        let signal = async move {
            let _ = rx.wait_for(|stop| *stop).await;
            Ok::<(), std::io::Error>(())
        };
        let result = match lane {
            Lane::Recovery => {
                let in_hand = app.settings.worker.in_hand();
                let running = Running(Arc::new(Semaphore::new(concurrency)));
                run_apalis!(app, name.clone(), signal, QUEUE, RecoveryJob, handle, in_hand, running)
            }
            // Shops' endpoints are few and slow at worst: a handful at a time is enough.
            Lane::Outbound => {
                let c = concurrency.min(4);
                run_apalis!(app, name.clone(), signal, OUTBOUND_QUEUE, OutboundJob, handle_outbound, c, ())
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
