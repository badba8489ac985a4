//! Consent and suppression hold for the person: every spelling of an address, every cart.

#[macro_use]
mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Backend, cart_event, header, spawn_app_with};
use serde_json::Value;

on_both!(
    an_unsubscribe_blocks_every_spelling_of_the_address,
    a_withdrawal_on_a_newer_cart_stops_the_older_carts_steps_and_a_re_consent_restores_them,
    older_news_never_overrides_a_newer_consent
);

/// Reminder 2 s after abandonment, FAQ after 6 s, the last step after 12 s; idle after 1 s.
fn three_steps() -> String {
    common::quick_campaign(1, &[("reminder", 2, "reminder"), ("faq", 6, "faq"), ("last", 12, "reminder")])
}

/// A cart event for customer account `customer` with email consent `email` and SMS consent
/// `sms` (the customer has a phone number).
fn event(cart: &str, customer: &str, address: &str, email: bool, sms: bool, at: chrono::DateTime<Utc>) -> Value {
    let mut e = cart_event("cart.updated", cart, address, at);
    e["customer"]["id"] = Value::from(customer);
    e["customer"]["phone"] = Value::from("+4915123456789");
    e["customer"]["accepts_email_marketing"] = Value::from(email);
    e["customer"]["accepts_sms_marketing"] = Value::from(sms);
    e
}

/// `(status, reason)` of each send of cart `cart`, by step.
async fn sends(t: &common::TestApp, cart: &str, channel: &str) -> Vec<(String, String, String)> {
    let mut tx = t.app.db.begin().await.expect("begin");
    let row = tx.cart_by_external(common::SHOP, cart).await.expect("cart").expect("cart exists");
    let sends = tx.sends_of_cart(row.id).await.expect("sends");
    tx.commit().await.expect("commit");
    sends
        .into_iter()
        .filter(|s| s.channel == channel)
        .map(|s| (s.step, s.status.as_str().to_owned(), s.reason.unwrap_or_default()))
        .collect()
}

async fn timeline(t: &common::TestApp, cart: &str) -> Vec<(String, String)> {
    let mut tx = t.app.db.begin().await.expect("begin");
    let row = tx.cart_by_external(common::SHOP, cart).await.expect("cart").expect("cart exists");
    let log = tx.cart_log(row.id).await.expect("log");
    tx.commit().await.expect("commit");
    log.into_iter().map(|l| (l.what, l.detail)).collect()
}

async fn an_unsubscribe_blocks_every_spelling_of_the_address(backend: Backend) {
    let campaign = common::quick_campaign(1, &[("reminder", 1, "reminder")]);
    let t = spawn_app_with(backend, &campaign, true, |_| {}).await;
    let past = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(t.post(&cart_event("cart.updated", "u1", "x1@verify.test", past)).await.status(), 202);
    let (_, raw) =
        t.wait_for("the reminder", Duration::from_secs(20), || async { t.emails().into_iter().next() }).await;
    let unsubscribe = header(&raw, "List-Unsubscribe").expect("header").trim_matches(['<', '>']).to_owned();
    assert_eq!(t.client.post(&unsubscribe).send().await.expect("post").status(), 200);

    // Another cart, another account, the same mailbox spelt with capitals.
    assert_eq!(t.post(&cart_event("cart.updated", "u2", "X1@Verify.TEST", past)).await.status(), 202);
    let judged = t
        .wait_for("the second cart's reminder to be judged", Duration::from_secs(20), || async {
            let s = sends(&t, "u2", "email").await;
            (!s.is_empty()).then_some(s)
        })
        .await;
    assert_eq!(judged, [("reminder".into(), "skipped".into(), "suppressed (unsubscribed)".into())]);
    assert_eq!(t.emails().len(), 1, "nothing more was sent");
    t.shutdown().await;
}

