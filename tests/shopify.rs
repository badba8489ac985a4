//! Shopify webhooks over real HTTP: a checkout becomes a cart, an order recovers it.

#[macro_use]
mod common;

use base64::Engine;
use common::{Backend, SECRET, SHOP, quick_campaign, spawn_app_with};

const CHECKOUT: &str = include_str!("fixtures/shopify_checkout.json");

async fn deliver(t: &common::TestApp, topic: &str, id: &str, body: &str, hmac: Option<String>) -> reqwest::Response {
    let key = cartback::ingest::signature::secret_key(SECRET).expect("key");
    let hmac = hmac.unwrap_or_else(|| {
        base64::engine::general_purpose::STANDARD
            .encode(cartback::ingest::signature::hmac_sha256(&key, &[body.as_bytes()]))
    });
    t.client
        .post(format!("{}/v1/shops/{SHOP}/shopify", t.base))
        .header("x-shopify-topic", topic)
        .header("x-shopify-hmac-sha256", hmac)
        .header("x-shopify-webhook-id", id)
        .header("x-shopify-shop-domain", "test.myshopify.com")
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request")
}

on_both!(a_shopify_checkout_becomes_a_cart_and_its_order_recovers_it);

async fn a_shopify_checkout_becomes_a_cart_and_its_order_recovers_it(backend: Backend) {
    let t = spawn_app_with(backend, &quick_campaign(600, &[("reminder", 600, "reminder")]), false, |_| {}).await;
    assert_eq!(deliver(&t, "checkouts/create", "wh-1", CHECKOUT, Some("AAAA".into())).await.status(), 401);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM webhook_events").await, 0, "nothing stored for a bad signature");

    assert_eq!(deliver(&t, "checkouts/create", "wh-1", CHECKOUT, None).await.status(), 202);
    assert_eq!(
        deliver(&t, "checkouts/create", "wh-1", CHECKOUT, None).await.status(),
        200,
        "same X-Shopify-Webhook-Id"
    );
    assert_eq!(
        deliver(&t, "products/update", "wh-2", "{}", None).await.status(),
        200,
        "unused topics are acknowledged"
    );
    let bad = CHECKOUT.replace("\"total_price\": \"398.00\"", "\"total_price\": \"lots\"");
    let r = deliver(&t, "checkouts/update", "wh-3", &bad, None).await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<serde_json::Value>().await.expect("problem")["field"], "total_price");

    let row: (String, Option<i64>, Option<String>, Option<String>, bool) = match common::raw(&t.app.db) {
        common::Raw::Sqlite(p) => {
            sqlx::query_as("SELECT external_id, total_minor, restore_url, timezone, accepts_email FROM carts")
                .fetch_one(p)
                .await
        }
        common::Raw::Postgres(p) => {
            sqlx::query_as("SELECT external_id, total_minor, restore_url, timezone, accepts_email FROM carts")
                .fetch_one(p)
                .await
        }
    }
    .expect("one cart");
    assert_eq!(row.0, "cd2c0e4e8e8f4b8a9f6e1d4c3b2a1f00", "keyed by the checkout token");
    assert_eq!(row.1, Some(39800));
    assert!(row.2.is_some_and(|u| u.contains("/recover?key=")));
    assert_eq!(row.3.as_deref(), Some("America/Toronto"), "zone from the customer's +1 613 number");
    assert!(row.4, "buyer_accepts_marketing");

    let order = r#"{"id": 820982911946154508, "checkout_token": "cd2c0e4e8e8f4b8a9f6e1d4c3b2a1f00", "email": "bob.norman@example.com",
                    "created_at": "2026-11-22T10:05:00-05:00", "currency": "USD", "total_price": "398.00"}"#;
    assert_eq!(deliver(&t, "orders/create", "wh-4", order, None).await.status(), 202);
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'recovered' AND order_total_minor = 39800").await,
        1
    );
    t.shutdown().await;
}
