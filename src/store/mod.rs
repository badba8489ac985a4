//! The store: Cartback's tables, SQLite and PostgreSQL behind one seam, both real.
//!
//! [`Db`] and [`Tx`] hide which backend runs: the backend is a private enum, matched only
//! here. Every query of Cartback's own tables is written once in portable SQL (`$1`
//! placeholders work on both) and run on whichever backend the configuration chose; the few
//! statements that differ (row locks) are spelled out per backend. Each backend keeps its own
//! strategies inside this module: SQLite's held-back writes and shared transactions live in
//! [`sqlite`], behind the SQLite variant of the transaction, so they cannot be reached on
//! PostgreSQL. Tables the store does not own (the job queue's) are reached through
//! [`foreign`]: statements spelled per [`Dialect`] by their owner, run here.

mod carts;
pub mod console;
mod events;
pub mod foreign;
mod held;
pub mod history;
mod identity;
pub mod incentives;
mod keys;
pub mod ops;
pub mod outbound;
mod postgres;
mod privacy;
pub mod sends;
mod sqlite;
mod types;

use std::str::FromStr;
use std::time::Duration;

pub use carts::{CartRow, CartStatus, LogEntry};
pub use events::EventRecord;
pub use foreign::{Dialects, RowInsert, Value};
pub use sends::{Attempt, Claim, HandOverMark, NewIncentive, NewSend, SendRow, SendStatus};
pub use sqlite::{Committing, GroupTx, TxGroup};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

/// Database failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A query failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The job queue's own setup failed.
    #[error("job queue setup: {0}")]
    Queue(String),
    /// The URL names no supported database.
    #[error("database_url must start with sqlite:// or postgres:// (got {0:?})")]
    UnsupportedUrl(String),
    /// Stored data that cannot be read back (a bug or manual edits).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// This job's writes shared a transaction with other jobs' (group commit) and that
    /// transaction failed or was abandoned: nothing of it was stored.
    #[error("the shared transaction this job's writes were in did not commit: {0}")]
    GroupAborted(String),
}

impl StoreError {
    /// Whether the database aborted the transaction because it conflicted with another one
    /// (PostgreSQL: a deadlock, or a serialization failure): trying again may succeed.
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::Sql(sqlx::Error::Database(e)) => matches!(e.code().as_deref(), Some("40P01" | "40001")),
            _ => false,
        }
    }
}

/// A connection pool to one of the supported databases.
#[derive(Debug, Clone)]
pub struct Db {
    backend: Backend,
}

/// Which database runs, for code that owns statements spelled per dialect (the queue's
/// tables, [`foreign`]). A plain value: the connections stay inside the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The pool behind a [`Db`].
#[derive(Debug, Clone)]
enum Backend {
    /// Embedded default.
    Sqlite(SqlitePool),
    /// For several workers sharing one queue.
    Postgres(PgPool),
}

/// An open transaction on either backend, with the timeline lines it has yet to write.
#[derive(Debug)]
pub struct Tx {
    inner: Inner,
    /// Timeline lines ([`Tx::log`]) written as one statement at commit: a message's job
    /// writes several, and on SQLite every statement is a round trip to the connection's
    /// thread while the database's one write lock is held.
    lines: Vec<carts::LogLine>,
    /// The campaigns paused by an operator, read once per transaction ([`Tx::campaign_paused`]):
    /// every message asks, and a shared transaction carries several messages.
    paused: Option<Vec<String>>,
}

