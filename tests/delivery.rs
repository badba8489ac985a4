//! SMTP delivery against postfix's `smtp-sink` with its fault injection: each class of relay
//! trouble, the secondary relay behind the circuit breaker, and SMTPUTF8.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Backend, SmtpSink, TestApp, cart_event, free_port, quick_campaign, spawn_app_with};

async fn app_with_relay(
    primary: &str,
    secondary: Option<String>,
    tweak: impl FnOnce(&mut cartback::config::Settings),
) -> TestApp {
    let primary = primary.to_owned();
    spawn_app_with(Backend::Sqlite, &quick_campaign(1, &[("reminder", 1, "reminder")]), true, move |s| {
        s.email.transport = cartback::config::EmailTransportKind::Smtp;
        s.email.smtp_url = Some(cartback::config::Secret::new(primary));
        s.email.smtp_secondary_url = secondary.map(cartback::config::Secret::new);
        s.email.smtp_timeout = Duration::from_millis(1000);
        tweak(s);
    })
    .await
}

const OPS: &str = "ops-token-for-tests";

async fn wait_scalar(t: &TestApp, what: &str, sql: &'static str, want: i64) {
    t.wait_for(what, Duration::from_secs(30), || async { (t.scalar(sql).await == want).then_some(()) }).await;
}

/// Each kind of relay trouble `smtp-sink` can act out, and what the send log says about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_class_of_relay_trouble_gets_its_verdict() {
    let past = Utc::now() - chrono::Duration::hours(1);
    // (smtp-sink flags, what the relay does, expected send status, text the reason must carry)
    // (smtp-sink flags, what the relay does, expected send status, text the reason must carry,
    // messages the sink kept)
    let cases: [(&[&str], &str, &str, &str, usize); 5] = [
        (&["-f", "RCPT"], "hard reject (5xx) at RCPT", "failed", "500", 0),
        (&["-r", "RCPT"], "soft reject (4xx) at RCPT", "claimed", "450", 0),
        (&["-Q", "MAIL"], "421 and disconnect at MAIL", "claimed", "421", 0),
        // The relay got the whole message but never said so: the honest in-doubt case, retried
        // (with the same Message-ID) because nothing confirmed it.
        (&["-q", "."], "disconnect after the message, no reply", "claimed", "SMTP", 1),
        (&["-w", "3"], "3 s delay before answering DATA (timeout 1 s)", "claimed", "SMTP", 0),
    ];
    for (flags, what, status, reason, kept) in cases {
        let sink = SmtpSink::start(flags);
        let t = app_with_relay(&sink.url(), None, |_| {}).await;
        assert_eq!(t.post(&cart_event("cart.updated", "c_fault", "ada@example.org", past)).await.status(), 202);
        t.wait_for(what, Duration::from_secs(30), || async {
            let n = t.scalar("SELECT COUNT(*) FROM cart_log WHERE what IN ('failed', 'retry', 'sent')").await;
            (n >= 1).then_some(())
        })
        .await;
        let row: (String, Option<String>, i64) = match common::raw(&t.app.db) {
            common::Raw::Sqlite(p) => {
                sqlx::query_as("SELECT status, reason, claimed_at FROM sends").fetch_one(p).await.expect("send row")
            }
            common::Raw::Postgres(_) => unreachable!(),
        };
        assert_eq!(row.0, status, "{what}: {row:?}");
        let why = row.1.unwrap_or_default();
        assert!(why.contains(reason), "{what}: reason {why:?} should mention {reason}");
        if status == "claimed" {
            assert_eq!(row.2, 0, "{what}: a transient failure releases the claim for a retry with backoff");
            assert_eq!(t.scalar("SELECT COUNT(*) FROM cart_log WHERE what = 'retry'").await, 1, "{what}");
        }
        assert_eq!(sink.recipients().len(), kept, "{what}: messages the relay kept");
        t.shutdown().await;
    }
}

