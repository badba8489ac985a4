//! Housekeeping and read access on the job queue's own tables (apalis's schema).

use super::{Db, StoreError};

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

impl Db {
    /// Delete finished jobs that completed before `before_secs` (Unix seconds); returns how many.
    pub async fn vacuum_jobs(&self, queue: &str, before_secs: i64) -> Result<u64, StoreError> {
        let n = match self {
            Db::Sqlite(p) => sqlx::query("DELETE FROM Jobs WHERE job_type = $1 AND status = 'Done' AND done_at < $2")
                .bind(queue)
                .bind(before_secs)
                .execute(p)
                .await?
                .rows_affected(),
            Db::Postgres(p) => sqlx::query(
                "DELETE FROM apalis.jobs WHERE job_type = $1 AND status = 'Done' AND done_at < to_timestamp($2)",
            )
            .bind(queue)
            .bind(before_secs as f64)
            .execute(p)
            .await?
            .rows_affected(),
        };
        Ok(n)
    }

    /// Keep SQLite's table statistics current (`PRAGMA optimize`; `thorough` analyses every
    /// table that has none, as when a worker starts on a database that never had them): with a
    /// million carts and no statistics, dispatch ran at 793–862 messages/s instead of about
    /// 1,380, the planner's guesses being worse than its counts. It reads a sample of each
    /// index (`analysis_limit`), milliseconds even then. PostgreSQL's autovacuum does this.
    pub async fn optimize(&self, thorough: bool) -> Result<(), StoreError> {
        if let Db::Sqlite(p) = self {
            let sql = if thorough { "PRAGMA optimize = 0x10002" } else { "PRAGMA optimize" };
            sqlx::query(sql).execute(p).await?;
        }
        Ok(())
    }

    /// Move SQLite's pending jobs of `from` due by `until_secs` (Unix seconds) into `to`;
    /// returns how many (a range of the queue's `(job_type, status, run_at)` index).
    pub async fn promote_jobs(&self, from: &str, to: &str, until_secs: i64) -> Result<u64, StoreError> {
        Ok(match self {
            // OR IGNORE: a job whose idempotency key the target queue already has (never made
            // by Cartback: a key is a cart's sequence number, pushed once) stays where it is
            // instead of failing the move of every other job, every time.
            Db::Sqlite(p) => sqlx::query(
                "UPDATE OR IGNORE Jobs SET job_type = $2 WHERE job_type = $1 AND status = 'Pending' AND run_at <= $3",
            )
            .bind(from)
            .bind(to)
            .bind(until_secs)
            .execute(p)
            .await?
            .rows_affected(),
            // PostgreSQL's due-job query (`apalis.get_jobs`, no `IS NULL` branch) has `run_at` as an
            // index condition: 6–8 ms with a million pending. It keeps every job in one queue.
            Db::Postgres(_) => 0,
        })
    }

    /// How many jobs of `queue` and of `waiting` (its far-future jobs) are in each state.
    pub async fn queue_counts(&self, (queue, waiting): (&str, &str)) -> Result<QueueCounts, StoreError> {
        let rows: Vec<(String, i64)> = match self {
            Db::Sqlite(p) => {
                sqlx::query_as("SELECT status, COUNT(*) FROM Jobs WHERE job_type IN ($1, $2) GROUP BY status")
                    .bind(queue)
                    .bind(waiting)
                    .fetch_all(p)
                    .await?
            }
            Db::Postgres(p) => {
                sqlx::query_as("SELECT status, COUNT(*) FROM apalis.jobs WHERE job_type IN ($1, $2) GROUP BY status")
                    .bind(queue)
                    .bind(waiting)
                    .fetch_all(p)
                    .await?
            }
        };
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

    /// SQLite's plan for the queue's acknowledgement statement (a regression guard for the dropped `LIdx`).
    pub async fn explain_ack_plan(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Db::Sqlite(p) => {
                let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(
                    "EXPLAIN QUERY PLAN WITH j AS (SELECT value ->> 'task_id' AS task_id, value ->> 'attempt' AS attempt,
                       value ->> 'result' AS result, value ->> 'status' AS status FROM json_each($1))
                     UPDATE Jobs SET status = j.status, attempts = j.attempt, last_result = j.result,
                       done_at = strftime('%s', 'now') FROM j WHERE Jobs.id = j.task_id AND Jobs.lock_by = $2",
                )
                .bind("[]")
                .bind("w")
                .fetch_all(p)
                .await?;
                Ok(rows.into_iter().map(|r| r.3).collect())
            }
            Db::Postgres(_) => Ok(Vec::new()),
        }
    }
}
