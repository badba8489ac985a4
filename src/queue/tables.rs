//! Every statement Cartback runs on apalis's own tables, in both dialects: pushing jobs inside
//! Cartback's transactions, housekeeping, and what operators list, retry and cancel. apalis
//! 1.0 has no API for these; an apalis release that changes its schema is met here, and only
//! here (the store runs these statements through [`crate::store::foreign`]).
//!
//! Statements that change a job never touch one a worker holds (`Queued`/`Running` with a lock).

use crate::store::{Db, Dialect, Dialects, RowInsert, StoreError, Tx, Value};

/// Apply the queue's own migrations (before Cartback's, some of which refer to its tables).
pub async fn migrate(db: &Db) -> Result<(), StoreError> {
    if let Some(pool) = db.as_sqlite() {
        apalis_sqlite::SqliteStorage::migrations().run(pool).await?;
    }
    if let Some(pool) = db.as_postgres() {
        apalis_postgres::PostgresStorage::setup(pool).await.map_err(|e| StoreError::Queue(e.to_string()))?;
    }
    Ok(())
}

/// One job, as apalis's own push writes it (apalis-sqlite's `queries/task/sink.sql`,
/// apalis-postgres's with `ON CONFLICT` added: a job whose idempotency key exists is left
/// alone instead of failing the transaction that pushes it). Parameters: payload, id, queue,
/// max attempts, run at (Unix seconds), priority, idempotency key.
pub(crate) static PUSH: RowInsert = RowInsert {
    head: Dialects {
        sqlite: "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, last_result, lock_at, \
                 lock_by, done_at, priority, metadata, idempotency_key) VALUES ",
        postgres: "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, \
                   metadata, idempotency_key) VALUES ",
    },
    row: Dialects {
        sqlite: "(?, ?, ?, 'Pending', 0, ?, ?, NULL, NULL, NULL, NULL, ?, NULL, ?)",
        postgres: "(?, ?, ?, 'Pending', 0, ?, to_timestamp(?), ?, NULL, ?)",
    },
    tail: Dialects {
        sqlite: " ON CONFLICT (job_type, idempotency_key) DO NOTHING",
        postgres: " ON CONFLICT (job_type, idempotency_key) DO NOTHING",
    },
    postgres_unnest: Some(
        "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, metadata, \
         idempotency_key) SELECT j, i, q, 'Pending', 0, m, to_timestamp(r), p, NULL, k \
         FROM unnest({0}::bytea[], {1}::text[], {2}::text[], {3}::bigint[], {4}::bigint[], {5}::bigint[], {6}::text[]) \
         AS t(j, i, q, m, r, p, k) ON CONFLICT (job_type, idempotency_key) DO NOTHING",
    ),
};

/// A job row for [`PUSH`].
pub(crate) fn job_row(payload: Vec<u8>, queue: &str, max_attempts: i64, run_at_secs: i64, key: String) -> Vec<Value> {
    vec![
        Value::Bytes(payload),
        Value::Text(ulid::Ulid::generate().to_string()),
        Value::from(queue),
        Value::Int(max_attempts),
        Value::Int(run_at_secs),
        Value::Int(0),
        Value::Text(key),
    ]
}

/// Jobs by state, as the queue stores them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueCounts {
    /// Waiting for their time.
    pub pending: i64,
    /// Fetched or running.
    pub running: i64,
    /// Finished.
    pub done: i64,
    /// Failed (may be retried by the queue).
    pub failed: i64,
    /// Gave up.
    pub killed: i64,
}

/// Delete finished jobs of `queue` that completed before `before_secs` (Unix seconds);
/// returns how many.
pub async fn vacuum(db: &Db, queue: &str, before_secs: i64) -> Result<u64, StoreError> {
    const SQL: Dialects = Dialects {
        sqlite: "DELETE FROM Jobs WHERE job_type = $1 AND status = 'Done' AND done_at < $2",
        postgres: "DELETE FROM apalis.jobs WHERE job_type = $1 AND status = 'Done' AND done_at < to_timestamp($2)",
    };
    let before = match db.dialect() {
        Dialect::Sqlite => Value::Int(before_secs),
        Dialect::Postgres => Value::Float(before_secs as f64),
    };
    db.execute(&SQL, &[queue.into(), before]).await
}

