//! Operators: the `/ops` API behind its token, retry and cancel on the real queue tables,
//! a cart's timeline, the funnel, pause/resume and `/metrics` — on SQLite and PostgreSQL.

#[macro_use]
mod common;

use std::time::Duration;

use cartback::config::Secret;
use chrono::Utc;
use common::{Backend, cart_event, quick_campaign, restore_link, spawn_app_with};
use serde_json::{Value, json};

const TOKEN: &str = "ops-token-for-tests";

on_both!(
    ops_endpoints_need_the_token,
    retry_and_cancel_never_touch_a_held_job,
    timeline_funnel_and_metrics_tell_the_story,
    a_paused_campaign_defers_and_resumes
);

fn with_token(s: &mut cartback::config::Settings) {
    s.ops_token = Some(Secret::new(TOKEN));
}

async fn get(t: &common::TestApp, path: &str) -> (u16, Value) {
    let r = t.client.get(format!("{}{path}", t.base)).bearer_auth(TOKEN).send().await.expect("get");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(t: &common::TestApp, path: &str) -> (u16, Value) {
    let r = t.client.post(format!("{}{path}", t.base)).bearer_auth(TOKEN).send().await.expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn ops_endpoints_need_the_token(backend: Backend) {
    let campaign = quick_campaign(60, &[("reminder", 60, "reminder")]);
    let off = spawn_app_with(backend, &campaign, false, |_| {}).await;
    let r = off.client.get(format!("{}/ops/jobs", off.base)).bearer_auth(TOKEN).send().await.expect("get");
    assert_eq!(r.status(), 401, "no ops_token configured: /ops is closed");
    off.shutdown().await;

    let t = spawn_app_with(backend, &campaign, false, with_token).await;
    for path in ["/ops/jobs", "/ops/stats", "/metrics", "/ops/carts/x", "/ops/outbound", "/ops/stats?by=reason"] {
        let none = t.client.get(format!("{}{path}", t.base)).send().await.expect("get");
        assert_eq!(none.status(), 401, "{path} without a token");
        assert_eq!(none.headers()["content-type"], "application/problem+json");
        let wrong = t.client.get(format!("{}{path}", t.base)).bearer_auth("nope").send().await.expect("get");
        assert_eq!(wrong.status(), 401, "{path} with a wrong token");
    }
    assert_eq!(get(&t, "/ops/jobs").await.0, 200);
    assert_eq!(get(&t, "/ops/carts/nope").await.0, 404);
    let (s, p) = get(&t, "/ops/jobs?state=stuck").await;
    assert_eq!((s, p["field"].as_str()), (400, Some("state")));
    assert_eq!(get(&t, "/ops/outbound?state=dead").await, (200, serde_json::json!([])));
    let (s, p) = get(&t, "/ops/outbound?state=lost").await;
    assert_eq!((s, p["field"].as_str()), (400, Some("state")));
    let (s, p) = post(&t, "/ops/outbound/abc/retry").await;
    assert_eq!((s, p["field"].as_str()), (400, Some("id")));
    assert_eq!(post(&t, "/ops/outbound/999/retry").await.0, 404);
    let (s, p) = get(&t, "/ops/stats?by=colour").await;
    assert_eq!((s, p["field"].as_str()), (400, Some("by")));
    let (s, p) = get(&t, "/ops/stats?by=reason").await;
    assert!(s == 200 && p["reported_by_shop"].is_array() && p["reported_by_customers"].is_array(), "{p}");
    // Health stays open for load balancers.
    assert_eq!(t.client.get(format!("{}/readyz", t.base)).send().await.expect("get").status(), 200);
    t.shutdown().await;
}

async fn retry_and_cancel_never_touch_a_held_job(backend: Backend) {
    let mut t = spawn_app_with(backend, &quick_campaign(60, &[("reminder", 60, "reminder")]), false, with_token).await;
    assert_eq!(t.post(&cart_event("cart.updated", "c_q", "q@example.com", Utc::now())).await.status(), 202);
    let (_, jobs) = get(&t, "/ops/jobs?cart=c_q").await;
    let jobs = jobs.as_array().expect("array").clone();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["state"], "scheduled");
    let id = jobs[0]["id"].as_str().expect("id").to_owned();

    assert_eq!(post(&t, &format!("/ops/jobs/{id}/retry")).await.0, 409, "a waiting job is not retried");
    let (s, _) = post(&t, &format!("/ops/jobs/{id}/cancel")).await;
    assert_eq!(s, 200);
    assert_eq!(get(&t, &format!("/ops/jobs/{id}")).await.1["job"]["state"], "cancelled");
    assert_eq!(t.scalar("SELECT COUNT(*) FROM carts WHERE next_run_at IS NULL").await, 1, "the cart waits");
    assert_eq!(post(&t, &format!("/ops/jobs/{id}/cancel")).await.0, 409, "cancelled twice");

    // A job a worker holds is left alone.
    let hold = match common::raw(&t.app.db) {
        common::Raw::Sqlite(p) => {
            sqlx::query("INSERT INTO Workers (id, worker_type, storage_name, layers, last_seen) VALUES ('w1', 'cartback.recovery', 'x', '', strftime('%s','now'))").execute(p).await.expect("worker");
            sqlx::query("UPDATE Jobs SET status = 'Running', lock_by = 'w1' WHERE id = $1")
                .bind(&id)
                .execute(p)
                .await
                .expect("hold")
                .rows_affected()
        }
        common::Raw::Postgres(p) => {
            sqlx::query("INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen) VALUES ('w1', 'cartback.recovery', 'x', '', now())").execute(p).await.expect("worker");
            sqlx::query("UPDATE apalis.jobs SET status = 'Running', lock_by = 'w1' WHERE id = $1")
                .bind(&id)
                .execute(p)
                .await
                .expect("hold")
                .rows_affected()
        }
    };
    assert_eq!(hold, 1);
    let (s, p) = post(&t, &format!("/ops/jobs/{id}/cancel")).await;
    assert_eq!(s, 409, "{p}");
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("held by worker w1")), "{p}");
    assert_eq!(post(&t, &format!("/ops/jobs/{id}/retry")).await.0, 409);

    // Released and failed for good: retry puts it back, due now, and the worker runs it.
    match common::raw(&t.app.db) {
        common::Raw::Sqlite(p) => sqlx::query("UPDATE Jobs SET status = 'Killed', lock_by = NULL, last_result = '{\"Err\":\"boom\"}' WHERE id = $1").bind(&id).execute(p).await.expect("kill").rows_affected(),
        common::Raw::Postgres(p) => sqlx::query("UPDATE apalis.jobs SET status = 'Killed', lock_by = NULL, last_result = '{\"Err\":\"boom\"}'::jsonb WHERE id = $1").bind(&id).execute(p).await.expect("kill").rows_affected(),
    };
    assert_eq!(get(&t, &format!("/ops/jobs/{id}")).await.1["job"]["state"], "dead");
    let (s, p) = post(&t, &format!("/ops/jobs/{id}/retry")).await;
    assert_eq!(s, 200, "{p}");
    t.start_worker();
    t.wait_for("the retried job to run", Duration::from_secs(20), || async {
        let (_, j) = get(&t, &format!("/ops/jobs/{id}")).await;
        (j["job"]["state"] == "done").then_some(())
    })
    .await;
    // It found the cart not idle yet and scheduled the next check: the sequence goes on.
    let (_, jobs) = get(&t, "/ops/jobs?cart=c_q&state=scheduled").await;
    assert_eq!(jobs.as_array().map(Vec::len), Some(1));
    t.shutdown().await;
}

