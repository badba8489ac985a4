//! Signed but malformed events over real HTTP: every answer is 2xx or 4xx (problem+json for
//! refusals), never a server error, and a refused event stores nothing.

mod common;

use chrono::Utc;
use common::{Backend, SHOP, quick_campaign, spawn_app_with};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

fn base() -> Value {
    json!({
        "type": "cart.updated", "occurred_at": Utc::now().to_rfc3339(),
        "cart": {"id": "c_1", "currency": "EUR", "total": "10.00", "restore_url": "https://shop.example/c",
                 "items": [{"title": "T", "quantity": 1, "price": "10.00"}]},
        "customer": {"email": "a@example.com", "phone": "+4915123456789", "timezone": "Europe/Berlin",
                     "orders_count": 1, "total_spent": "5.00", "locale": "de-AT"}
    })
}

const PATHS: [&str; 16] = [
    "/type",
    "/occurred_at",
    "/cart",
    "/cart/id",
    "/cart/total",
    "/cart/currency",
    "/cart/items",
    "/cart/items/0",
    "/cart/items/0/quantity",
    "/cart/items/0/price",
    "/cart/restore_url",
    "/customer",
    "/customer/email",
    "/customer/phone",
    "/customer/timezone",
    "/customer/total_spent",
];

fn junk(rng: &mut StdRng) -> Value {
    match rng.random_range(0..12) {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random::<i64>()),
        3 => json!(rng.random::<f64>() * 1e12),
        4 => json!("-12.50"),
        5 => json!("99999999999999999999999.99"),
        6 => json!("order.unpaid"),
        7 => json!([1, "x", null]),
        8 => json!({"id": "x"}),
        9 => json!("\u{0}\u{202e}<script>"),
        10 => json!("Mars/Olympus_Mons"),
        _ => json!("x".repeat(rng.random_range(0..5000))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_signed_events_never_cause_a_server_error() {
    let t = spawn_app_with(Backend::Sqlite, &quick_campaign(60, &[("reminder", 60, "reminder")]), false, |_| {}).await;
    let mut rng = StdRng::seed_from_u64(0x0ca7_bac4);
    let mut refused = 0;
    for i in 0..400 {
        let mut e = base();
        for _ in 0..rng.random_range(1..4) {
            let path = PATHS[rng.random_range(0..PATHS.len())];
            let value = junk(&mut rng);
            if let Some(slot) = e.pointer_mut(path) {
                *slot = value;
            }
        }
        // A fresh cart id each time, so an accepted one does not shadow the next.
        if let Some(id) = e.pointer_mut("/cart/id").filter(|v| v.as_str() == Some("c_1")) {
            *id = json!(format!("c_{i}"));
        }
        let body = if rng.random_range(0..10) == 0 {
            // Not even JSON: truncated at a random byte.
            let s = e.to_string();
            s.as_bytes()[..rng.random_range(0..s.len())].to_vec()
        } else {
            e.to_string().into_bytes()
        };
        let resp = t.post_raw(SHOP, &format!("msg_fuzz_{i}"), Utc::now().timestamp(), &body, None).await;
        let status = resp.status().as_u16();
        assert!(
            matches!(status, 200 | 202 | 400 | 413 | 422),
            "request {i} got {status}: {}",
            String::from_utf8_lossy(&body)
        );
        if status >= 400 {
            refused += 1;
            let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            assert_eq!(ct, "application/problem+json", "request {i}");
            let p: Value = resp.json().await.expect("problem body");
            assert!(p["title"].is_string() && p["status"] == json!(status), "request {i}: {p}");
        }
    }
    assert!(refused > 100, "the mutations exercised refusals ({refused})");
    // Refused events stored nothing: every stored delivery was accepted.
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM webhook_events").await,
        400 - refused,
        "one stored delivery per accepted request, none for refused ones"
    );
    t.shutdown().await;
}
