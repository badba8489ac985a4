//! Group commit for the recovery jobs' transactions on SQLite.
//!
//! A recovery job writes in two short transactions per message (the claim, then the result),
//! and on SQLite each one costs more than its statements: taking the database's one
//! connection from the pool, `BEGIN IMMEDIATE`, `COMMIT` and the disk flush that makes the
//! commit durable. Recovery jobs running at the same time therefore take turns inside one transaction:
//! a job's [`GroupTx`] is its turn, and [`GroupTx::commit`] hands the transaction to the next
//! job in line instead of committing it. The last job in line (or the one that fills the
//! group) commits for everyone, and every job's `commit` returns only once that commit is
//! durable, so a job never acts (sends a message, acknowledges its queue entry) on a write
//! that could still be lost.
//!
//! One turn's statements never interleave with another's: a turn holds the transaction from
//! `begin` to `commit`. A turn that ends without `commit` (an error, a panic, a cancelled
//! job) cannot be undone alone, so it rolls back the whole group and every other turn in it
//! gets [`StoreError::GroupAborted`] from its `commit`: exactly what a crash would do, which
//! the recovery protocol already survives (each job retries and re-reads its cart). The cost
//! is that a failing job fails the others of its group; failures are storage errors, rare.
//!
//! Within a turn, a job's cart and job writes are held back ([`Tx::defer_writes`]) and
//! ride in the same command as its next statement: the claim, in a step that sends. Each
//! turn writes whatever it still holds back before it hands over, so a write that fails
//! fails its own turn.
//!
//! PostgreSQL runs its transactions side by side on many connections: there a `GroupTx` is
//! a plain transaction of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Mutex, OwnedMutexGuard, watch};
use tracing::warn;

use crate::store::{Db, Dialect, StoreError, Tx};

/// The most turns one transaction takes before it commits, bounding how long the first job
/// of a group waits for its commit (about 0.1 ms of statements per turn).
pub const MAX_GROUP: usize = 32;

/// What every turn of a group learns when it ends: `Ok` once it is durable.
type Outcome = Option<Result<(), Arc<str>>>;

/// The open group: the transaction and how its turns learn the result.
struct Open {
    tx: Tx,
    turns: usize,
    done: watch::Sender<Outcome>,
    /// Whether a task is already queued to commit this group.
    committer: bool,
}

type Slot = Arc<Mutex<Option<Open>>>;

/// Where recovery jobs take their transactions.
#[derive(Debug, Clone)]
pub struct TxGroup {
    db: Db,
    open: Slot,
    /// How many jobs are waiting for their turn: while there are any, a finished turn hands over.
    waiting: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Open {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Open").field("turns", &self.turns).finish_non_exhaustive()
    }
}

/// One job's turn in a group transaction (or, on PostgreSQL, a transaction of its own).
#[derive(Debug)]
pub struct GroupTx {
    turn: Turn,
}

#[derive(Debug)]
enum Turn {
    /// Holding the group's transaction.
    Grouped(OwnedMutexGuard<Option<Open>>, Arc<AtomicUsize>),
    /// PostgreSQL: a transaction of its own.
    Alone(Tx),
    /// Committed (or being committed).
    Ended,
}

/// Counts a job in line for its turn, and stops counting it however it leaves the line.
struct InLine(Arc<AtomicUsize>);

impl InLine {
    fn new(waiting: &Arc<AtomicUsize>) -> Self {
        waiting.fetch_add(1, Ordering::SeqCst);
        Self(waiting.clone())
    }
}

impl Drop for InLine {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl TxGroup {
    /// Group the transactions of `db` (on SQLite; on PostgreSQL each stays its own).
    pub fn new(db: Db) -> Self {
        Self { db, open: Arc::new(Mutex::new(None)), waiting: Arc::new(AtomicUsize::new(0)) }
    }