/// Move SQLite's pending jobs of `from` due by `until_secs` (Unix seconds) into `to`; returns
/// how many (a range of the queue's `(job_type, status, run_at)` index). PostgreSQL's due-job
/// query (`apalis.get_jobs`, no `IS NULL` branch) has `run_at` as an index condition (6–8 ms
/// with a million pending), so it keeps every job in one queue and this does nothing there.
pub async fn promote(db: &Db, from: &str, to: &str, until_secs: i64) -> Result<u64, StoreError> {
    // OR IGNORE: a job whose idempotency key the target queue already has (never made by
    // Cartback: a key is a cart's sequence number, pushed once) stays where it is instead of
    // failing the move of every other job, every time.
    const SQL: Dialects = Dialects {
        sqlite: "UPDATE OR IGNORE Jobs SET job_type = $2 WHERE job_type = $1 AND status = 'Pending' AND run_at <= $3",
        postgres: "",
    };
    if db.dialect() == Dialect::Postgres {
        return Ok(0);
    }
    db.execute(&SQL, &[from.into(), to.into(), until_secs.into()]).await
}

/// How many jobs of `queue` and of `waiting` (its far-future jobs) are in each state.
pub async fn counts(db: &Db, (queue, waiting): (&str, &str)) -> Result<QueueCounts, StoreError> {
    const SQL: Dialects = Dialects {
        sqlite: "SELECT status, COUNT(*) FROM Jobs WHERE job_type IN ($1, $2) GROUP BY status",
        postgres: "SELECT status, COUNT(*) FROM apalis.jobs WHERE job_type IN ($1, $2) GROUP BY status",
    };
    let rows: Vec<(String, i64)> = db.fetch_all(&SQL, &[queue.into(), waiting.into()]).await?;
    let mut c = QueueCounts::default();
    for (status, n) in rows {
        match status.as_str() {
            "Pending" => c.pending += n,
            "Queued" | "Running" => c.running += n,
            "Done" => c.done += n,
            "Failed" => c.failed += n,
            _ => c.killed += n,
        }
    }
    Ok(c)
}

/// SQLite's plan for the queue's acknowledgement statement (a regression guard for the
/// dropped `LIdx`); empty on PostgreSQL.
pub async fn explain_ack_plan(db: &Db) -> Result<Vec<String>, StoreError> {
    const SQL: Dialects = Dialects {
        sqlite: "EXPLAIN QUERY PLAN WITH j AS (SELECT value ->> 'task_id' AS task_id, value ->> 'attempt' AS attempt,
                   value ->> 'result' AS result, value ->> 'status' AS status FROM json_each($1))
                 UPDATE Jobs SET status = j.status, attempts = j.attempt, last_result = j.result,
                   done_at = strftime('%s', 'now') FROM j WHERE Jobs.id = j.task_id AND Jobs.lock_by = $2",
        postgres: "",
    };
    if db.dialect() == Dialect::Postgres {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, i64, i64, String)> = db.fetch_all(&SQL, &["[]".into(), "w".into()]).await?;
    Ok(rows.into_iter().map(|r| r.3).collect())
}

/// One queue job as operators see it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct JobRecord {
    /// The queue's job id (ULID).
    pub id: String,
    /// pending | scheduled | running | done | failed | dead | cancelled
    pub state: String,
    /// The queue's own status word.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// When it is due (Unix seconds).
    pub run_at: i64,
    /// The worker holding it.
    pub lock_by: Option<String>,
    /// When it was locked (Unix seconds).
    pub lock_at: Option<i64>,
    /// When it finished (Unix seconds).
    pub done_at: Option<i64>,
    /// The last result or error, as the queue stored it.
    pub last_result: Option<String>,
    /// Cart row id from the payload.
    pub cart_id: Option<i64>,
    /// Cart seq from the payload.
    pub seq: Option<i64>,
    /// Shop of the cart.
    pub shop: Option<String>,
    /// The shop's cart id.
    pub cart: Option<String>,
    /// Campaign the cart entered.
    pub campaign: Option<String>,
    /// The cart's current seq (a job with another seq is superseded and does nothing).
    pub cart_seq: Option<i64>,
    /// The cart's next step index.
    pub next_step: Option<i64>,
    /// The cart's status.
    pub cart_status: Option<String>,
}

