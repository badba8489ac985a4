//! SMS through a Twilio-compatible Messages API. The provider is the one fake in the suite:
//! a local HTTP server that speaks its API (form-encoded POST, basic auth, JSON errors).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use chrono::Utc;
use common::{Backend, spawn_app_with};
use serde_json::json;

const SID: &str = "AC00000000000000000000000000000001";
const TOKEN: &str = "twilio-auth-token";

/// One API call: the Authorization header and the form fields.
type Call = (String, Vec<(String, String)>);

#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Vec<Call>>>,
    /// `Idempotency-Key` of each call, where sent.
    keys: Arc<Mutex<Vec<String>>>,
}

async fn messages(
    State(fake): State<Fake>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> axum::response::Response {
    use base64::Engine;
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}")));
    if sid != SID || auth != expected {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"code": 20003, "message": "Authenticate", "status": 401})),
        )
            .into_response();
    }
    fake.seen.lock().expect("lock").push((auth, form.clone()));
    if let Some(k) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        fake.keys.lock().expect("lock").push(k.to_owned());
    }
    let to = form.iter().find(|(k, _)| k == "To").map(|(_, v)| v.clone()).unwrap_or_default();
    match to.as_str() {
        "+4915123456780" => (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}),
            ),
        )
            .into_response(),
        "+4915123456781" => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400})),
        )
            .into_response(),
        _ => (StatusCode::CREATED, axum::Json(json!({"sid": "SM0001", "status": "queued"}))).into_response(),
    }
}

/// The fake provider on a local port, and the service sending SMS through it.
async fn with_fake_provider(campaign_yaml: &str) -> (Fake, common::TestApp) {
    with_fake_provider_and(campaign_yaml, |_| {}).await
}

async fn with_fake_provider_and(
    campaign_yaml: &str,
    tweak: impl FnOnce(&mut cartback::config::Settings),
) -> (Fake, common::TestApp) {
    let fake = Fake::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let api = format!("http://{}", listener.local_addr().expect("addr"));
    let router =
        axum::Router::new().route("/2010-04-01/Accounts/{sid}/Messages.json", post(messages)).with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let t = spawn_app_with(Backend::Sqlite, campaign_yaml, true, |s| {
        s.sms.transport = cartback::config::SmsTransportKind::Twilio;
        s.sms.api_base = api.clone();
        s.sms.account_sid = Some(SID.into());
        s.sms.auth_token = Some(cartback::config::Secret::new(TOKEN));
        s.sms.from = "+15005550006".into();
        tweak(s);
    })
    .await;
    (fake, t)
}

fn campaign() -> String {
    "name: quick\nabandon_after: 1s\nsteps:\n  - id: reminder\n    after: 1s\n    channels: [sms]\n    template: reminder\n".into()
}

