//! Concurrent webhooks share transactions (group commit) and still get one answer each:
//! new events 202, repeats 200, and everything answered 202 is stored exactly once.

#[macro_use]
mod common;

use std::sync::Arc;

use chrono::Utc;
use common::{Backend, cart_event, quick_campaign, spawn_app_with};

async fn concurrent_deliveries_share_commits_and_each_gets_its_answer(backend: Backend) {
    const CARTS: usize = 120;
    let t = Arc::new(
        spawn_app_with(backend, &quick_campaign(60, &[("reminder", 3600, "reminder")]), false, |s| {
            s.ops_token = Some(cartback::config::Secret::new("ops"));
        })
        .await,
    );
    // Each cart: an update, a newer update, and a repeat of the first delivery; all at once.
    let mut calls = Vec::new();
    for i in 0..CARTS {
        let older = cart_event("cart.updated", &format!("c{i}"), &format!("p{i}@example.org"), Utc::now());
        let mut newer = older.clone();
        newer["occurred_at"] = serde_json::json!((Utc::now() + chrono::Duration::seconds(5)).to_rfc3339());
        for (id, body) in [(format!("a{i}"), older.clone()), (format!("b{i}"), newer), (format!("a{i}"), older)] {
            let t = t.clone();
            calls.push(tokio::spawn(async move {
                let r = t.post_with_id(&id, &body).await;
                let status = r.status().as_u16();
                if status >= 500 {
                    eprintln!("{id}: {}", r.text().await.unwrap_or_default());
                }
                status
            }));
        }
    }
    let mut accepted = 0;
    let mut repeats = 0;
    for c in calls {
        match c.await.expect("task") {
            202 => accepted += 1,
            200 => repeats += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(accepted, 2 * CARTS, "every new delivery answered 202");
    assert_eq!(repeats, CARTS, "every repeat answered 200");
    assert_eq!(t.scalar("SELECT COUNT(*) FROM webhook_events").await, 2 * CARTS as i64, "stored once each");
    assert_eq!(t.scalar("SELECT COUNT(*) FROM carts").await, CARTS as i64);
    // The newer update won wherever it landed in the batches.
    let newest = t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'active' AND next_run_at IS NOT NULL").await;
    assert_eq!(newest, CARTS as i64, "one watched cart each");
    let metrics = t.metrics("ops").await;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} in\n{metrics}"))
    };
    let events = value("cartback_ingest_batch_events_sum ");
    let batches = value("cartback_ingest_batch_events_count ");
    assert_eq!(events as usize, 3 * CARTS, "every delivery went through the group commit");
    assert!(batches < events, "concurrent deliveries shared transactions ({batches} batches for {events} events)");
    eprintln!("{backend:?}: {events} deliveries in {batches} transactions");
    match Arc::try_unwrap(t) {
        Ok(t) => t.shutdown().await,
        Err(_) => panic!("requests still hold the app"),
    }
}

on_both!(concurrent_deliveries_share_commits_and_each_gets_its_answer);