impl JobRecord {
    /// The job's error, when its last result was one (apalis stores `{"Err": "…"}`).
    pub fn error(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(self.last_result.as_deref()?).ok()?;
        let e = v.get("Err")?;
        Some(e.as_str().map_or_else(|| e.to_string(), str::to_owned))
    }
}

/// Filters for [`list_jobs`].
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// One state.
    pub state: Option<String>,
    /// One shop.
    pub shop: Option<String>,
    /// One campaign.
    pub campaign: Option<String>,
    /// One cart (the shop's id).
    pub cart: Option<String>,
    /// Carts whose next step is this index of their campaign (with `campaign`, one step).
    pub step: Option<i64>,
    /// At most this many, newest due time first …
    pub limit: i64,
    /// … after skipping this many (paging).
    pub offset: i64,
}

const JOBS: Dialects = Dialects {
    sqlite: "SELECT * FROM (
  SELECT j.id, j.status, CAST(j.attempts AS INTEGER) AS attempts, CAST(j.max_attempts AS INTEGER) AS max_attempts,
    j.run_at, j.lock_by, j.lock_at, j.done_at, j.last_result,
    CASE WHEN j.status = 'Pending' AND j.run_at > strftime('%s', 'now') THEN 'scheduled'
         WHEN j.status = 'Pending' THEN 'pending'
         WHEN j.status IN ('Queued', 'Running') THEN 'running'
         WHEN j.status = 'Done' THEN 'done'
         WHEN j.status = 'Failed' AND j.attempts < j.max_attempts THEN 'failed'
         WHEN j.status = 'Killed' AND j.last_result LIKE '%cancelled by operator%' THEN 'cancelled'
         ELSE 'dead' END AS state,
    CAST(json_extract(CAST(j.job AS TEXT), '$.cart') AS INTEGER) AS cart_id,
    CAST(json_extract(CAST(j.job AS TEXT), '$.seq') AS INTEGER) AS seq,
    c.shop, c.external_id AS cart, c.campaign, c.seq AS cart_seq, c.next_step, c.status AS cart_status
  FROM Jobs j LEFT JOIN carts c ON c.id = CAST(json_extract(CAST(j.job AS TEXT), '$.cart') AS INTEGER)
  WHERE j.job_type IN ($1, $8)) AS x
WHERE ($2 IS NULL OR state = $2) AND ($3 IS NULL OR shop = $3) AND ($4 IS NULL OR campaign = $4)
  AND ($5 IS NULL OR cart = $5) AND ($6 IS NULL OR id = $6) AND ($9 IS NULL OR next_step = $9)
ORDER BY run_at DESC, id DESC LIMIT $7 OFFSET $10",
    postgres: "SELECT * FROM (
  SELECT j.id, j.status, j.attempts::BIGINT AS attempts, j.max_attempts::BIGINT AS max_attempts,
    EXTRACT(EPOCH FROM j.run_at)::BIGINT AS run_at, j.lock_by, EXTRACT(EPOCH FROM j.lock_at)::BIGINT AS lock_at,
    EXTRACT(EPOCH FROM j.done_at)::BIGINT AS done_at, j.last_result::TEXT AS last_result,
    CASE WHEN j.status = 'Pending' AND j.run_at > now() THEN 'scheduled'
         WHEN j.status = 'Pending' THEN 'pending'
         WHEN j.status IN ('Queued', 'Running') THEN 'running'
         WHEN j.status = 'Done' THEN 'done'
         WHEN j.status = 'Failed' AND j.attempts < j.max_attempts THEN 'failed'
         WHEN j.status = 'Killed' AND j.last_result::TEXT LIKE '%cancelled by operator%' THEN 'cancelled'
         ELSE 'dead' END AS state,
    (convert_from(j.job, 'UTF8')::jsonb ->> 'cart')::BIGINT AS cart_id,
    (convert_from(j.job, 'UTF8')::jsonb ->> 'seq')::BIGINT AS seq,
    c.shop, c.external_id AS cart, c.campaign, c.seq AS cart_seq, c.next_step, c.status AS cart_status
  FROM apalis.jobs j LEFT JOIN carts c ON c.id = (convert_from(j.job, 'UTF8')::jsonb ->> 'cart')::BIGINT
  WHERE j.job_type IN ($1, $8)) AS x