/// The primary relay is down: messages go through the secondary and the circuit opens; once
/// the primary is back, a probe after the cooldown closes it and mail flows there again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_relay_takes_over_while_the_primary_is_down() {
    let primary_port = free_port(); // nothing listens yet: connection refused
    let secondary = SmtpSink::start(&[]);
    let t = app_with_relay(&format!("smtp://127.0.0.1:{primary_port}"), Some(secondary.url()), |s| {
        s.ops_token = Some(cartback::config::Secret::new(OPS));
        s.email.breaker_failures = 2;
        s.email.breaker_cooldown = Duration::from_secs(2);
    })
    .await;
    let past = Utc::now() - chrono::Duration::hours(1);
    for i in 0..4 {
        let body = cart_event("cart.updated", &format!("c_{i}"), &format!("p{i}@example.org"), past);
        assert_eq!(t.post(&body).await.status(), 202);
    }
    wait_scalar(&t, "four messages through the secondary", "SELECT COUNT(*) FROM sends WHERE status = 'sent'", 4).await;
    assert_eq!(secondary.recipients().len(), 4, "the secondary relay got every message");
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE message_ref LIKE '% via secondary'").await, 4);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM cart_log WHERE detail LIKE '%via the secondary relay%'").await, 4);
    let metrics = t.metrics(OPS).await;
    assert!(metrics.contains("cartback_smtp_circuit_open 1"), "circuit open after repeated failures:\n{metrics}");

    // The primary comes back; after the cooldown one message probes it and closes the circuit.
    let primary = SmtpSink::start_on(primary_port, &[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let body = cart_event("cart.updated", "c_back", "back@example.org", past);
    assert_eq!(t.post(&body).await.status(), 202);
    wait_scalar(&t, "the fifth message", "SELECT COUNT(*) FROM sends WHERE status = 'sent'", 5).await;
    assert_eq!(primary.recipients(), vec!["back@example.org".to_owned()], "the probe went to the primary");
    let metrics = t.metrics(OPS).await;
    assert!(metrics.contains("cartback_smtp_circuit_open 0"), "circuit closed again:\n{metrics}");
    t.shutdown().await;
}

/// Without a secondary, an open circuit fails fast and every message is retried later, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secondary_an_outage_only_delays_messages() {
    let port = free_port();
    let t = app_with_relay(&format!("smtp://127.0.0.1:{port}"), None, |s| {
        s.email.breaker_failures = 1;
        s.email.breaker_cooldown = Duration::from_millis(500);
    })
    .await;
    let past = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(t.post(&cart_event("cart.updated", "c_wait", "wait@example.org", past)).await.status(), 202);
    wait_scalar(&t, "a retry to be scheduled", "SELECT COUNT(*) FROM cart_log WHERE what = 'retry'", 1).await;
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'claimed' AND claimed_at = 0").await, 1);
    let retry = t.scalar("SELECT COUNT(*) FROM cart_log WHERE what = 'retry' AND detail LIKE '%retrying at%'").await;
    assert_eq!(retry, 1, "the timeline says when it is retried");
    t.shutdown().await;
}

/// A relay outage longer than the whole sequence: when the relay is back, the overdue steps
/// do not reach the customer in the same second but one `min_gap` apart (by default the
/// smallest spacing between the steps, here 2 s), each re-spaced with the reason on the
/// timeline. (The decision is a pure function, tested without a database in
/// `recovery::decide`; this runs it through the real worker and relay.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_relay_outage_the_overdue_steps_keep_their_gap() {
    let port = free_port();
    let campaign = quick_campaign(1, &[("reminder", 1, "reminder"), ("faq", 3, "faq"), ("incentive", 5, "incentive")]);
    let relay = format!("smtp://127.0.0.1:{port}");
    let t = spawn_app_with(Backend::Sqlite, &campaign, true, move |s| {
        s.email.transport = cartback::config::EmailTransportKind::Smtp;
        s.email.smtp_url = Some(cartback::config::Secret::new(relay));
        s.email.smtp_timeout = Duration::from_millis(1000);
    })
    .await;
    // Abandoned an hour ago: every step is overdue, and the relay is down.
    let past = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(t.post(&cart_event("cart.updated", "c_out", "out@example.org", past)).await.status(), 202);
    wait_scalar(&t, "the reminder to fail for now", "SELECT COUNT(*) FROM cart_log WHERE what = 'retry'", 1).await;
    tokio::time::sleep(Duration::from_secs(6)).await; // longer than the sequence's 4 s span
    let sink = SmtpSink::start_on(port, &[]);
    // The reminder's retry comes after its backoff (30 s ± 20 %), then the other two.
    t.wait_for("all three steps at the relay", Duration::from_secs(90), || async {
        (sink.recipients().len() == 3).then_some(())
    })
    .await;
    let done = [
        t.scalar("SELECT completed_at FROM sends WHERE step = 'reminder' AND status = 'sent'").await,
        t.scalar("SELECT completed_at FROM sends WHERE step = 'faq' AND status = 'sent'").await,
        t.scalar("SELECT completed_at FROM sends WHERE step = 'incentive' AND status = 'sent'").await,
    ];
    assert!(done[1] - done[0] >= 2_000 && done[2] - done[1] >= 2_000, "one min_gap apart at least: {done:?}");
    let respaced = t
        .scalar("SELECT COUNT(*) FROM cart_log WHERE what = 'deferred' AND detail LIKE '%re-spaced%min_gap is 2s%'")
        .await;
    assert_eq!(respaced, 2, "the FAQ and the incentive were each re-spaced, with the reason");
    t.shutdown().await;
}

