//! Campaign selection, time-zone resolution and reloading, against the real service.

mod common;

use std::time::Duration;

use cartback::store::Db;
use chrono::Utc;
use common::{Backend, quick_campaign, spawn_app_with};
use serde_json::{Value, json};

fn event(id: &str, total: &str, customer: Value) -> Value {
    json!({
        "type": "cart.updated", "occurred_at": Utc::now().to_rfc3339(),
        "cart": {"id": id, "currency": "EUR", "total": total, "items": [{"title": "Thing", "quantity": 1, "price": total}]},
        "customer": customer,
    })
}

async fn cart_field(db: &Db, id: &str, column: &'static str) -> Option<String> {
    let sql: &'static str = match column {
        "timezone" => "SELECT timezone FROM carts WHERE external_id = $1",
        "timezone_source" => "SELECT timezone_source FROM carts WHERE external_id = $1",
        "campaign" => "SELECT campaign FROM carts WHERE external_id = $1",
        "status" => "SELECT status FROM carts WHERE external_id = $1",
        _ => panic!("unknown column {column}"),
    };
    match common::raw(db) {
        common::Raw::Sqlite(p) => sqlx::query_scalar(sql).bind(id).fetch_one(p).await.expect("cart"),
        common::Raw::Postgres(p) => sqlx::query_scalar(sql).bind(id).fetch_one(p).await.expect("cart"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customers_zone_comes_from_the_first_source_that_knows_it() {
    let t =
        spawn_app_with(Backend::Sqlite, &quick_campaign(600, &[("reminder", 600, "reminder")]), false, |_| {}).await;
    let cases = [
        (
            "z_event",
            json!({"id": "cu_a", "timezone": "America/Chicago", "phone": "+819012345678"}),
            "America/Chicago",
            "event: customer.timezone",
        ),
        ("z_history", json!({"id": "cu_a"}), "America/Chicago", "customer history: zone reported with an earlier cart"),
        (
            "z_phone",
            json!({"id": "cu_b", "phone": "+81 90-1234-5678", "country": "US"}),
            "Asia/Tokyo",
            "phone number country JP",
        ),
        ("z_country", json!({"id": "cu_c", "country": "BR"}), "America/Sao_Paulo", "customer country BR"),
        ("z_shop", json!({"id": "cu_d"}), "Europe/Berlin", "shop default (test)"),
    ];
    for (id, customer, _, _) in &cases {
        assert_eq!(t.post(&event(id, "20.00", customer.clone())).await.status(), 202, "{id}");
    }
    for (id, _, zone, source) in cases {
        assert_eq!(cart_field(&t.app.db, id, "timezone").await.as_deref(), Some(zone), "{id}");
        assert_eq!(cart_field(&t.app.db, id, "timezone_source").await.as_deref(), Some(source), "{id}");
    }
    t.shutdown().await;
}

const VIP: &str = "name: vip\npriority: 1\nabandon_after: 1s\naudience: { min_total: 100, shops: [test] }\nsteps:\n  - id: reminder\n    after: 1s\n    channels: [email]\n    template: reminder\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_campaign_by_priority_whose_audience_matches_wins() {
    let t = spawn_app_with(
        Backend::Sqlite,
        &quick_campaign(1, &[("reminder", 1, "reminder")]).replace("name: quick\n", "name: quick\npriority: 10\n"),
        true,
        |s| {
            std::fs::write(s.campaigns_dir.join("vip.yaml"), VIP).expect("vip campaign");
        },
    )
    .await;
    let customer = json!({"email": "v@example.com", "accepts_email_marketing": true});
    assert_eq!(t.post(&event("big", "150.00", customer.clone())).await.status(), 202);
    assert_eq!(
        t.post(&event("small", "50.00", json!({"email": "s@example.com", "accepts_email_marketing": true})))
            .await
            .status(),
        202
    );
    t.wait_for("both carts to enter a campaign", Duration::from_secs(20), || async {
        (t.scalar("SELECT COUNT(*) FROM carts WHERE campaign IS NOT NULL").await == 2).then_some(())
    })
    .await;
    assert_eq!(cart_field(&t.app.db, "big", "campaign").await.as_deref(), Some("vip"));
    assert_eq!(cart_field(&t.app.db, "small", "campaign").await.as_deref(), Some("quick"));
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_nobody_can_reach_does_not_enter_and_says_why() {
    let campaign = quick_campaign(1, &[("reminder", 1, "reminder")])
        .replace("audience: { min_total: 5 }", "audience: { min_total: 5, channels: [email] }");
    let t = spawn_app_with(Backend::Sqlite, &campaign, true, |_| {}).await;
    assert_eq!(
        t.post(&event("mute", "50.00", json!({"email": "m@example.com", "accepts_email_marketing": false})))
            .await
            .status(),
        202
    );
    t.wait_for("the cart to be judged", Duration::from_secs(20), || async {
        (t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'not_entered'").await == 1).then_some(())
    })
    .await;
    let why: String = match common::raw(&t.app.db) {
        common::Raw::Sqlite(p) => sqlx::query_scalar("SELECT detail FROM cart_log WHERE what = 'not_entered'")
            .fetch_one(p)
            .await
            .expect("log"),
        common::Raw::Postgres(p) => sqlx::query_scalar("SELECT detail FROM cart_log WHERE what = 'not_entered'")
            .fetch_one(p)
            .await
            .expect("log"),
    };
    assert!(why.contains("not reachable by email"), "{why}");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_reload_is_refused_and_the_last_good_campaigns_stay() {
    let t = spawn_app_with(Backend::Sqlite, &quick_campaign(60, &[("reminder", 60, "reminder")]), false, |_| {}).await;
    let dir = t.app.settings.campaigns_dir.clone();
    std::fs::write(dir.join("vip.yaml"), VIP.replace("after: 1s", "after: soon")).expect("write");
    let err = t.app.reload_campaigns().expect_err("broken file refused");
    assert!(format!("{err:#}").contains("vip.yaml:3:16: \"soon\" is not a duration"), "{err:#}");
    assert!(t.app.campaigns().get("quick").is_some() && t.app.campaigns().get("vip").is_none());
    std::fs::write(dir.join("vip.yaml"), VIP).expect("write");
    assert_eq!(t.app.reload_campaigns().expect("valid set"), 2);
    assert!(t.app.campaigns().get("vip").is_some());
    // Two candidates of one shop with the same priority: refused, the order must be explicit.
    std::fs::write(dir.join("vip.yaml"), VIP.replace("priority: 1", "priority: 0")).expect("write");
    let err = t.app.reload_campaigns().expect_err("tie refused");
    assert!(format!("{err:#}").contains("both have priority 0"), "{err:#}");
    assert!(t.app.campaigns().get("vip").is_some_and(|c| c.priority == 1));
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_link_applies_the_incentive_code_and_campaign_utm() {
    let campaign = common::quick_campaign(1, &[("incentive", 1, "incentive")])
        .replace("exit_when:", "utm: { source: cartback }\nexit_when:");
    let t = spawn_app_with(Backend::Sqlite, &campaign, true, |s| {
        if let Some(shop) = s.shops.get_mut(common::SHOP) {
            shop.restore_code_param = Some("discount".into());
        }
    })
    .await;
    let past = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(t.post(&common::cart_event("cart.updated", "c_utm", "u@example.com", past)).await.status(), 202);
    let (_, raw) =
        t.wait_for("the incentive email", Duration::from_secs(20), || async { t.emails().into_iter().next() }).await;
    let code: String = match common::raw(&t.app.db) {
        common::Raw::Sqlite(p) => sqlx::query_scalar("SELECT code FROM incentives").fetch_one(p).await.expect("code"),
        common::Raw::Postgres(p) => sqlx::query_scalar("SELECT code FROM incentives").fetch_one(p).await.expect("code"),
    };
    let link = common::restore_link(&raw, &t.base).expect("restore link");
    let resp = t.client.get(&link).send().await.expect("click");
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()["location"],
        format!("https://shop.example/cart/recover?key=c_utm&discount={code}&utm_source=cartback&utm_medium=email&utm_campaign=quick&utm_content=incentive").as_str()
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_consent_only_the_first_reminder_goes_out_when_the_shop_allows_it() {
    let campaign = common::quick_campaign(1, &[("reminder", 1, "reminder"), ("faq", 2, "faq")]);
    let t = spawn_app_with(Backend::Sqlite, &campaign, true, |s| {
        if let Some(shop) = s.shops.get_mut(common::SHOP) {
            shop.transactional_first_reminder = true;
        }
    })
    .await;
    let past = Utc::now() - chrono::Duration::hours(1);
    let customer = json!({"email": "nc@example.com", "accepts_email_marketing": false});
    let mut body = event("c_nc", "50.00", customer);
    body["occurred_at"] = json!(past.to_rfc3339());
    assert_eq!(t.post(&body).await.status(), 202);
    t.wait_for("the sequence to finish", Duration::from_secs(20), || async {
        (t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'completed'").await == 1).then_some(())
    })
    .await;
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE step = 'reminder' AND status = 'sent'").await, 1);
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM sends WHERE step = 'faq' AND status = 'skipped' AND reason = 'no email marketing consent'").await,
        1
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_follow_the_reason_the_cart_was_abandoned() {
    let campaign = "name: quick\nabandon_after: 1s\nsteps:\n  - id: reminder\n    after: 1s\n    channels: [email]\n    template: reminder\n  - id: payment_help\n    after: 2s\n    channels: [email]\n    template: faq\n    when: { reason: payment_failed }\n  - id: faq\n    after: 3s\n    channels: [email]\n    template: faq\n";
    let t = spawn_app_with(Backend::Sqlite, campaign, true, |_| {}).await;
    let past = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let customer = |e: &str| json!({"email": e, "accepts_email_marketing": true});
    let mut declined = event("declined", "60.00", customer("d@example.com"));
    declined["occurred_at"] = json!(past);
    declined["stage"] = json!("payment");
    declined["reason"] = json!("payment_failed");
    declined["reason_detail"] = json!("card_declined");
    let mut plain = event("plain", "60.00", customer("p@example.com"));
    plain["occurred_at"] = json!(past);
    assert_eq!(t.post(&declined).await.status(), 202);
    assert_eq!(t.post(&plain).await.status(), 202);
    t.wait_for("both sequences to finish", Duration::from_secs(30), || async {
        (t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'completed'").await == 2).then_some(())
    })
    .await;
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends s JOIN carts c ON c.id = s.cart_id WHERE c.external_id = 'declined' AND s.status = 'sent'").await, 3);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends s JOIN carts c ON c.id = s.cart_id WHERE c.external_id = 'plain' AND s.status = 'sent'").await, 2);
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM cart_log l JOIN carts c ON c.id = l.cart_id WHERE c.external_id = 'plain' AND l.what = 'skipped' AND l.detail LIKE 'step payment_help%'").await,
        1
    );
    // The declined customer's reminder explains what happened and what to do, not an error code.
    let reminders: Vec<String> = t
        .emails()
        .into_iter()
        .map(|(_, raw)| common::unfold_qp(&raw))
        .filter(|r| r.contains("To: d@example.com"))
        .collect();
    assert!(
        reminders.iter().any(|r| r.contains("Your card was declined. You can pay with another card")),
        "no reason text in the reminder"
    );
    assert!(!reminders.iter().any(|r| r.contains("card_declined")));
    t.shutdown().await;
}
