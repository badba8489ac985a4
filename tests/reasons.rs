//! Learning why: one-tap "what stopped you?" answers (a person's tap counts, a link scanner's
//! burst does not), and stats by abandonment reason as shops and customers reported it.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Backend, cart_event, quick_campaign, spawn_app};
use serde_json::json;

fn feedback_links(raw: &str) -> Vec<String> {
    let msg = mail_parser::MessageParser::default().parse(raw.as_bytes()).expect("MIME");
    let text = msg.body_text(0).expect("text part").into_owned();
    text.split_whitespace().filter(|w| w.contains("/f/") && w.contains("?reason=")).map(str::to_owned).collect()
}

async fn customers_say_why_and_stats_show_where_carts_are_lost(backend: Backend) {
    let t = spawn_app(backend, &quick_campaign(1, &[("faq", 1, "faq")])).await;
    let past = Utc::now() - chrono::Duration::hours(1);
    let mut a = cart_event("cart.updated", "c_a", "ana@example.com", past);
    a["stage"] = json!("payment");
    a["reason"] = json!("payment_failed");
    a["reason_detail"] = json!("card_declined");
    assert_eq!(t.post(&a).await.status(), 202);
    assert_eq!(t.post(&cart_event("cart.updated", "c_b", "ben@example.com", past)).await.status(), 202);
    let mails = t
        .wait_for("two FAQ emails", Duration::from_secs(30), || async {
            let m = t.emails();
            (m.len() == 2).then_some(m)
        })
        .await;
    let to = |addr: &str| {
        mails.iter().find(|(_, raw)| common::header(raw, "To").as_deref() == Some(addr)).expect("mail").1.clone()
    };
    let (links_a, links_b) = (feedback_links(&to("ana@example.com")), feedback_links(&to("ben@example.com")));
    assert_eq!(links_a.len(), 5, "five answers offered: {links_a:?}");

    // Ana taps "shipping cost": thanks, the fitting help, and a way back to her cart.
    let tap = links_a.iter().find(|l| l.ends_with("reason=shipping_cost")).expect("link");
    let resp = t.client.get(tap).send().await.expect("tap");
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.expect("html");
    assert!(html.contains("Thanks for telling us") && html.contains("Shipping costs are always shown"), "{html}");
    assert!(html.contains(&format!("{}/r/", t.base)), "a restore link: {html}");
    // A mail scanner opens all of Ben's links at once: no answer is counted.
    for l in &links_b {
        assert_eq!(t.client.get(l).send().await.expect("scan").status(), 200);
    }
    // An answer that is not offered is refused with the friendly page.
    let bad = tap.replace("reason=shipping_cost", "reason=aliens");
    assert_eq!(t.client.get(&bad).send().await.expect("bad").status(), 404);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM carts WHERE reported_reason = 'shipping_cost'").await, 1);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM carts WHERE external_id = 'c_b' AND reported_reason IS NULL").await, 1);

    // Ana orders.
    let order = json!({"type": "order.placed", "occurred_at": Utc::now().to_rfc3339(), "cart_id": "c_a",
                       "order_id": "o_1", "total": "129.90", "currency": "EUR"});
    assert_eq!(t.post(&order).await.status(), 202);

    let r =
        cartback::ops::reasons::by_reason(&t.app, Utc::now() - chrono::Duration::hours(2), None).await.expect("stats");
    let shop_view = |k: &str| r.reported_by_shop.iter().find(|x| x.reason == k).expect(k);
    let pay = shop_view("payment / payment_failed / card_declined");
    assert_eq!((pay.carts, pay.recovered), (1, 1));
    assert_eq!(pay.revenue.get("EUR").map(String::as_str), Some("129.90"));
    let none = shop_view("(none given)");
    assert_eq!((none.carts, none.recovered), (1, 0));
    assert_eq!(none.lost.get("EUR").map(String::as_str), Some("129.90"));
    assert_eq!(r.reported_by_shop[0].reason, "(none given)", "most value lost first");
    let said = r.reported_by_customers.iter().find(|x| x.reason == "shipping_cost").expect("reported");
    assert_eq!((said.carts, said.recovered), (1, 1));
    assert!((said.recovery_rate - 1.0).abs() < 1e-9);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reasons() {
    customers_say_why_and_stats_show_where_carts_are_lost(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reasons() {
    customers_say_why_and_stats_show_where_carts_are_lost(Backend::Postgres).await;
}