/// An internationalized address goes out only through a relay that offers SMTPUTF8;
/// otherwise the message fails for good with a reason an operator can act on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internationalized_addresses_need_smtputf8() {
    let past = Utc::now() - chrono::Duration::hours(1);
    // smtp-sink does not announce SMTPUTF8.
    let sink = SmtpSink::start(&[]);
    let t = app_with_relay(&sink.url(), None, |_| {}).await;
    assert_eq!(t.post(&cart_event("cart.updated", "c_eai", "jörg@exämple.de", past)).await.status(), 202);
    assert_eq!(t.post(&cart_event("cart.updated", "c_ascii", "joerg@example.de", past)).await.status(), 202);
    wait_scalar(&t, "both messages decided", "SELECT COUNT(*) FROM sends WHERE status IN ('sent', 'failed')", 2).await;
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'failed' AND reason LIKE '%does not offer SMTPUTF8%'")
            .await,
        1,
        "permanent, explained failure"
    );
    assert_eq!(t.scalar("SELECT COUNT(*) FROM cart_log WHERE what = 'retry'").await, 0, "not retried");
    assert_eq!(sink.recipients(), vec!["joerg@example.de".to_owned()]);
    t.shutdown().await;

    // aiosmtpd with --smtputf8 announces it: the same address is delivered.
    let port = free_port();
    let maildir = tempfile::tempdir().expect("maildir");
    let mut child = std::process::Command::new("python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "--smtputf8",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(maildir.path().join("mail"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 -m aiosmtpd (pip install aiosmtpd)");
    common::wait_listening(port, "aiosmtpd");
    let t = app_with_relay(&format!("smtp://127.0.0.1:{port}"), None, |_| {}).await;
    assert_eq!(t.post(&cart_event("cart.updated", "c_eai", "jörg@exämple.de", past)).await.status(), 202);
    wait_scalar(&t, "the message delivered", "SELECT COUNT(*) FROM sends WHERE status = 'sent'", 1).await;
    let delivered: Vec<String> = std::fs::read_dir(maildir.path().join("mail/new"))
        .expect("maildir")
        .filter_map(|e| std::fs::read_to_string(e.expect("entry").path()).ok())
        .collect();
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].contains("jörg@"), "the UTF-8 address arrived intact");
    t.shutdown().await;
    let _ = child.kill();
    let _ = child.wait();
}

/// A claim of `step`'s email for `cart`, with no address to check against suppressions.
fn email_send(cart: i64, step: &str) -> cartback::store::NewSend<'_> {
    cartback::store::NewSend { cart_id: cart, step, channel: "email", due_at: 0, customer_ref: None, to: None }
}

