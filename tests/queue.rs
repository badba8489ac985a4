//! The job queue's tables: the acknowledgement uses the primary key, not apalis's `LIdx`;
//! far-future jobs wait apart from the due-job query on SQLite.

#[macro_use]
mod common;

use cartback::store::Db;

#[tokio::test]
async fn sqlite_ack_does_not_walk_the_lock_by_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    let db = Db::connect(&url).await.expect("connect");
    cartback::queue::migrate(&db).await.expect("migrate");
    db.close().await;
    // A fresh connection, as `cartback serve` after `cartback migrate` has: EXPLAIN does not
    // re-check a pooled connection's cached schema.
    let db = Db::connect(&url).await.expect("reconnect");
    let plan = cartback::queue::tables::explain_ack_plan(&db).await.expect("plan").join("\n");
    assert!(!plan.contains("LIdx"), "ack walks LIdx:\n{plan}");
    assert!(plan.contains("sqlite_autoindex_Jobs_1"), "ack should look jobs up by id:\n{plan}");
}

mod on_time {
    use std::time::Duration;

    use chrono::Utc;

    use super::common::{Backend, cart_event, quick_campaign, spawn_app, spawn_app_with};

    /// `(run_at seconds, payload)` of every recovery job, whatever the backend.
    async fn recovery_jobs(t: &super::common::TestApp) -> Vec<(i64, serde_json::Value)> {
        let rows: Vec<(i64, String)> = match crate::common::raw(&t.app.db) {
            crate::common::Raw::Sqlite(p) => sqlx::query_as(
                "SELECT run_at, CAST(job AS TEXT) FROM Jobs WHERE job_type = 'cartback.recovery' ORDER BY id",
            )
            .fetch_all(p)
            .await
            .expect("jobs"),
            crate::common::Raw::Postgres(p) => sqlx::query_as(
                "SELECT EXTRACT(EPOCH FROM run_at)::BIGINT, convert_from(job, 'UTF8') FROM apalis.jobs
                 WHERE job_type = 'cartback.recovery' ORDER BY id",
            )
            .fetch_all(p)
            .await
            .expect("jobs"),
        };
        rows.into_iter().map(|(at, job)| (at, serde_json::from_str(&job).expect("json payload"))).collect()
    }

    /// The queue keeps whole seconds: a recovery job is queued one to two seconds ahead, with its
    /// exact due millisecond (the cart's `next_run_at`) in the payload.
    async fn queued_ahead_with_the_exact_due_time(backend: Backend) {
        let t = spawn_app_with(backend, &quick_campaign(3, &[("reminder", 1, "reminder")]), false, |_| {}).await;
        assert_eq!(t.post(&cart_event("cart.updated", "c_1", "anna@example.de", Utc::now())).await.status(), 202);
        let due = t.scalar("SELECT next_run_at FROM carts").await;
        let jobs = recovery_jobs(&t).await;
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        let (run_at, payload) = &jobs[0];
        assert_eq!(payload["due_ms"].as_i64(), Some(due), "{payload}");
        assert!(run_at * 1000 <= due - 1000, "queued at least 1 s ahead: run_at {run_at}, due {due}");
        assert!(run_at * 1000 > due - 2000, "queued at most 2 s ahead: run_at {run_at}, due {due}");
        t.shutdown().await;
    }

