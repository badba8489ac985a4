//! Incentives end to end: the incentive email carries a single-use code; the shop learns of it
//! through a signed `incentive.issued` webhook retried until acknowledged; the customer clicks
//! the restore link and orders with the code; stats show one recovery with its revenue, the
//! discount it cost, and the step and tier that earned it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use common::{
    Backend, cart_event, quick_campaign, restore_link, shop_endpoint, spawn_app_with, unfold_qp, verify_signed,
};
use serde_json::json;

fn code_in(raw: &str) -> Option<String> {
    let text = unfold_qp(raw);
    let at = text.find("CB-")?;
    Some(text[at..at + 13].to_owned())
}

async fn incentive_click_order_stats(backend: Backend) {
    // The shop refuses the first delivery, then accepts.
    let (endpoint, url) =
        shop_endpoint(|n| if n == 1 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::NO_CONTENT }).await;

    let campaign = quick_campaign(1, &[("reminder", 1, "reminder"), ("incentive", 2, "incentive")]);
    let t = spawn_app_with(backend, &campaign, true, |s| {
        s.shops.get_mut(common::SHOP).expect("shop").events_url = Some(url.clone());
    })
    .await;
    let started = Utc::now();
    let ev = cart_event("cart.updated", "c_1", "anna@example.de", started - chrono::Duration::hours(1));
    assert_eq!(t.post(&ev).await.status(), 202);

    let mails = t
        .wait_for("reminder and incentive emails", Duration::from_secs(30), || async {
            let m = t.emails();
            (m.len() == 2).then_some(m)
        })
        .await;
    let (_, incentive_mail) = mails.iter().find(|(_, raw)| code_in(raw).is_some()).expect("an email with a code");
    let code = code_in(incentive_mail).expect("code");
    let parsed = mail_parser::MessageParser::default().parse(incentive_mail.as_bytes()).expect("MIME");
    let text = parsed.body_text(0).expect("text part");
    assert!(text.contains("€5.00 off") && text.contains(&code), "the offer and the code are in the email: {text}");

    // The shop hears of the code: the first delivery is refused (503), the retry is taken.
    let seen = t
        .wait_for("incentive.issued acknowledged", Duration::from_secs(30), || async {
            let seen = endpoint.all();
            (seen.len() >= 2).then_some(seen)
        })
        .await;
    assert_eq!(seen.len(), 2, "retried once, not more");
    let (headers, body) = &seen[1];
    assert_eq!(headers.get("webhook-id"), seen[0].0.get("webhook-id"), "same id on retry");
    verify_signed(&t.key, headers, body).expect("signed with the shop's secret");
    let payload: serde_json::Value = serde_json::from_str(body).expect("json");
    assert_eq!(payload["type"], "incentive.issued");
    assert_eq!(payload["data"]["code"], code.as_str());
    assert_eq!(payload["data"]["cart_id"], "c_1");
    assert_eq!(payload["data"]["offer"]["amount_off"], "5.00");
    assert_eq!(payload["data"]["offer"]["currency"], "EUR");
    t.wait_for("the delivery recorded", Duration::from_secs(10), || async {
        (t.scalar("SELECT COUNT(*) FROM outbound_webhooks WHERE delivered_at IS NOT NULL AND attempts = 2").await == 1)
            .then_some(())
    })
    .await;

    // The customer clicks the incentive email's restore link …
    let link = restore_link(incentive_mail, &t.base).expect("restore link");
    assert_eq!(t.client.get(&link).send().await.expect("click").status(), 303);
    // … and orders on another device: the order names no cart, only the email and the code.
    let order = json!({
        "type": "order.placed", "occurred_at": Utc::now().to_rfc3339(),
        "order_id": "o_77", "total": "124.90", "currency": "EUR",
        "discount_codes": [code.to_lowercase()], "discount_total": "5.00",
        "customer": {"email": "anna@example.de"}
    });
    assert_eq!(t.post(&order).await.status(), 202);
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'recovered' AND recovered_step = 'incentive' AND discount_minor = 500 AND order_total_minor = 12490").await,
        1
    );
    assert_eq!(t.scalar("SELECT COUNT(*) FROM incentives WHERE redeemed_order = 'o_77'").await, 1);

    let st = cartback::ops::stats(&t.app, started - chrono::Duration::minutes(5), None).await.expect("stats");
    let c = st.campaigns.iter().find(|c| c.campaign == "quick").expect("campaign");
    assert_eq!((c.entered, c.recovered), (1, 1));
    assert_eq!(c.revenue.get("EUR").map(String::as_str), Some("124.90"));
    assert_eq!(c.incentive_cost.get("EUR").map(String::as_str), Some("5.00"));
    assert_eq!(c.net_revenue.get("EUR").map(String::as_str), Some("119.90"));
    let tier = c.tiers.iter().find(|x| x.tier == "default").expect("tier");
    assert_eq!((tier.issued, tier.redeemed), (1, 1));
    assert_eq!(tier.cost.get("EUR").map(String::as_str), Some("5.00"));
    let step = c.attributed_steps.iter().find(|s| s.step == "incentive").expect("credited step");
    assert_eq!(step.recovered, 1);

    // The code is single-use: a second order with it recovers nothing more and costs nothing more.
    let mut again = order.clone();
    again["order_id"] = "o_78".into();
    assert_eq!(t.post(&again).await.status(), 202);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM incentives WHERE redeemed_order = 'o_78'").await, 0);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_incentive_click_order_stats() {
    incentive_click_order_stats(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_incentive_click_order_stats() {
    incentive_click_order_stats(Backend::Postgres).await;
}

/// A shop endpoint that keeps failing: the event is given up after `outbound_give_up`, shown
/// to operators with the shop's answer, and delivered when an operator retries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_event_goes_dead_and_an_operator_can_retry_it() {
    let up = Arc::new(AtomicBool::new(false));
    let (flaky, url) = {
        let up = up.clone();
        shop_endpoint(
            move |_| if up.load(Ordering::SeqCst) { StatusCode::OK } else { StatusCode::INTERNAL_SERVER_ERROR },
        )
        .await
    };
    let t = spawn_app_with(Backend::Sqlite, &quick_campaign(1, &[("incentive", 1, "incentive")]), true, |s| {
        s.shops.get_mut(common::SHOP).expect("shop").events_url = Some(url.clone());
        // The first retry would come 10 s later: past this, so the first failure is final.
        s.worker.outbound_give_up = Duration::from_secs(1);
    })
    .await;
    let ev = cart_event("cart.updated", "c_9", "bo@example.com", Utc::now() - chrono::Duration::hours(1));
    assert_eq!(t.post(&ev).await.status(), 202);
    let dead = t
        .wait_for("the event to go dead", Duration::from_secs(30), || async {
            let rows = cartback::ops::outbound::list(&t.app, Some(cartback::store::outbound::OutboundState::Dead), 10)
                .await
                .expect("list");
            (rows.len() == 1).then_some(rows)
        })
        .await;
    assert_eq!(dead[0].kind, "incentive.issued");
    assert_eq!(dead[0].last_error.as_deref(), Some("the shop answered 500 Internal Server Error"));
    assert_eq!(flaky.all().len(), 1);

    up.store(true, Ordering::SeqCst);
    let note = cartback::ops::outbound::retry(&t.app, dead[0].id).await.expect("retry");
    assert!(note.contains("queued again"), "{note}");
    assert!(cartback::ops::outbound::retry(&t.app, dead[0].id).await.is_err(), "not dead any more: 409");
    t.wait_for("the retried event to be acknowledged", Duration::from_secs(30), || async {
        (t.scalar("SELECT COUNT(*) FROM outbound_webhooks WHERE delivered_at IS NOT NULL AND dead_at IS NULL AND attempts = 2")
            .await
            == 1)
            .then_some(())
    })
    .await;
    t.shutdown().await;
}