async fn a_withdrawal_on_a_newer_cart_stops_the_older_carts_steps_and_a_re_consent_restores_them(backend: Backend) {
    let t = spawn_app_with(backend, &three_steps(), true, |_| {}).await;
    assert_eq!(t.post(&event("cC", "cu_shared", "c@verify.test", true, true, Utc::now())).await.status(), 202);
    t.wait_for("the reminder", Duration::from_secs(20), || async {
        let s = sends(&t, "cC", "email").await;
        s.iter().any(|(step, status, _)| step == "reminder" && status == "sent").then_some(())
    })
    .await;

    // A newer event for another cart of the same customer withdraws both consents.
    assert_eq!(t.post(&event("cC2", "cu_shared", "c@verify.test", false, false, Utc::now())).await.status(), 202);
    let faq = t
        .wait_for("the FAQ to be judged", Duration::from_secs(20), || async {
            let s = sends(&t, "cC", "email").await;
            s.into_iter().find(|(step, status, _)| step == "faq" && status != "claimed")
        })
        .await;
    assert_eq!((faq.1.as_str(), faq.2.as_str()), ("skipped", "no email marketing consent"));
    let log = timeline(&t, "cC").await;
    let why = log.iter().find(|(what, _)| what == "consent").map(|(_, d)| d.clone()).unwrap_or_default();
    assert!(
        why.contains("email marketing withdrawn")
            && why.contains("SMS marketing withdrawn")
            && why.contains("cart.updated for cart cC2"),
        "the timeline says which event withdrew it: {log:?}"
    );

    // Consent given again, by a still newer event: the last step goes out.
    assert_eq!(t.post(&event("cC2", "cu_shared", "c@verify.test", true, false, Utc::now())).await.status(), 202);
    let last = t
        .wait_for("the last step", Duration::from_secs(25), || async {
            let s = sends(&t, "cC", "email").await;
            s.into_iter().find(|(step, status, _)| step == "last" && status != "claimed")
        })
        .await;
    assert_eq!(last.1, "sent", "{last:?}");
    let log = timeline(&t, "cC").await;
    assert!(log.iter().any(|(what, d)| what == "consent" && d.contains("email marketing given")), "{log:?}");
    t.shutdown().await;
}

async fn older_news_never_overrides_a_newer_consent(backend: Backend) {
    let t = spawn_app_with(backend, &three_steps(), false, |_| {}).await;
    let now = Utc::now();
    let consent = |cart: &'static str| {
        let t = &t;
        async move {
            let mut tx = t.app.db.begin().await.expect("begin");
            let c = tx.cart_by_external(common::SHOP, cart).await.expect("cart").expect("exists");
            tx.commit().await.expect("commit");
            (c.accepts_email, c.accepts_sms)
        }
    };
    let minutes = |m: i64| now - chrono::Duration::minutes(m);
    assert_eq!(t.post(&event("o1", "cu_o", "o@verify.test", true, true, minutes(10))).await.status(), 202);
    assert_eq!(t.post(&event("o2", "cu_o", "o@verify.test", false, true, minutes(5))).await.status(), 202);
    assert_eq!(consent("o1").await, (false, true), "the newer withdrawal reached the first cart");
    // An event from before the withdrawal arrives late, for a third cart: it does not give the
    // consent back, and that cart takes the newest one.
    assert_eq!(t.post(&event("o3", "cu_o", "o@verify.test", true, true, minutes(20))).await.status(), 202);
    assert_eq!(
        (consent("o1").await, consent("o2").await, consent("o3").await),
        ((false, true), (false, true), (false, true))
    );
    let log = timeline(&t, "o3").await;
    assert!(log.iter().any(|(what, d)| what == "consent" && d.contains("newer than this event")), "{log:?}");
    t.shutdown().await;
}

/// The migration that gives suppressions one spelling keeps every suppressed person, the
/// stricter entry winning when two spellings collide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_keeps_every_suppression() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let t = spawn_app_with(backend, &three_steps(), false, |_| {}).await;
        t.exec(
            "INSERT INTO suppressions (shop, channel, address, reason, created_at) VALUES
             ('test', 'email', 'X1@verify.test', 'bounced', 1), ('test', 'email', 'x1@verify.test', 'unsubscribed', 2),
             ('test', 'email', 'x1@VERIFY.test', 'bounced', 0), ('test', 'email', 'Y@verify.test', 'unsubscribed', 3),
             ('test', 'email', 'sha256:ab', 'erased', 4), ('test', 'sms', '+4915123456789', 'STOP reply', 5)",
        )
        .await;
        let migration = match backend {
            Backend::Sqlite => include_str!("../migrations/sqlite/20261203000009_canonical_suppressions.sql"),
            Backend::Postgres => include_str!("../migrations/postgres/20261203000009_canonical_suppressions.sql"),
        };
        match common::raw(&t.app.db) {
            common::Raw::Sqlite(p) => sqlx::raw_sql(sqlx::AssertSqlSafe(migration)).execute(p).await.map(drop),
            common::Raw::Postgres(p) => sqlx::raw_sql(sqlx::AssertSqlSafe(migration)).execute(p).await.map(drop),
        }
        .expect("the migration runs");
        assert_eq!(t.scalar("SELECT COUNT(*) FROM suppressions").await, 4, "{backend:?}");
        assert_eq!(t.text("SELECT reason FROM suppressions WHERE address = 'x1@verify.test'").await, "unsubscribed");
        assert_eq!(
            t.scalar(
                "SELECT COUNT(*) FROM suppressions WHERE address IN ('y@verify.test', 'sha256:ab', '+4915123456789')"
            )
            .await,
            3
        );
        t.shutdown().await;
    }
}