/// The backend's own transaction.
#[derive(Debug)]
enum Inner {
    /// SQLite (`BEGIN IMMEDIATE`: writers queue up front instead of failing on upgrade), with
    /// the writes it holds back to send together ([`Tx::defer_writes`]; `None`: written at once).
    Sqlite { tx: sqlx::Transaction<'static, sqlx::Sqlite>, held: Option<held::Deferred> },
    /// PostgreSQL, likewise.
    Postgres { tx: sqlx::Transaction<'static, sqlx::Postgres>, held: Option<held::Deferred> },
}

/// Run `$body` with `$c` bound to the transaction's connection, whatever the backend, after
/// writing anything the transaction held back ([`Tx::defer_writes`]): the statement sees
/// every change the transaction made.
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {{
        $tx.flush().await?;
        $crate::store::on_tx_now!($tx, |$c| $body)
    }};
}
use on_tx;

/// [`on_tx!`] without writing held-back changes first: for statements that cannot read
/// them (tables the held-back writes never touch) or that take them into account themselves.
macro_rules! on_tx_now {
    ($tx:expr, |$c:ident| $body:expr) => {
        match &mut $tx.inner {
            $crate::store::Inner::Sqlite { tx: t, .. } => {
                let $c = &mut **t;
                $body
            }
            $crate::store::Inner::Postgres { tx: t, .. } => {
                let $c = &mut **t;
                $body
            }
        }
    };
}
use on_tx_now;

/// Like [`on_tx!`] but with backend-specific SQL text: `$sqlite` or `$pg` is bound to `$sql`.
macro_rules! on_tx_sql {
    ($tx:expr, $sql:ident = ($sqlite:expr, $pg:expr), |$c:ident| $body:expr) => {{
        $tx.flush().await?;
        match &mut $tx.inner {
            $crate::store::Inner::Sqlite { tx: t, .. } => {
                let $c = &mut **t;
                let $sql = $sqlite;
                $body
            }
            $crate::store::Inner::Postgres { tx: t, .. } => {
                let $c = &mut **t;
                let $sql = $pg;
                $body
            }
        }
    }};
}
use on_tx_sql;

/// Check that `conn`'s SQLite keeps each statement's plan whatever values are bound to it
/// (the query planner stability guarantee, compiled in by `.cargo/config.toml`).
///
/// The SQLite that sqlx builds has `SQLITE_ENABLE_STAT4`: once statistics exist (`ANALYZE`,
/// or the `PRAGMA optimize` Cartback runs), a statement whose parameters are compared with an
/// indexed column is otherwise prepared again whenever its bound values change, i.e. on
/// nearly every execution. Measured with a million carts and statistics: the query an event
/// makes for its customer's history and zone took 89–100 µs instead of 11 µs, and ingest fell
/// to 55–75 % of its empty-queue rate. Cartback's statements look rows up by key, where the
/// values cannot improve the plan. A build without it works, slower: it says so once.
async fn check_stable_plans(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options").fetch_all(&mut *conn).await?;
    if !options.iter().any(|o| o == "ENABLE_QPSG") {
        WARNED.call_once(|| {
            tracing::warn!(
                "this build's SQLite lacks SQLITE_ENABLE_QPSG (build Cartback from its repository, whose \
                 .cargo/config.toml sets LIBSQLITE3_FLAGS): statements are prepared again on most executions \
                 once the database has statistics"
            );
        });
    }
    Ok(())
}

/// Create the SQLite file readable by its owner only (0600), or take group and world
/// access away from an existing one: it holds the link-signing key and personal data.
/// SQLite gives the `-wal` and `-shm` files the database file's mode.
fn private_sqlite_file(url: &str) -> Result<(), StoreError> {
    let opts = SqliteConnectOptions::from_str(url)?;
    let path = opts.get_filename();
    if path.as_os_str().is_empty() || path.to_str().is_some_and(|p| p == ":memory:" || p.starts_with("file::memory")) {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |e: std::io::Error| StoreError::Sql(sqlx::Error::Io(e));
        let file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path);
        match file {
            Ok(f) => f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?,
            // A read-only or missing directory: let SQLite report it in its own words.
            Err(_) => return Ok(()),
        }
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            if let Ok(f) = std::fs::File::open(&side) {
                f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
            }
        }
    }
    Ok(())
}