WHERE ($2::TEXT IS NULL OR state = $2) AND ($3::TEXT IS NULL OR shop = $3) AND ($4::TEXT IS NULL OR campaign = $4)
  AND ($5::TEXT IS NULL OR cart = $5) AND ($6::TEXT IS NULL OR id = $6) AND ($9::BIGINT IS NULL OR next_step = $9)
ORDER BY run_at DESC, id DESC LIMIT $7 OFFSET $10",
};

/// Jobs of `queue` and of `waiting` (its far-future jobs) matching `f`.
pub async fn list_jobs(
    tx: &mut Tx,
    (queue, waiting): (&str, &str),
    f: &JobFilter,
) -> Result<Vec<JobRecord>, StoreError> {
    jobs_query(tx, (queue, waiting), f, None).await
}

/// One job of `queue` or `waiting` by id.
pub async fn job(tx: &mut Tx, (queue, waiting): (&str, &str), id: &str) -> Result<Option<JobRecord>, StoreError> {
    let one = JobFilter { limit: 1, ..JobFilter::default() };
    Ok(jobs_query(tx, (queue, waiting), &one, Some(id)).await?.into_iter().next())
}

async fn jobs_query(
    tx: &mut Tx,
    (queue, waiting): (&str, &str),
    f: &JobFilter,
    id: Option<&str>,
) -> Result<Vec<JobRecord>, StoreError> {
    let values = [
        queue.into(),
        f.state.as_deref().into(),
        f.shop.as_deref().into(),
        f.campaign.as_deref().into(),
        f.cart.as_deref().into(),
        id.into(),
        Value::Int(f.limit.clamp(1, 10_000)),
        waiting.into(),
        f.step.into(),
        Value::Int(f.offset.max(0)),
    ];
    tx.fetch_all(&JOBS, &values).await
}

/// Put a failed, dead or cancelled job back in `queue`, due now. `false` if it changed meanwhile.
pub async fn requeue(tx: &mut Tx, queue: &str, id: &str, from_status: &str) -> Result<bool, StoreError> {
    const SQL: Dialects = Dialects {
        sqlite: "UPDATE Jobs SET status = 'Pending', attempts = 0, run_at = strftime('%s', 'now'), lock_by = NULL,
                 lock_at = NULL, done_at = NULL, last_result = NULL, job_type = $3
                 WHERE id = $1 AND status = $2 AND status IN ('Failed', 'Killed')",
        postgres: "UPDATE apalis.jobs SET status = 'Pending', attempts = 0, run_at = now(), lock_by = NULL,
                   lock_at = NULL, done_at = NULL, last_result = NULL, job_type = $3
                   WHERE id = $1 AND status = $2 AND status IN ('Failed', 'Killed')",
    };
    Ok(tx.execute(&SQL, &[id.into(), from_status.into(), queue.into()]).await? == 1)
}

/// Cancel a job no worker holds. `false` if a worker took it meanwhile.
pub async fn cancel(tx: &mut Tx, id: &str) -> Result<bool, StoreError> {
    const SQL: Dialects = Dialects {
        sqlite: "UPDATE Jobs SET status = 'Killed', done_at = strftime('%s', 'now'),
                 last_result = '{\"Err\":\"cancelled by operator\"}'
                 WHERE id = $1 AND status IN ('Pending', 'Failed') AND lock_by IS NULL",
        postgres: "UPDATE apalis.jobs SET status = 'Killed', done_at = now(),
                   last_result = '{\"Err\":\"cancelled by operator\"}'::jsonb
                   WHERE id = $1 AND status IN ('Pending', 'Failed') AND lock_by IS NULL",
    };
    Ok(tx.execute(&SQL, &[id.into()]).await? == 1)
}
