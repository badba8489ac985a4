//! The foundation's user stories, end to end over real HTTP, on SQLite and on PostgreSQL.

#[macro_use]
mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Backend, SHOP, cart_event, header, quick_campaign, restore_link, spawn_app, spawn_app_with};
use serde_json::{Value, json};

on_both!(
    abandoned_cart_receives_each_step_with_a_working_restore_link,
    order_stops_a_sequence_whose_step_is_already_due,
    emptied_cart_stops_the_sequence,
    same_delivery_twice_makes_one_sequence,
    bad_requests_are_refused_and_nothing_is_stored,
    forged_and_expired_links_get_a_friendly_page,
    one_click_unsubscribe_stops_the_sequence,
);

/// Story 2 + 3: a signed event, inactivity, three emails when due, each with a restore link that works.
async fn abandoned_cart_receives_each_step_with_a_working_restore_link(backend: Backend) {
    let t = spawn_app(
        backend,
        &quick_campaign(1, &[("reminder", 1, "reminder"), ("faq", 2, "faq"), ("incentive", 3, "incentive")]),
    )
    .await;
    let resp = t.post(&cart_event("cart.updated", "c_1", "anna@example.de", Utc::now())).await;
    assert_eq!(resp.status(), 202);

    let mails = t
        .wait_for("three emails in the outbox", Duration::from_secs(30), || async {
            let m = t.emails();
            (m.len() == 3).then_some(m)
        })
        .await;
    // The last file lands a moment before its send is recorded and the cart completes.
    t.wait_for("cart completed", Duration::from_secs(10), || async {
        (t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'completed' AND next_run_at IS NULL").await == 1)
            .then_some(())
    })
    .await;
    let subjects: Vec<String> = mails.iter().filter_map(|(_, raw)| header(raw, "Subject")).collect();
    assert!(subjects.iter().any(|s| s.contains("still waiting")), "{subjects:?}");
    assert!(subjects.iter().any(|s| s.contains("help")), "{subjects:?}");
    assert!(subjects.iter().any(|s| s.contains("€5.00 off")), "{subjects:?}");
    for (path, raw) in &mails {
        assert_eq!(header(raw, "To").as_deref(), Some("anna@example.de"), "{}", path.display());
        assert_eq!(header(raw, "List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
        let link = restore_link(raw, &t.base).unwrap_or_else(|| panic!("no restore link in {}", path.display()));
        let resp = t.client.get(&link).send().await.expect("click");
        assert_eq!(resp.status(), 303);
        assert_eq!(resp.headers()["location"], "https://shop.example/cart/recover?key=c_1");
    }
    assert_eq!(t.scalar("SELECT COUNT(*) FROM clicks").await, 3);
    // Never early: every send completed at or after its due time.
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'sent' AND completed_at < due_at").await, 0);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'sent'").await, 3);
    // The incentive code issued once, and it is in the email.
    let code: String = match common::raw(&t.app.db) {
        common::Raw::Sqlite(p) => sqlx::query_scalar("SELECT code FROM incentives").fetch_one(p).await.expect("code"),
        common::Raw::Postgres(p) => sqlx::query_scalar("SELECT code FROM incentives").fetch_one(p).await.expect("code"),
    };
    assert!(mails.iter().any(|(_, raw)| raw.contains(&code)), "incentive email shows {code}");
    t.shutdown().await;
}

/// Story 4: an order for a cart whose step is already due: nothing is sent.
async fn order_stops_a_sequence_whose_step_is_already_due(backend: Backend) {
    let mut t = spawn_app_with(backend, &quick_campaign(1, &[("reminder", 1, "reminder")]), false, |_| {}).await;
    // Activity an hour ago: by the time a worker looks, the reminder is long due.
    let past = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(t.post(&cart_event("cart.updated", "c_2", "bo@example.com", past)).await.status(), 202);
    let order = json!({"type": "order.placed", "occurred_at": Utc::now().to_rfc3339(), "cart_id": "c_2",
                       "order_id": "o_1", "total": "129.90", "currency": "EUR"});
    assert_eq!(t.post(&order).await.status(), 202);
    t.start_worker();
    // The job runs (and finds the cart recovered) …
    t.wait_for("the due job to run", Duration::from_secs(20), || async {
        (t.scalar("SELECT COUNT(*) FROM carts WHERE next_run_at IS NULL").await == 1).then_some(())
    })
    .await;
    // … and sends nothing.
    assert_eq!(t.emails().len(), 0);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends").await, 0);
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'recovered' AND order_total_minor = 12990").await,
        1
    );
    t.shutdown().await;
}