impl Db {
    /// Connect; SQLite files are created when missing.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, None).await
    }

    /// Connect as a worker holding claims of `claim_lease`: on PostgreSQL, a session that
    /// sits in an open transaction longer than the lease is ended by the server
    /// (`idle_in_transaction_session_timeout`). Cartback's transactions are open for
    /// milliseconds; one open that long belongs to a frozen or cut-off process, and its row
    /// locks would stop every other worker that needs those carts until it woke. The lease is
    /// the bound because a process frozen that long has lost its claims anyway: before it
    /// hands a message over it checks that its claim's lease has not run out
    /// (`recovery/send.rs`), so a mark the server threw away is never followed by a send.
    pub async fn connect_with(url: &str, claim_lease: Option<Duration>) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            private_sqlite_file(url)?;
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: an event answered 202 survives a power cut, not only a crash.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                // Deleted or replaced content is zeroed where that costs no extra I/O; erasure
                // turns it fully on for its own transaction (store/privacy.rs).
                .pragma("secure_delete", "FAST")
                .foreign_keys(true);
            // One connection, shared by Cartback and the job queue. SQLite runs one write transaction
            // at a time, and every transaction here is a write (`BEGIN IMMEDIATE`). With several
            // connections, a writer that finds the lock taken sleeps in SQLite's busy handler
            // (1, 2, 5 … 100 ms steps) and can lose the lock again on every wake-up: at 167
            // sends/s that left 1 % of sends 0.4 s late and some 2 s late. With one connection,
            // writers wait in the pool's queue, in arrival order, and start the moment the
            // previous transaction ends (p99 0.01 s, max 0.03 s; README, Performance). Other
            // processes on the same file (the CLI) still meet the busy timeout.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .after_connect(|conn, _| Box::pin(check_stable_plans(conn)))
                // sqlx pings a pooled connection before handing it out (a round trip to the
                // connection's thread, ~60 µs per transaction here). A file opened in this
                // process does not go stale the way a network connection does.
                .test_before_acquire(false)
                // A transaction that waited this long is stuck behind a bug (a task holding a
                // transaction while it waits for another): fail loudly instead of hanging.
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await?;
            Ok(Db { backend: Backend::Sqlite(pool) })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url)?;
            let mut opts = opts.options([("plan_cache_mode", "force_custom_plan")]);
            if let Some(lease) = claim_lease {
                opts = opts.options([("idle_in_transaction_session_timeout", lease.as_millis().to_string())]);
            }
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            Ok(Db { backend: Backend::Postgres(pool) })
        } else {
            Err(StoreError::UnsupportedUrl(url.split("://").next().unwrap_or(url).to_owned()))
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.dialect() {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// Which dialect this database speaks.
    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite pool, for the job queue's own storage (which is written per backend) and
    /// for tests that read the file directly. `None` on PostgreSQL.
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        match &self.backend {
            Backend::Sqlite(p) => Some(p),
            Backend::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, as [`Db::as_sqlite`]. `None` on SQLite.
    pub fn as_postgres(&self) -> Option<&PgPool> {
        match &self.backend {
            Backend::Postgres(p) => Some(p),
            Backend::Sqlite(_) => None,
        }
    }

    /// Apply Cartback's migrations (kept in their own history table). The job queue applies
    /// its own first (`queue::tables::migrate`), as some of Cartback's refer to its tables.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut m = sqlx::migrate!("migrations/sqlite");
                m.dangerous_set_table_name("cartback_migrations");
                m.run(pool).await?;
            }
            Backend::Postgres(pool) => {
                let mut m = sqlx::migrate!("migrations/postgres");
                m.dangerous_set_table_name("cartback_migrations");
                m.run(pool).await?;
            }
        }
        Ok(())
    }

    /// Begin a write transaction.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let inner = match &self.backend {
            Backend::Sqlite(p) => Inner::Sqlite { tx: p.begin_with("BEGIN IMMEDIATE").await?, held: None },
            Backend::Postgres(p) => Inner::Postgres { tx: p.begin().await?, held: None },
        };
        Ok(Tx { inner, lines: Vec::new(), paused: None })
    }

    /// Cartback migrations this binary knows that the database has not applied.
    pub async fn pending_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let (known, applied): (Vec<i64>, Vec<i64>) = match &self.backend {
            Backend::Sqlite(p) => (
                sqlx::migrate!("migrations/sqlite").iter().map(|m| m.version).collect(),
                sqlx::query_scalar("SELECT version FROM cartback_migrations WHERE success").fetch_all(p).await?,
            ),
            Backend::Postgres(p) => (
                sqlx::migrate!("migrations/postgres").iter().map(|m| m.version).collect(),
                sqlx::query_scalar("SELECT version FROM cartback_migrations WHERE success").fetch_all(p).await?,
            ),
        };
        Ok(known.into_iter().filter(|v| !applied.contains(v)).collect())
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await?.rows_affected(),
            Backend::Postgres(p) => sqlx::query("SELECT 1").execute(p).await?.rows_affected(),
        };
        Ok(())
    }

    /// Close the pool.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(p) => p.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }

    /// Keep SQLite's table statistics current (`PRAGMA optimize`; `thorough` analyses every
    /// table that has none, as when a worker starts on a database that never had them): with a
    /// million carts and no statistics, dispatch ran at 793–862 messages/s instead of about
    /// 1,380, the planner's guesses being worse than its counts. It reads a sample of each
    /// index (`analysis_limit`), milliseconds even then. PostgreSQL's autovacuum does this.
    pub async fn optimize(&self, thorough: bool) -> Result<(), StoreError> {
        if let Backend::Sqlite(p) = &self.backend {
            let sql = if thorough { "PRAGMA optimize = 0x10002" } else { "PRAGMA optimize" };
            sqlx::query(sql).execute(p).await?;
        }
        Ok(())
    }
}

