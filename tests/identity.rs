//! One customer behind several identities: carts reached by email, by customer id and by
//! phone merge into one person once an event shows two of them together, and an order that
//! carries only one identity stops every cart of that person.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Backend, quick_campaign, spawn_app};
use serde_json::json;

fn cart(id: &str, customer: serde_json::Value) -> serde_json::Value {
    json!({"type": "cart.updated", "occurred_at": Utc::now().to_rfc3339(),
           "cart": {"id": id, "currency": "EUR", "total": "40.00", "items": [{"title": "Scarf", "quantity": 1, "price": "40.00"}]},
           "customer": customer})
}

async fn one_person_many_identities(backend: Backend) {
    let t = spawn_app(backend, &quick_campaign(60, &[("reminder", 60, "reminder")])).await;
    // Monday on the laptop: email only.
    assert_eq!(
        t.post(&cart("c_web", json!({"email": "Anna@Example.de", "accepts_email_marketing": true}))).await.status(),
        202
    );
    // Tuesday in the app: signed in (customer id) with a phone number.
    assert_eq!(t.post(&cart("c_app", json!({"id": "cu_7", "phone": "+4915123456789"}))).await.status(), 202);
    assert_eq!(t.scalar("SELECT COUNT(DISTINCT customer_ref) FROM carts").await, 2, "two persons so far");
    // Wednesday: an event shows the customer id and the email together: one person.
    assert_eq!(t.post(&cart("c_mix", json!({"id": "cu_7", "email": "anna@example.de"}))).await.status(), 202);
    assert_eq!(t.scalar("SELECT COUNT(DISTINCT customer_ref) FROM carts").await, 1, "merged");
    assert_eq!(t.scalar("SELECT COUNT(*) FROM carts WHERE customer_ref = 'id:cu_7'").await, 3);

    // She orders by phone (in-store pickup): only the phone number is on the order.
    let order = json!({"type": "order.placed", "occurred_at": Utc::now().to_rfc3339(), "order_id": "o_1",
                       "total": "40.00", "currency": "EUR", "customer": {"phone": "+4915123456789"}});
    assert_eq!(t.post(&order).await.status(), 202);
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'recovered' AND order_id = 'o_1'").await,
        3,
        "the email-only cart is not chased either"
    );
    // Nothing goes out for any of them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(t.emails().is_empty());
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_identities() {
    one_person_many_identities(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_identities() {
    one_person_many_identities(Backend::Postgres).await;
}

/// Two shop accounts that share a phone (a household) stay two customers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shop_accounts_sharing_a_phone_stay_apart() {
    let t = spawn_app(Backend::Sqlite, &quick_campaign(60, &[("reminder", 60, "reminder")])).await;
    assert_eq!(t.post(&cart("c_1", json!({"id": "cu_mum", "phone": "+4915123456789"}))).await.status(), 202);
    assert_eq!(t.post(&cart("c_2", json!({"id": "cu_son", "phone": "+4915123456789"}))).await.status(), 202);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM carts WHERE customer_ref = 'id:cu_mum'").await, 1);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM carts WHERE customer_ref = 'id:cu_son'").await, 1);
    t.shutdown().await;
}