/// Story 4, emptied carts: the first step went out, the emptied cart gets nothing more.
async fn emptied_cart_stops_the_sequence(backend: Backend) {
    let t = spawn_app(backend, &quick_campaign(1, &[("reminder", 1, "reminder"), ("faq", 3, "faq")])).await;
    assert_eq!(t.post(&cart_event("cart.updated", "c_3", "cy@example.com", Utc::now())).await.status(), 202);
    t.wait_for("the reminder", Duration::from_secs(20), || async { (t.emails().len() == 1).then_some(()) }).await;
    let emptied = json!({"type": "cart.emptied", "occurred_at": Utc::now().to_rfc3339(), "cart": {"id": "c_3"}});
    assert_eq!(t.post(&emptied).await.status(), 202);
    t.wait_for("the faq job to find the cart emptied", Duration::from_secs(20), || async {
        (t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'emptied' AND next_run_at IS NULL").await == 1)
            .then_some(())
    })
    .await;
    assert_eq!(t.emails().len(), 1, "no faq after the cart was emptied");
    t.shutdown().await;
}

/// Story 5: the same webhook-id twice creates one sequence.
async fn same_delivery_twice_makes_one_sequence(backend: Backend) {
    let t = spawn_app_with(backend, &quick_campaign(60, &[("reminder", 60, "reminder")]), false, |_| {}).await;
    let body = cart_event("cart.updated", "c_4", "di@example.com", Utc::now());
    let first = t.post_with_id("msg_dup", &body).await;
    assert_eq!(first.status(), 202);
    let second = t.post_with_id("msg_dup", &body).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.json::<Value>().await.expect("json")["status"], "duplicate");
    assert_eq!(t.scalar("SELECT COUNT(*) FROM webhook_events").await, 1);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM carts").await, 1);
    let jobs = cartback::queue::tables::counts(&t.app.db, cartback::queue::RECOVERY).await.expect("counts");
    assert_eq!(jobs.pending, 1, "one pending job for one cart: {jobs:?}");
    t.shutdown().await;
}

async fn problem(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned()).unwrap_or_default();
    assert_eq!(ct, "application/problem+json", "status {status}");
    (status, resp.json().await.expect("problem body"))
}