fn event(id: &str, phone: &str) -> serde_json::Value {
    json!({
        "type": "cart.updated", "occurred_at": (Utc::now() - chrono::Duration::hours(1)).to_rfc3339(),
        "cart": {"id": id, "currency": "EUR", "total": "40.00", "items": [{"title": "Scarf", "quantity": 1, "price": "40.00"}],
                 "restore_url": "https://shop.example/cart"},
        "customer": {"phone": phone, "accepts_sms_marketing": true}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_go_through_the_provider_and_its_errors_are_classified() {
    let (fake, t) = with_fake_provider(&campaign()).await;
    for (id, phone) in [("ok", "+4915123456789"), ("invalid", "+4915123456780"), ("optout", "+4915123456781")] {
        assert_eq!(t.post(&event(id, phone)).await.status(), 202);
    }
    t.wait_for("all three carts to finish", Duration::from_secs(30), || async {
        (t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'completed'").await == 3).then_some(())
    })
    .await;

    let seen = fake.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3, "one API call per message, no retries for permanent errors");
    let ok = seen
        .iter()
        .map(|(_, f)| f)
        .find(|f| f.iter().any(|(k, v)| k == "To" && v == "+4915123456789"))
        .expect("ok call");
    let get = |k: &str| ok.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or_default();
    assert_eq!(get("From"), "+15005550006");
    assert!(get("Body").contains(&format!("{}/r/", t.base)), "restore link in the SMS: {}", get("Body"));
    assert_eq!(get("StatusCallback"), format!("{}/v1/sms/status", t.base));
    assert!(get("Body").ends_with(" Reply STOP to opt out."), "opt-out line: {}", get("Body"));

    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'sent' AND message_ref = 'twilio SM0001'").await, 1);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'failed' AND reason LIKE '%21211%'").await, 1);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'failed' AND reason LIKE '%21610%'").await, 1);
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM suppressions WHERE channel = 'sms' AND address = '+4915123456781'").await,
        1
    );

    // The carrier later reports the first message undelivered.
    let url = format!("{}/v1/sms/status", t.base);
    let params: Vec<(String, String)> =
        [("MessageSid", "SM0001"), ("MessageStatus", "undelivered"), ("ErrorCode", "30003"), ("AccountSid", SID)]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    let forged = t.client.post(&url).header("x-twilio-signature", "AAAA").form(&params).send().await.expect("post");
    assert_eq!(forged.status(), 401);
    let sig = cartback::ingest::signature::twilio_signature(TOKEN, &url, &params);
    let r = t.client.post(&url).header("x-twilio-signature", sig).form(&params).send().await.expect("post");
    assert_eq!(r.status(), 204);
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM sends WHERE message_ref = 'twilio SM0001' AND status = 'failed' AND reason = 'carrier reported undelivered (error 30003)'").await,
        1
    );

    // The customer replies STOP: the number is suppressed before the next message.
    let inbound = format!("{}/v1/sms/inbound", t.base);
    let reply = |body: &str| -> Vec<(String, String)> {
        [("From", "+4915123456789"), ("To", "+15005550006"), ("Body", body), ("MessageSid", "SMin")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let stop = reply("Stop");
    let r = t.client.post(&inbound).header("x-twilio-signature", "nope").form(&stop).send().await.expect("post");
    assert_eq!(r.status(), 401);
    let sig = cartback::ingest::signature::twilio_signature(TOKEN, &inbound, &stop);
    let r = t.client.post(&inbound).header("x-twilio-signature", sig).form(&stop).send().await.expect("post");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().expect("ct").starts_with("text/xml"));
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM suppressions WHERE address = '+4915123456789' AND reason = 'STOP reply'").await,
        1
    );
    assert_eq!(t.post(&event("again", "+4915123456789")).await.status(), 202);
    t.wait_for("the next cart to be judged", Duration::from_secs(30), || async {
        (t.scalar("SELECT COUNT(*) FROM carts WHERE external_id = 'again' AND status = 'completed'").await == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'skipped' AND reason = 'suppressed (STOP reply)'").await,
        1
    );
    assert_eq!(fake.seen.lock().expect("lock").len(), 3, "no API call for a suppressed number");

    let help = reply("HELP");
    let sig = cartback::ingest::signature::twilio_signature(TOKEN, &inbound, &help);
    let text = t
        .client
        .post(&inbound)
        .header("x-twilio-signature", sig)
        .form(&help)
        .send()
        .await
        .expect("post")
        .text()
        .await
        .expect("body");
    assert!(
        text.contains("<Message>Test Shop: reminders about carts you left. Reply STOP to opt out.</Message>"),
        "{text}"
    );
    let start = reply("START");
    let sig = cartback::ingest::signature::twilio_signature(TOKEN, &inbound, &start);
    assert_eq!(
        t.client.post(&inbound).header("x-twilio-signature", sig).form(&start).send().await.expect("post").status(),
        200
    );
    assert_eq!(t.scalar("SELECT COUNT(*) FROM suppressions WHERE address = '+4915123456789'").await, 0);
    t.shutdown().await;
}

/// A campaign's `sms.max_segments` stops an SMS that would cost more, with the reason on
/// record; a shorter one in another language still goes out, in that language.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_over_the_campaigns_segment_limit_is_not_sent_and_says_why() {
    let (fake, t) = with_fake_provider(&format!("{}sms: {{ max_segments: 2 }}\n", campaign())).await;
    // Japanese is UCS-2 (67 units a segment): text, link and opt-out line need 3 segments.
    // German fits GSM-7 in 2.
    for (id, phone, locale) in [("ja", "+819012345678", "ja-JP"), ("de", "+4915123456789", "de-DE")] {
        let mut ev = event(id, phone);
        ev["customer"]["locale"] = json!(locale);
        assert_eq!(t.post(&ev).await.status(), 202);
    }
    t.wait_for("both carts to finish", Duration::from_secs(30), || async {
        (t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'completed'").await == 2).then_some(())
    })
    .await;

    let seen = fake.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "only the German SMS reaches the provider");
    let body = seen[0].1.iter().find(|(k, _)| k == "Body").map(|(_, v)| v.clone()).unwrap_or_default();
    assert!(body.contains("Ihr Warenkorb (40,00 €)") && body.ends_with("Abmelden: STOP antworten."), "{body}");
    assert_eq!(cartback::render::sms::segments(&body).encoding, cartback::render::sms::Encoding::Gsm7, "{body}");
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'failed' AND reason LIKE '%3 segments%over the campaign''s sms.max_segments of 2%'").await,
        1,
        "the Japanese send failed for good, with the reason"
    );
    t.shutdown().await;
}

