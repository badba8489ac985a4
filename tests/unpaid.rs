//! Unpaid orders: fast payment reminders, then a signed `order.expire` so the shop releases
//! the stock; `order.paid` stops the sequence and nothing expires.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use common::{Backend, header, shop_endpoint, spawn_app_with, verify_signed};
use serde_json::json;

const UNPAID: &str = "name: unpaid\nkind: unpaid_order\nabandon_after: 1s\nsteps:\n  - { id: pay_now, after: 1s, channels: [email], template: unpaid }\nexpire_after: 4s\nexit_when: [order_placed, unsubscribed]\n";

fn unpaid(order: &str, email: &str) -> serde_json::Value {
    json!({
        "type": "order.unpaid", "occurred_at": Utc::now().to_rfc3339(),
        "order_id": order, "total": "49.00", "currency": "EUR",
        "customer": {"email": email, "first_name": "Mia", "accepts_email_marketing": true, "timezone": "Europe/Berlin"}
    })
}

async fn unpaid_orders_expire_unless_paid(backend: Backend) {
    let (shop, url) = shop_endpoint(|_| StatusCode::OK).await;
    let t = spawn_app_with(backend, &common::quick_campaign(60, &[("reminder", 60, "reminder")]), true, |s| {
        std::fs::write(s.campaigns_dir.join("unpaid.yaml"), UNPAID).expect("campaign");
        s.shops.get_mut(common::SHOP).expect("shop").events_url = Some(url.clone());
    })
    .await;

    assert_eq!(t.post(&unpaid("o_1", "mia@example.de")).await.status(), 202);
    assert_eq!(t.post(&unpaid("o_2", "leo@example.de")).await.status(), 202);
    // o_2 is paid a moment later.
    let paid = json!({"type": "order.paid", "occurred_at": Utc::now().to_rfc3339(), "order_id": "o_2",
                      "total": "49.00", "currency": "EUR", "customer": {"email": "leo@example.de"}});
    assert_eq!(t.post(&paid).await.status(), 202);

    let (headers, raw) = t
        .wait_for("order.expire for o_1", Duration::from_secs(30), || async {
            shop.of_type("order.expire").into_iter().next()
        })
        .await;
    let body: serde_json::Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(body["data"]["order_id"], "o_1");
    assert_eq!(body["data"]["reason"], "not paid within 4s");
    verify_signed(&t.key, &headers, &raw).expect("signed with the shop's secret over the bytes sent");
    assert!(verify_signed(&t.key, &headers, &raw.replace("o_1", "o_9")).is_err(), "a changed body fails verification");
    // The shop answered 2xx; the worker records the delivery right after.
    t.wait_for("order.expire recorded as delivered", Duration::from_secs(10), || async {
        let n = t
            .scalar("SELECT COUNT(*) FROM outbound_webhooks WHERE kind = 'order.expire' AND delivered_at IS NOT NULL")
            .await;
        (n == 1).then_some(())
    })
    .await;

    // The unpaid customer got the payment reminder; the one who paid got nothing.
    let mails = t.emails();
    assert_eq!(mails.len(), 1, "one reminder: o_2 was paid before its step");
    assert_eq!(header(&mails[0].1, "To").as_deref(), Some("mia@example.de"));
    assert_eq!(header(&mails[0].1, "Subject").as_deref(), Some("Your order #o_1 is waiting for payment"));
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM carts WHERE external_id = 'order:o_1' AND status = 'completed' AND exit_reason = 'order_expired'").await,
        1
    );
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM carts WHERE external_id = 'order:o_2' AND status = 'recovered' AND kind = 'unpaid_order'").await,
        1
    );
    // Wait past o_2's would-be expiry: still only o_1's order.expire.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(shop.of_type("order.expire").len(), 1);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_unpaid_orders() {
    unpaid_orders_expire_unless_paid(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unpaid_orders() {
    unpaid_orders_expire_unless_paid(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_order_without_an_order_id_is_refused_naming_the_field() {
    let t =
        spawn_app_with(Backend::Sqlite, &common::quick_campaign(60, &[("reminder", 60, "reminder")]), false, |_| {})
            .await;
    let mut ev = unpaid("x", "a@example.de");
    ev.as_object_mut().expect("object").remove("order_id");
    let resp = t.post(&ev).await;
    assert_eq!(resp.status(), 422);
    let body: serde_json::Value = resp.json().await.expect("problem");
    assert!(body.to_string().contains("order_id"), "{body}");
    t.shutdown().await;
}
