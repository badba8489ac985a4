//! Group commit for accepted events.
//!
//! An event is answered `202` only once it is durable, and on SQLite with
//! `synchronous = FULL` every commit waits for the disk (about 0.26 ms here). Events arriving
//! together therefore share one transaction: a writer task takes whatever has queued up while
//! the previous commit was flushing (up to `MAX_BATCH`), applies them in one transaction,
//! commits once and then answers every waiting request. If the shared transaction fails or
//! refuses any event, nothing of it is kept and each event of the batch goes again in a
//! transaction of its own, so an event that fails fails alone. Alone, an event is its own
//! transaction: under light load nothing waits longer than before.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::{Instrument, info_span, warn};

use super::apply::{AcceptError, Accepted, Delivery, accept_all};
use crate::app::App;
use crate::config::Shop;
use crate::domain::{ShopEvent, ShopId, WebhookId};
use crate::store::Dialect;

/// The most events one transaction takes.
const MAX_BATCH: usize = 128;

/// Writers side by side on PostgreSQL (each holds a connection while it writes a batch).
const POSTGRES_WRITERS: usize = 4;

struct Pending {
    /// Its shop, looked up again by the writer (one id, not a copy of the shop's settings).
    shop: ShopId,
    webhook_id: WebhookId,
    event: ShopEvent,
    body: Vec<u8>,
    reply: oneshot::Sender<Result<Accepted, AcceptError>>,
}

/// Where verified events go: [`Ingest::accept`] answers once the event is durable. The
/// writer runs until the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Ingest {
    queue: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("webhook_id", &self.webhook_id.as_str()).finish()
    }
}

impl Ingest {
    /// Start the writer for `app`'s store, campaigns and shops.
    pub fn start(app: &App) -> Self {
        let env = super::Env {
            db: app.db.clone(),
            campaigns: app.campaign_set.clone(),
            shops: app.shops.clone(),
            attribution_window_ms: i64::try_from(app.settings.attribution_window.as_millis()).unwrap_or(i64::MAX / 2),
            batch_sizes: app.metrics.ingest_batch.clone(),
        };
        let writers = match env.db.dialect() {
            Dialect::Sqlite => 1,
            Dialect::Postgres => POSTGRES_WRITERS,
        };
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        let (env, rx) = (Arc::new(env), Arc::new(Mutex::new(rx)));
        for _ in 0..writers {
            tokio::spawn(write(env.clone(), rx.clone()));
        }
        Self { queue }
    }

    /// Accept one verified event for `shop`: durable when this returns `Ok`. Concurrent
    /// events share one transaction and one disk flush.
    pub async fn accept(
        &self,
        shop: &Shop,
        webhook_id: &WebhookId,
        event: &ShopEvent,
        body: &[u8],
    ) -> Result<Accepted, AcceptError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            shop: shop.id.clone(),
            webhook_id: webhook_id.clone(),
            event: event.clone(),
            body: body.to_vec(),
            reply,
        };
        let gone = || AcceptError::Batch("the service is shutting down".into());
        self.queue.send(pending).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// A writer: takes whatever has queued up (up to [`MAX_BATCH`]) and commits it. SQLite has
/// one, as it writes one transaction at a time anyway. PostgreSQL has [`POSTGRES_WRITERS`]:
/// each batch takes its carts' row locks at once and in one order (`Tx::take_carts`), so
/// batches written side by side do not deadlock on them; the rarer paths that lock more
/// (an order stopping a customer's other carts, persons merging) may, and then PostgreSQL
/// aborts one transaction, whose events are applied again one by one.
async fn write(env: Arc<super::Env>, rx: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            batch
        };
        let span = info_span!("group_commit", events = batch.len());
        commit(&env, batch).instrument(span).await;
    }
}

async fn commit(app: &super::Env, batch: Vec<Pending>) {
    app.batch_sizes.observe(batch.len() as f64);
    if batch.len() > 1 {
        match shared(app, &batch).await {
            Ok(results) => {
                for (p, r) in batch.into_iter().zip(results) {
                    let _ = p.reply.send(Ok(r));
                }
                return;
            }
            // A broken shared transaction (a PostgreSQL deadlock between two writers, say)
            // must not fail every event in it: each gets its own transaction instead.
            Err(e) => warn!(events = batch.len(), error = %e, "group commit failed; committing its events one by one"),
        }
    }
    for p in batch {
        let r = alone(app, &p).await;
        let _ = p.reply.send(r);
    }
}

/// Every event of the batch in one transaction. `Err` when the transaction failed or any event
/// was refused: then nothing of the batch is stored and its events go one by one (an event
/// that fails, fails alone). Refusals are rare (storage errors, a campaign unloaded under
/// us), so the batch does without a savepoint per event: two statements fewer each.
async fn shared(app: &super::Env, batch: &[Pending]) -> Result<Vec<Accepted>, String> {
    let deliveries = batch.iter().map(|p| delivery(app, p)).collect::<Result<Vec<_>, _>>()?;
    let mut tx = app.db.begin().await.map_err(|e| e.to_string())?;
    let results = accept_all(app, &mut tx, &deliveries).await.map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(results)
}

/// One event in its own transaction.
async fn alone(app: &super::Env, p: &Pending) -> Result<Accepted, AcceptError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match once(app, p).await {
            // A deadlock with another writer (PostgreSQL aborted this transaction): again.
            Err(AcceptError::Store(e)) if e.is_conflict() && tries < 5 => {
                tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(5..50))).await;
            }
            other => return other,
        }
    }
}

async fn once(app: &super::Env, p: &Pending) -> Result<Accepted, AcceptError> {
    let d = delivery(app, p).map_err(AcceptError::Batch)?;
    let mut tx = app.db.begin().await?;
    match accept_all(app, &mut tx, &[d]).await {
        Ok(r) => {
            tx.commit().await?;
            r.into_iter().next().ok_or_else(|| AcceptError::Batch("applying the delivery gave no result".into()))
        }
        // Another machine took the same delivery while this one applied it: theirs stands.
        Err(AcceptError::Raced) => Ok(Accepted::Duplicate),
        Err(e) => Err(e),
    }
}

fn delivery<'a>(app: &'a super::Env, p: &'a Pending) -> Result<Delivery<'a>, String> {
    Ok(Delivery { shop: shop_of(app, p)?, webhook_id: &p.webhook_id, event: &p.event, body: &p.body })
}

/// The configured shop of a queued event (shops are fixed for the life of the `App`).
fn shop_of<'a>(app: &'a super::Env, p: &Pending) -> Result<&'a Shop, String> {
    app.shops.get(&p.shop).ok_or_else(|| format!("shop {} is not configured", p.shop.as_str()))
}
