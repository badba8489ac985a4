//! `cartback import orders` through the real binary: validated before anything is written,
//! idempotent, and the imported history shapes the customer's cart from day one.

mod common;

use chrono::Utc;
use common::{Backend, SECRET, SHOP, cart_event, quick_campaign, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_orders_count_for_the_customers_next_cart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("cartback.db");
    let config = dir.path().join("cartback.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{}\"\ncampaigns_dir = \"{}\"\ntemplates_dir = \"{}\"\n[shops.{SHOP}]\nname = \"Test Shop\"\nwebhook_secret = \"{SECRET}\"\ntimezone = \"Europe/Berlin\"\nlocale = \"en\"\ncurrency = \"EUR\"\ncampaign = \"default\"\n",
            db.display(),
            common::repo().join("campaigns").display(),
            common::repo().join("templates").display()
        ),
    )
    .expect("config");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"order_id\":\"9\",\"email\":\"x@example.com\",\"total\":\"1.00\",\"currency\":\"EUR\",\"placed_at\":\"2026-01-01T00:00:00Z\"}\n{\"order_id\":\"10\",\"total\":\"1.00\",\"currency\":\"EUR\",\"placed_at\":\"yesterday\"}\n",
    )
    .expect("file");
    let (code, _, err) = common::cli(&config, &["import", "orders", bad.to_str().expect("path")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad.jsonl:2: customer_id, email or phone"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");

    let good = dir.path().join("orders.csv");
    std::fs::write(
        &good,
        "order_id,customer_id,email,phone,total,currency,placed_at\n1001,,Anna@Example.de,,120.00,EUR,2026-01-01T10:00:00Z\n1002,,anna@example.de,,95.50,EUR,2026-03-01T10:00:00Z\n1003,,other@example.de,,10.00,EUR,2026-03-01T10:00:00Z\n",
    )
    .expect("file");
    let (code, out, err) = common::cli(&config, &["import", "orders", good.to_str().expect("path")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("imported 3 order(s)"), "{out}");
    let (code, out, _) = common::cli(&config, &["import", "orders", good.to_str().expect("path")]);
    assert_eq!(code, 0);
    assert!(out.contains("imported 0 order(s)") && out.contains("3 already known"), "{out}");

    // The shop's next event says nothing of Anna's history; Cartback knows it.
    let url = format!("sqlite://{}", db.display());
    let t = spawn_app_with(Backend::Sqlite, &quick_campaign(60, &[("reminder", 60, "reminder")]), false, |s| {
        s.database_url = cartback::config::Secret::new(url.clone());
    })
    .await;
    let mut ev = cart_event("cart.updated", "c_1", "ANNA@example.de", Utc::now());
    ev["customer"].as_object_mut().expect("customer").remove("id");
    assert_eq!(t.post(&ev).await.status(), 202);
    assert_eq!(t.scalar("SELECT orders_count FROM carts WHERE external_id = 'c_1'").await, 2);
    assert_eq!(t.scalar("SELECT total_spent_minor FROM carts WHERE external_id = 'c_1'").await, 21_550);
    // An order seen as an event joins the history too.
    let order = serde_json::json!({"type": "order.placed", "occurred_at": Utc::now().to_rfc3339(), "cart_id": "c_1",
                                   "order_id": "1004", "total": "129.90", "currency": "EUR",
                                   "customer": {"email": "anna@example.de"}});
    assert_eq!(t.post(&order).await.status(), 202);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM customer_orders WHERE email = 'anna@example.de'").await, 3);
    t.shutdown().await;
}