/// A step that allows it falls back to email when its SMS fails for good, and every API call
/// carries the send id in the configured idempotency header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sms_falls_back_to_email_and_calls_carry_the_send_id() {
    let yaml = "name: quick\nabandon_after: 1s\nsteps:\n  - id: reminder\n    after: 1s\n    channels: [sms]\n    fallback: email\n    template: reminder\n";
    let (fake, t) = with_fake_provider_and(yaml, |s| s.sms.idempotency_header = Some("Idempotency-Key".into())).await;
    for (id, phone) in [("ok", "+4915123456789"), ("invalid", "+4915123456780")] {
        let mut ev = event(id, phone);
        ev["customer"]["email"] = json!(format!("{id}@example.org"));
        ev["customer"]["accepts_email_marketing"] = json!(true);
        assert_eq!(t.post(&ev).await.status(), 202);
    }
    t.wait_for("both carts to finish", Duration::from_secs(30), || async {
        (t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'completed'").await == 2).then_some(())
    })
    .await;
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE channel = 'sms' AND status = 'sent'").await, 1);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE channel = 'sms' AND status = 'failed'").await, 1);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE channel = 'email' AND status = 'sent'").await, 1);
    let emails = t.emails();
    assert_eq!(emails.len(), 1, "only the customer whose SMS failed gets the email");
    assert_eq!(common::header(&emails[0].1, "To").as_deref(), Some("invalid@example.org"));

    let keys = fake.keys.lock().expect("lock").clone();
    assert_eq!(keys.len(), 2, "every call carries the key");
    let ids: Vec<String> = match common::raw(&t.app.db) {
        common::Raw::Sqlite(p) => sqlx::query_scalar("SELECT public_id FROM sends WHERE channel = 'sms' ORDER BY id")
            .fetch_all(p)
            .await
            .expect("ids"),
        common::Raw::Postgres(_) => unreachable!(),
    };
    let mut sorted_keys = keys.clone();
    sorted_keys.sort();
    let mut sorted_ids = ids.clone();
    sorted_ids.sort();
    assert_eq!(sorted_keys, sorted_ids, "the key is the send id");
    t.shutdown().await;
}

/// A step with a fallback refuses to load unless it sends SMS and not email.
#[test]
fn a_fallback_needs_an_sms_step_without_email() {
    let dir = tempfile::tempdir().expect("dir");
    let yaml = "name: quick\nabandon_after: 1s\nsteps:\n  - id: reminder\n    after: 1s\n    channels: [email]\n    fallback: email\n    template: reminder\n";
    std::fs::write(dir.path().join("quick.yaml"), yaml).expect("write");
    let err = cartback::campaign::CampaignSet::load_dir(dir.path(), &|_, _| true).expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("quick.yaml:7:"), "file and line: {text}");
    assert!(text.contains("`fallback: email` is the only fallback"), "{text}");
}

/// Credentials the provider refuses (a rotated or mistyped auth token) are the operator's to
/// fix: the message is retried with backoff, not failed, and the timeline says what to check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_delay_messages_instead_of_failing_them() {
    let (fake, t) = with_fake_provider_and(&campaign(), |s| {
        s.sms.auth_token = Some(cartback::config::Secret::new("a-rotated-token"));
    })
    .await;
    assert_eq!(t.post(&event("creds", "+4915123456789")).await.status(), 202);
    t.wait_for("the refused send to be scheduled for a retry", Duration::from_secs(30), || async {
        (t.scalar("SELECT COUNT(*) FROM cart_log WHERE what = 'retry' AND detail LIKE '%sms.auth_token%'").await == 1)
            .then_some(())
    })
    .await;
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'failed'").await, 0, "nothing is failed");
    assert_eq!(t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'completed'").await, 0, "the step is still ahead");
    assert!(fake.seen.lock().expect("lock").is_empty(), "the provider accepted nothing");
    t.shutdown().await;
}