/// The fence under the crash rules: once a claim is taken over, the old holder can neither
/// hand the message over nor record a result; the new holder can. A handed-over claim taken
/// over is reported as such (the in-doubt case).
async fn stale_holder_is_fenced_off(backend: Backend) {
    use cartback::domain::CartStatus;
    use cartback::domain::Receipt;
    use cartback::store::{Claim, HandOverMark, SendStatus};
    let t = spawn_app_with(backend, &quick_campaign(1, &[("reminder", 1, "reminder")]), false, |_| {}).await;
    assert_eq!(t.post(&cart_event("cart.updated", "c_fence", "f@example.org", Utc::now())).await.status(), 202);
    let cart = t.scalar("SELECT id FROM carts").await;
    let lease = 1_000;
    let mut tx = t.app.db.begin().await.expect("tx");
    let Claim::Claimed(old) = tx.claim_send(&email_send(cart, "reminder"), 10_000, lease).await.expect("claim") else {
        panic!("fresh claim")
    };
    assert_eq!(
        tx.hand_over(old.attempt(), 10_100, "handed over to test").await.expect("hand over"),
        HandOverMark::Marked,
        "the holder may hand it over"
    );
    assert!(matches!(
        tx.claim_send(&email_send(cart, "reminder"), 10_500, lease).await.expect("claim"),
        Claim::Held(..)
    ));
    let Claim::Claimed(new) = tx.claim_send(&email_send(cart, "reminder"), 11_001, lease).await.expect("claim") else {
        panic!("taken over after the lease")
    };
    assert_eq!(new.attempts, old.attempts + 1);
    assert!(new.handed_at.is_some(), "the new holder sees the message was handed over (in doubt)");
    assert_eq!(
        tx.hand_over(old.attempt(), 11_100, "handed over to test").await.expect("hand over"),
        HandOverMark::TakenOver,
        "stale holder fenced"
    );
    // An order that arrived during the conversation stops the holder at the hand-over too.
    let mut row = tx.cart_by_id(cart).await.expect("cart").expect("the cart");
    let before = row.status();
    row.set_status(CartStatus::Recovered);
    tx.save_cart(&row).await.expect("save");
    assert_eq!(
        tx.hand_over(new.attempt(), 11_150, "handed over to test").await.expect("hand over"),
        HandOverMark::CartLeft(CartStatus::Recovered),
        "no hand-over after the cart's order"
    );
    row.set_status(before);
    tx.save_cart(&row).await.expect("save");
    assert!(!tx.release_claim(old.attempt(), "x").await.expect("release"), "stale holder fenced");
    assert!(
        !tx.complete_send(old.attempt(), SendStatus::Failed, Some("x"), None, 11_200).await.expect("complete"),
        "stale holder cannot record a failure"
    );
    assert!(
        tx.complete_send(new.attempt(), SendStatus::Unconfirmed, Some("in doubt"), None, 11_300)
            .await
            .expect("complete"),
        "the new holder records the verdict"
    );
    // The stale holder's message did reach the relay after all: its success still counts.
    assert!(
        tx.complete_send(
            old.attempt(),
            SendStatus::Sent,
            None,
            Some(&Receipt::Smtp { code: 250, secondary: false }),
            11_400
        )
        .await
        .expect("complete")
    );
    assert!(matches!(
        tx.claim_send(&email_send(cart, "reminder"), 20_000, lease).await.expect("claim"),
        Claim::Done(_)
    ));
    // A hand-over nobody recorded, on a cart that left its sequence: found by the sweep
    // once it is older than the cutoff, never before, and never a recorded one.
    let Claim::Claimed(other) = tx.claim_send(&email_send(cart, "faq"), 30_000, lease).await.expect("claim") else {
        panic!("fresh claim")
    };
    assert_eq!(
        tx.hand_over(other.attempt(), 30_100, "handed over to test").await.expect("hand over"),
        HandOverMark::Marked
    );
    assert_eq!(tx.strand_hand_overs(30_000, 40_000).await.expect("sweep"), 0, "not older than the cutoff");
    assert_eq!(tx.strand_hand_overs(30_001, 40_000).await.expect("sweep"), 1);
    tx.commit().await.expect("commit");
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'sent' AND message_ref = 'smtp 250'").await, 1);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'unconfirmed' AND step = 'faq'").await, 1);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_claim_holder_is_fenced_off() {
    stale_holder_is_fenced_off(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_stale_claim_holder_is_fenced_off() {
    stale_holder_is_fenced_off(Backend::Postgres).await;
}