    /// How many jobs are waiting for their turn now (always 0 on PostgreSQL).
    pub fn in_line(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Wait for a turn in the open group transaction, opening one if there is none.
    pub async fn begin(&self) -> Result<GroupTx, StoreError> {
        if self.db.dialect() == Dialect::Postgres {
            return Ok(GroupTx { turn: Turn::Alone(self.db.begin().await?) });
        }
        let mut guard = {
            let _in_line = InLine::new(&self.waiting);
            self.open.clone().lock_owned().await
        };
        if guard.is_none() {
            let mut tx = self.db.begin().await?;
            // One round trip to SQLite's thread fewer per message (module docs).
            tx.defer_writes();
            *guard = Some(Open { tx, turns: 0, done: watch::channel(None).0, committer: false });
        }
        Ok(GroupTx { turn: Turn::Grouped(guard, self.waiting.clone()) })
    }
}

/// Commit the group in `guard` (if one is open) and tell its turns.
async fn commit_group(mut guard: OwnedMutexGuard<Option<Open>>) {
    if let Some(Open { tx, done, .. }) = guard.take() {
        let result = tx.commit().await.map_err(|e| Arc::<str>::from(e.to_string()));
        done.send_replace(Some(result));
    }
}

impl GroupTx {
    /// End this turn; `Ok` once what it wrote is durable.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        // What the turn still holds back (nothing on PostgreSQL). On error the turn is
        // dropped, which rolls back its group.
        self.flush().await?;
        let (mut guard, waiting) = match std::mem::replace(&mut self.turn, Turn::Ended) {
            Turn::Alone(tx) => return tx.commit().await,
            Turn::Grouped(guard, waiting) => (guard, waiting),
            Turn::Ended => unreachable!("a turn ends once"),
        };
        let open = guard.as_mut().expect("an open group while a turn holds it");
        open.turns += 1;
        let mut done = open.done.subscribe();
        if waiting.load(Ordering::SeqCst) == 0 || open.turns >= MAX_GROUP {
            commit_group(guard).await;
        } else {
            // Others are in line: they take their turns first, then a committer queued behind
            // them commits for all. Turns that come later queue behind the committer and
            // start the next group.
            if !open.committer {
                open.committer = true;
                let slot: Slot = OwnedMutexGuard::mutex(&guard).clone();
                tokio::spawn(async move { commit_group(slot.lock_owned().await).await });
            }
            drop(guard);
        }
        let outcome = done.wait_for(Option::is_some).await.map(|o| o.clone());
        match outcome {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(e))) => Err(StoreError::GroupAborted(e.to_string())),
            // The group went away without a word: it cannot have committed.
            Ok(None) | Err(_) => Err(StoreError::GroupAborted("the group transaction was abandoned".into())),
        }
    }
}

/// A commit on its way: see [`GroupTx::commit_sent`].
pub struct Committing(Option<CommitAnswer>);

/// The rest of a commit: waiting for the server's answer.
type CommitAnswer = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>;

impl Committing {
    /// Wait until the commit is durable (at once if it already is).
    pub async fn finish(self) -> Result<(), StoreError> {
        match self.0 {
            Some(rest) => rest.await,
            None => Ok(()),
        }
    }
}

impl GroupTx {
    /// Commit, returning as soon as the commit can no longer be called off by this process:
    /// on PostgreSQL once COMMIT has been written to the server (which finishes a COMMIT it
    /// has received whatever becomes of the client), with the wait for its answer left in the
    /// returned [`Committing`]; on SQLite, where the commit runs in this process, once it is
    /// durable. For the one write whose effect must follow the commit without a gap (the
    /// final dot of an SMTP message after its hand-over mark).
    pub async fn commit_sent(self) -> Result<Committing, StoreError> {
        if !matches!(self.turn, Turn::Alone(_)) {
            return self.commit().await.map(|()| Committing(None));
        }
        let mut rest = Box::pin(self.commit());
        // One poll writes COMMIT out (the connection is idle: the statements before it were
        // answered) and then waits for the answer.
        match std::future::poll_fn(|cx| std::task::Poll::Ready(rest.as_mut().poll(cx))).await {
            std::task::Poll::Ready(done) => done.map(|()| Committing(None)),
            std::task::Poll::Pending => Ok(Committing(Some(rest))),
        }
    }
}

impl Drop for GroupTx {
    fn drop(&mut self) {
        // A turn that ends without `commit` rolls back the whole group (the transaction's own
        // drop rolls it back) and tells the turns already in it.
        if let Turn::Grouped(guard, _) = &mut self.turn
            && let Some(Open { done, turns, .. }) = guard.take()
        {
            if turns > 0 {
                warn!(turns, "a recovery job's transaction failed; the jobs grouped with it roll back and retry");
            }
            done.send_replace(Some(Err(Arc::from("another job's turn in the shared transaction failed"))));
        }
    }
}

impl std::ops::Deref for GroupTx {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        match &self.turn {
            Turn::Alone(tx) => tx,
            Turn::Grouped(guard, _) => &guard.as_ref().expect("a turn holds its group").tx,
            Turn::Ended => unreachable!("an ended turn is not used"),
        }
    }
}

impl std::ops::DerefMut for GroupTx {
    fn deref_mut(&mut self) -> &mut Tx {
        match &mut self.turn {
            Turn::Alone(tx) => tx,
            Turn::Grouped(guard, _) => &mut guard.as_mut().expect("a turn holds its group").tx,
            Turn::Ended => unreachable!("an ended turn is not used"),
        }
    }
}