/// Story 5: every kind of bad request gets its status and a problem document; nothing is stored.
async fn bad_requests_are_refused_and_nothing_is_stored(backend: Backend) {
    let t = spawn_app_with(backend, &quick_campaign(60, &[("reminder", 60, "reminder")]), false, |_| {}).await;
    let now = Utc::now().timestamp();
    let good = serde_json::to_vec(&cart_event("cart.updated", "c_5", "ed@example.com", Utc::now())).expect("json");

    let (s, _) =
        problem(t.post_raw(SHOP, "m1", now, &good, Some("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")).await)
            .await;
    assert_eq!(s, 401, "bad signature");
    let (s, _) = problem(t.post_raw(SHOP, "m2", now - 600, &good, None).await).await;
    assert_eq!(s, 401, "replayed: timestamp 10 minutes old");
    let (s, p) = problem(t.post_raw("nope", "m3", now, &good, None).await).await;
    assert_eq!((s, p["title"].as_str()), (404, Some("Unknown shop")));
    let (s, p) = problem(t.post_raw(SHOP, "m4", now, b"{\"type\": \"cart.updated\",", None).await).await;
    assert_eq!(s, 400, "malformed JSON: {p}");
    let bad_total = String::from_utf8(good.clone()).expect("utf8").replace("\"129.90\"", "\"12,90\"");
    let (s, p) = problem(t.post_raw(SHOP, "m5", now, bad_total.as_bytes(), None).await).await;
    assert_eq!((s, p["field"].as_str()), (422, Some("cart.total")), "{p}");
    let bad_email = String::from_utf8(good.clone()).expect("utf8").replace("ed@example.com", "not-an-email");
    let (s, p) = problem(t.post_raw(SHOP, "m6", now, bad_email.as_bytes(), None).await).await;
    assert_eq!((s, p["field"].as_str()), (422, Some("customer.email")), "{p}");
    let mut huge = good.clone();
    huge.splice(1..1, format!("\"pad\":\"{}\",", "x".repeat(1024 * 1024)).into_bytes());
    let (s, _) = problem(t.post_raw(SHOP, "m7", now, &huge, None).await).await;
    assert_eq!(s, 413);

    assert_eq!(t.scalar("SELECT COUNT(*) FROM webhook_events").await, 0);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM carts").await, 0);
    assert_eq!(cartback::queue::tables::counts(&t.app.db, cartback::queue::RECOVERY).await.expect("counts").pending, 0);
    // And the good one still goes through afterwards.
    assert_eq!(t.post_raw(SHOP, "m8", now, &good, None).await.status(), 202);
    t.shutdown().await;
}

/// Story 3: forged and expired tokens get a friendly 4xx page, never a server error.
async fn forged_and_expired_links_get_a_friendly_page(backend: Backend) {
    let t = spawn_app_with(backend, &quick_campaign(60, &[("reminder", 60, "reminder")]), false, |_| {}).await;
    let resp = t.client.get(format!("{}/r/not-a-token", t.base)).send().await.expect("get");
    assert_eq!(resp.status(), 404);
    assert!(resp.headers()["content-type"].to_str().expect("ct").starts_with("text/html"));
    assert!(resp.text().await.expect("body").contains("link doesn't work"));
    let expired = t.app.keys.sign(
        cartback::links::Purpose::Restore,
        "00112233445566778899aabbccddeeff",
        Utc::now().timestamp() - 1,
    );
    let resp = t.client.get(format!("{}/r/{expired}", t.base)).send().await.expect("get");
    assert_eq!(resp.status(), 410);
    // A valid signature for a send that does not exist is not a server error either.
    let unknown = t.app.keys.sign(
        cartback::links::Purpose::Restore,
        "00112233445566778899aabbccddeeff",
        Utc::now().timestamp() + 60,
    );
    assert_eq!(t.client.get(format!("{}/r/{unknown}", t.base)).send().await.expect("get").status(), 404);
    t.shutdown().await;
}

/// RFC 8058: POST to the List-Unsubscribe URL suppresses the address and ends the sequence.
async fn one_click_unsubscribe_stops_the_sequence(backend: Backend) {
    let t = spawn_app(backend, &quick_campaign(1, &[("reminder", 1, "reminder"), ("faq", 3, "faq")])).await;
    assert_eq!(t.post(&cart_event("cart.updated", "c_6", "fay@example.com", Utc::now())).await.status(), 202);
    let (_, raw) =
        t.wait_for("the reminder", Duration::from_secs(20), || async { t.emails().into_iter().next() }).await;
    let url = header(&raw, "List-Unsubscribe").expect("List-Unsubscribe").trim_matches(['<', '>']).to_owned();
    // A GET (mail scanners follow links) changes nothing.
    assert_eq!(t.client.get(&url).send().await.expect("get").status(), 200);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM suppressions").await, 0);
    let resp = t.client.post(&url).body("List-Unsubscribe=One-Click").send().await.expect("post");
    assert_eq!(resp.status(), 200);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM suppressions").await, 1);
    t.wait_for("the faq job to find the cart unsubscribed", Duration::from_secs(20), || async {
        (t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'unsubscribed' AND next_run_at IS NULL").await == 1)
            .then_some(())
    })
    .await;
    assert_eq!(t.emails().len(), 1);
    t.shutdown().await;
}