async fn timeline_funnel_and_metrics_tell_the_story(backend: Backend) {
    let t = spawn_app_with(backend, &quick_campaign(1, &[("reminder", 1, "reminder")]), true, with_token).await;
    assert_eq!(t.post(&cart_event("cart.updated", "c_s", "s@example.com", Utc::now())).await.status(), 202);
    let (_, raw) =
        t.wait_for("the reminder", Duration::from_secs(20), || async { t.emails().into_iter().next() }).await;
    // The file lands a moment before the send is recorded as sent.
    t.wait_for("the send to be recorded", Duration::from_secs(10), || async {
        (t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'sent'").await == 1).then_some(())
    })
    .await;
    let link = restore_link(&raw, &t.base).expect("link");
    assert_eq!(t.client.get(&link).send().await.expect("click").status(), 303);
    let order = json!({"type": "order.placed", "occurred_at": Utc::now().to_rfc3339(), "cart_id": "c_s",
                       "order_id": "o_9", "total": "129.90", "currency": "EUR"});
    assert_eq!(t.post(&order).await.status(), 202);

    let (s, cart) = get(&t, "/ops/carts/c_s").await;
    assert_eq!(s, 200);
    let whats: Vec<&str> =
        cart["timeline"].as_array().expect("timeline").iter().filter_map(|e| e["what"].as_str()).collect();
    for w in ["event", "abandoned", "entered", "sent", "click", "recovered"] {
        assert!(whats.contains(&w), "{w} missing from {whats:?}");
    }
    assert_eq!(cart["cart"]["email"], "s***@example.com", "personal data is masked");
    assert_eq!(cart["sends"][0]["clicks"], 1);

    let (_, stats) = get(&t, "/ops/stats?since=1h").await;
    let c = &stats["campaigns"][0];
    assert_eq!(c["campaign"], "quick");
    assert_eq!((c["entered"].as_i64(), c["recovered"].as_i64()), (Some(1), Some(1)));
    assert_eq!(c["revenue"]["EUR"], "129.90");
    assert_eq!(c["steps"][0]["sent"], 1);
    assert_eq!(c["steps"][0]["clicks"], 1);

    // The console's own reads on this backend: the cart found by its customer's address in
    // another spelling, the day-by-day series, and the job list's step filter and paging.
    use cartback::ops::console::{CartQuery, search_carts, series};
    let found = search_carts(&t.app, &CartQuery::parse(" S@Example.COM ").expect("query"), 10).await.expect("search");
    assert_eq!(found.iter().map(|c| c.external_id.as_str()).collect::<Vec<_>>(), ["c_s"]);
    let none = search_carts(&t.app, &CartQuery::parse("other@example.com").expect("query"), 10).await.expect("search");
    assert!(none.is_empty());
    let days = series(&t.app, Utc::now(), 7, Some("quick"), None).await.expect("series");
    assert_eq!(days.len(), 7);
    let sum = |f: &dyn Fn(&cartback::ops::console::Day) -> i64| days.iter().map(f).sum::<i64>();
    assert_eq!(sum(&|d| d.sends.get(&("email".to_owned(), "sent".to_owned())).copied().unwrap_or(0)), 1);
    assert_eq!(sum(&|d| d.recovered), 1);
    assert_eq!(sum(&|d| d.revenue.get("EUR").copied().unwrap_or(0)), 12_990);
    let other = series(&t.app, Utc::now(), 7, Some("quick"), Some("no-such-step")).await.expect("series");
    assert!(other.iter().all(|d| d.sends.is_empty() && d.recovered == 0));
    use cartback::queue::tables::JobFilter;
    let all = JobFilter { campaign: Some("quick".into()), limit: 100, ..JobFilter::default() };
    let n = cartback::ops::jobs(&t.app, &all).await.expect("jobs").len();
    assert!(n >= 2, "{n} jobs");
    let step = t.scalar("SELECT next_step FROM carts").await;
    let at_step = JobFilter { step: Some(step), ..all.clone() };
    assert_eq!(cartback::ops::jobs(&t.app, &at_step).await.expect("jobs").len(), n);
    let elsewhere = JobFilter { step: Some(step + 1), ..all.clone() };
    assert_eq!(cartback::ops::jobs(&t.app, &elsewhere).await.expect("jobs").len(), 0);
    let second_page = JobFilter { offset: 1, ..all.clone() };
    assert_eq!(cartback::ops::jobs(&t.app, &second_page).await.expect("jobs").len(), n - 1);

    let metrics = t.metrics(TOKEN).await;
    assert!(
        metrics.contains(r#"cartback_events_received_total{type="cart.updated",result="accepted"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"cartback_sends_total{channel="email",outcome="sent"} 1"#), "{metrics}");
    assert!(metrics.contains("cartback_send_lateness_seconds_count 1"), "{metrics}");
    assert!(metrics.contains("cartback_jobs{state=\"done\"}"), "{metrics}");
    t.shutdown().await;
}

async fn a_paused_campaign_defers_and_resumes(backend: Backend) {
    let t = spawn_app_with(backend, &quick_campaign(1, &[("reminder", 1, "reminder")]), true, with_token).await;
    assert_eq!(post(&t, "/ops/campaigns/quick/pause").await.0, 200);
    assert_eq!(
        t.post(&cart_event("cart.updated", "c_p", "p@example.com", Utc::now() - chrono::Duration::hours(1)))
            .await
            .status(),
        202
    );
    t.wait_for("the deferral", Duration::from_secs(20), || async {
        (t.scalar("SELECT COUNT(*) FROM cart_log WHERE what = 'deferred' AND detail LIKE '%paused%'").await == 1)
            .then_some(())
    })
    .await;
    assert_eq!(t.emails().len(), 0, "nothing goes out while paused");
    assert_eq!(post(&t, "/ops/campaigns/quick/resume").await.0, 200);
    t.wait_for("the deferred reminder after resume", Duration::from_secs(40), || async {
        (t.emails().len() == 1).then_some(())
    })
    .await;
    t.shutdown().await;
}