    /// A job handed out early waits for its time instead of running, finding itself early and
    /// queueing itself again: one event and one step make exactly two jobs (the abandonment
    /// check and the step), and the message is not early.
    async fn an_early_job_waits_for_its_time(backend: Backend) {
        let t = spawn_app(backend, &quick_campaign(1, &[("reminder", 1, "reminder")])).await;
        assert_eq!(t.post(&cart_event("cart.updated", "c_1", "anna@example.de", Utc::now())).await.status(), 202);
        t.wait_for("cart completed", Duration::from_secs(20), || async {
            (t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'completed'").await == 1).then_some(())
        })
        .await;
        let jobs = recovery_jobs(&t).await;
        assert_eq!(jobs.len(), 2, "one job per decision, none re-queued for being early: {jobs:?}");
        assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'sent' AND completed_at >= due_at").await, 1);
        t.shutdown().await;
    }

    /// On SQLite a job due beyond the horizon waits under its own queue name, where no worker's
    /// look for due jobs reads it; operators still see it as scheduled; it is moved into the
    /// recovery queue once it falls due within the horizon, and a job the move cannot take
    /// (its key already in the recovery queue) does not stop the others. PostgreSQL keeps one
    /// queue.
    async fn a_far_job_waits_apart_until_it_falls_due_soon(backend: Backend) {
        use cartback::queue::tables::JobFilter;
        use cartback::queue::{LATER, QUEUE};
        let t = spawn_app_with(backend, &quick_campaign(3600, &[("reminder", 60, "reminder")]), false, |_| {}).await;
        for (cart, email) in [("c_1", "anna@example.de"), ("c_2", "ben@example.de")] {
            assert_eq!(t.post(&cart_event("cart.updated", cart, email, Utc::now())).await.status(), 202);
        }
        let sqlite = matches!(backend, Backend::Sqlite);
        let in_queue = |name: &'static str| {
            let db = t.app.db.clone();
            async move {
                match crate::common::raw(&db) {
                    crate::common::Raw::Sqlite(p) => {
                        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM Jobs WHERE job_type = $1")
                            .bind(name)
                            .fetch_one(p)
                            .await
                    }
                    crate::common::Raw::Postgres(p) => {
                        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1")
                            .bind(name)
                            .fetch_one(p)
                            .await
                    }
                }
                .expect("count")
            }
        };
        assert_eq!(
            (in_queue(QUEUE).await, in_queue(LATER).await),
            if sqlite { (0, 2) } else { (2, 0) },
            "both due in an hour"
        );
        let mut tx = t.app.db.begin().await.expect("begin");
        let filter = JobFilter { limit: 10, ..JobFilter::default() };
        let listed =
            cartback::queue::tables::list_jobs(&mut tx, cartback::queue::RECOVERY, &filter).await.expect("list");
        tx.commit().await.expect("commit");
        assert_eq!(listed.iter().map(|j| j.state.as_str()).collect::<Vec<_>>(), ["scheduled", "scheduled"]);
        assert_eq!(
            cartback::queue::tables::counts(&t.app.db, cartback::queue::RECOVERY).await.expect("counts").pending,
            2
        );

        let now = Utc::now().timestamp();
        assert_eq!(
            cartback::queue::tables::promote(&t.app.db, LATER, QUEUE, now + 60).await.expect("promote"),
            0,
            "not due within 60 s"
        );
        if sqlite {
            // A copy of the first job's key in the recovery queue: that job cannot move.
            let p = t.app.db.as_sqlite().expect("a SQLite database");
            sqlx::query(
                "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, idempotency_key)
                 SELECT job, 'copy', $1, 'Done', 0, 5, run_at, 0, idempotency_key FROM Jobs ORDER BY rowid LIMIT 1",
            )
            .bind(QUEUE)
            .execute(p)
            .await
            .expect("copy");
        }
        let moved = cartback::queue::tables::promote(&t.app.db, LATER, QUEUE, now + 3600)
            .await
            .expect("a blocked job fails nothing");
        assert_eq!(moved, u64::from(sqlite), "the other job moves");
        let expected = if sqlite { (2, 1) } else { (2, 0) };
        assert_eq!((in_queue(QUEUE).await, in_queue(LATER).await), expected);
        t.shutdown().await;
    }

    on_both!(
        queued_ahead_with_the_exact_due_time,
        an_early_job_waits_for_its_time,
        a_far_job_waits_apart_until_it_falls_due_soon
    );
}