impl Tx {
    /// Write the held-back changes and the buffered timeline lines, then commit.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.flush().await?;
        self.write_lines().await?;
        match self.inner {
            Inner::Sqlite { tx, .. } => tx.commit().await?,
            Inner::Postgres { tx, .. } => tx.commit().await?,
        }
        Ok(())
    }

    /// Which dialect this transaction speaks.
    pub fn dialect(&self) -> Dialect {
        match self.inner {
            Inner::Sqlite { .. } => Dialect::Sqlite,
            Inner::Postgres { .. } => Dialect::Postgres,
        }
    }
}

/// Parameter placeholders for SQL built at run time (multi-row statements): `$1, $2, …` on
/// PostgreSQL, `?` on SQLite. SQLite looks a named parameter (`$7`) up by a linear search,
/// once when it parses the statement and once when sqlx binds it, so a statement of a few
/// thousand named parameters spends more time on their names than on its rows (7 % of the
/// database thread's time in an ingest batch); `?` takes the next number without a search.
#[derive(Debug)]
pub(crate) struct Params {
    next: usize,
    numbered: bool,
}

impl Params {
    /// Placeholders for `tx`'s backend.
    pub(crate) fn of(tx: &Tx) -> Self {
        Self::of_dialect(tx.dialect())
    }

    /// Placeholders for `dialect`.
    pub(crate) fn of_dialect(dialect: Dialect) -> Self {
        Self { next: 0, numbered: dialect == Dialect::Postgres }
    }

    /// The next placeholder.
    pub(crate) fn next(&mut self) -> String {
        self.next += 1;
        if self.numbered { format!("${}", self.next) } else { "?".to_owned() }
    }

    /// `(…)` with `count` placeholders.
    pub(crate) fn row(&mut self, count: usize) -> String {
        let slots: Vec<String> = (0..count).map(|_| self.next()).collect();
        format!("({})", slots.join(", "))
    }
}

/// ` AND id NOT IN (…)`, leaving out the carts `ids` (as [`ids_param`] binds them) with
/// parameter `$n`. One text however many carts there are: statements whose text varied with
/// a batch's size were prepared again and again and pushed the hot ones out of the
/// connection's statement cache (at a million carts, the customer-facts query took 100 µs
/// instead of 11).
fn not_in(tx: &Tx, n: usize) -> String {
    match tx.dialect() {
        Dialect::Sqlite => format!(" AND id NOT IN (SELECT value FROM json_each(${n}))"),
        Dialect::Postgres => {
            format!(" AND id NOT IN (SELECT value::bigint FROM json_array_elements_text(${n}::json))")
        }
    }
}

/// Whether a statement whose text grows with its rows (a multi-row `INSERT`, an `IN` list)
/// is kept prepared: only for the one or two rows light traffic repeats. Batches of every
/// size would each be prepared once and push the per-event statements out of the
/// connection's statement cache (100 statements).
pub(crate) fn keep_prepared(rows: usize) -> bool {
    rows <= 2
}

/// `ids` as the JSON array [`not_in`] takes.
fn ids_param(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned())
}

/// A random, unguessable public identifier (128 bits, hex).
pub fn public_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
