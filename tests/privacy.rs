//! Erasure on request: personal data goes, anonymous facts and the opt-out stay.

#[macro_use]
mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Backend, SECRET, SHOP, cart_event, header, quick_campaign, spawn_app_with};

on_both!(a_person_is_erased_but_stays_unsubscribed, a_signed_erase_works_once_for_the_customer_it_names);

/// The Standard Webhooks headers a shop sends to erase customer `id`, signed with `key`.
fn erase_headers(key: &[u8], webhook_id: &str, id: &str) -> [(&'static str, String); 3] {
    use cartback::ingest::signature::{request_payload, sign};
    let ts = Utc::now().timestamp();
    let path = format!("/v1/shops/{SHOP}/customers/{id}");
    let sig = sign(key, webhook_id, ts, &request_payload("DELETE", &path, b""));
    [("webhook-id", webhook_id.to_owned()), ("webhook-timestamp", ts.to_string()), ("webhook-signature", sig)]
}

async fn send_erase(t: &common::TestApp, id: &str, headers: &[(&'static str, String)]) -> reqwest::Response {
    let mut req = t.client.delete(format!("{}/v1/shops/{SHOP}/customers/{id}", t.base));
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    req.send().await.expect("delete")
}

async fn erase(t: &common::TestApp, id: &str, key: &[u8]) -> reqwest::Response {
    send_erase(t, id, &erase_headers(key, "erase-1", id)).await
}

async fn a_person_is_erased_but_stays_unsubscribed(backend: Backend) {
    let t = spawn_app_with(backend, &quick_campaign(1, &[("reminder", 1, "reminder")]), true, |_| {}).await;
    let past = Utc::now() - chrono::Duration::hours(1);
    // cart_event's customer id is `cu_<cart id>`.
    assert_eq!(t.post(&cart_event("cart.updated", "p1", "paula@example.com", past)).await.status(), 202);
    let (file, raw) =
        t.wait_for("the reminder", Duration::from_secs(20), || async { t.emails().into_iter().next() }).await;
    t.wait_for("the send record", Duration::from_secs(10), || async {
        (t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'sent'").await == 1).then_some(())
    })
    .await;
    let unsubscribe = header(&raw, "List-Unsubscribe").expect("header").trim_matches(['<', '>']).to_owned();
    assert_eq!(t.client.post(&unsubscribe).send().await.expect("post").status(), 200);

    let who = cartback::ops::privacy::Person {
        shop: SHOP.into(),
        email: Some("paula@example.com".into()),
        ..Default::default()
    };
    let export = cartback::ops::privacy::export(&t.app, &who).await.expect("export");
    assert_eq!(export["carts"][0]["email"], "paula@example.com");
    assert_eq!(export["carts"][0]["events_received"][0]["body"]["customer"]["email"], "paula@example.com");
    assert_eq!(export["suppressions"][0]["reason"], "unsubscribed");

    let wrong = cartback::ingest::signature::secret_key("some-other-secret-long-enough").expect("key");
    assert_eq!(erase(&t, "cu_p1", &wrong).await.status(), 401);
    let key = cartback::ingest::signature::secret_key(SECRET).expect("key");
    let r = erase(&t, "cu_p1", &key).await;
    assert_eq!(r.status(), 200);
    let report: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        (report["carts"].as_i64(), report["messages_deleted"].as_i64(), report["suppressions_hashed"].as_i64()),
        (Some(1), Some(1), Some(1))
    );

    assert!(!file.exists(), "the rendered message is deleted");
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM carts WHERE email IS NOT NULL OR phone IS NOT NULL OR first_name IS NOT NULL")
            .await,
        0
    );
    assert_eq!(t.scalar("SELECT COUNT(*) FROM webhook_events WHERE body LIKE '%paula%'").await, 0);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM cart_log WHERE detail LIKE '%p***%' OR detail LIKE '%paula%'").await, 0);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM suppressions WHERE address LIKE 'sha256:%'").await, 1);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM suppressions WHERE address LIKE '%paula%'").await, 0);
    // The anonymous facts remain for the stats.
    assert_eq!(t.scalar("SELECT COUNT(*) FROM carts WHERE campaign = 'quick'").await, 1);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'sent'").await, 1);

    // She comes back with a new cart: the hashed opt-out still holds.
    assert_eq!(t.post(&cart_event("cart.updated", "p2", "paula@example.com", past)).await.status(), 202);
    t.wait_for("the new cart's reminder to be judged", Duration::from_secs(20), || async {
        (t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'skipped' AND reason = 'suppressed (unsubscribed)'").await
            == 1)
            .then_some(())
    })
    .await;
    t.shutdown().await;
}

/// Erasure reaches what identities and order history hold: the person's identity links go,
/// their orders stay only as anonymous amounts, and carts filed under the person by another
/// identity are erased too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_covers_identities_and_order_history() {
    let t =
        common::spawn_app(common::Backend::Sqlite, &common::quick_campaign(60, &[("reminder", 60, "reminder")])).await;
    let now = chrono::Utc::now();
    let mut a = common::cart_event("cart.updated", "c_email", "eve@example.com", now);
    a["customer"].as_object_mut().expect("customer").remove("id");
    assert_eq!(t.post(&a).await.status(), 202);
    // The same person by phone and customer id, linked through an event showing id and email.
    let b = serde_json::json!({"type": "cart.updated", "occurred_at": now.to_rfc3339(),
        "cart": {"id": "c_phone", "currency": "EUR", "total": "10.00", "items": []},
        "customer": {"id": "cu_eve", "email": "eve@example.com", "phone": "+4915123456789"}});
    assert_eq!(t.post(&b).await.status(), 202);
    let order = serde_json::json!({"type": "order.placed", "occurred_at": now.to_rfc3339(), "order_id": "o_9",
        "total": "10.00", "currency": "EUR", "customer": {"phone": "+4915123456789"}});
    assert_eq!(t.post(&order).await.status(), 202);
    assert!(t.scalar("SELECT COUNT(*) FROM identities").await >= 3);

    // Erase by the phone number only.
    let who = cartback::ops::privacy::Person {
        shop: common::SHOP.into(),
        email: None,
        phone: Some("+4915123456789".into()),
        customer_id: None,
    };
    let e = cartback::ops::privacy::erase(&t.app, &who).await.expect("erase");
    assert_eq!(e.carts, 2, "both carts of the person, whichever identity they were filed under");
    assert_eq!(t.scalar("SELECT COUNT(*) FROM identities").await, 0);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM carts WHERE email IS NOT NULL OR phone IS NOT NULL").await, 0);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM customer_orders WHERE email IS NOT NULL OR phone IS NOT NULL OR customer_id IS NOT NULL").await, 0);
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM customer_orders WHERE total_minor = 1000").await,
        1,
        "the amount stays, anonymous"
    );
    t.shutdown().await;
}

/// A shop-signed erase names its customer: the same headers sent again for another customer
/// (the replay that erased anyone) are refused and erase nobody; the same request sent twice
/// is carried out once; a signature over the empty body alone (the old form) is refused.
async fn a_signed_erase_works_once_for_the_customer_it_names(backend: Backend) {
    let t = spawn_app_with(backend, &quick_campaign(3600, &[("reminder", 60, "reminder")]), true, |_| {}).await;
    let now = Utc::now();
    for (cart, email) in [("a1", "ada@example.com"), ("b1", "ben@example.com")] {
        assert_eq!(t.post(&cart_event("cart.updated", cart, email, now)).await.status(), 202);
    }
    let key = cartback::ingest::signature::secret_key(SECRET).expect("key");
    let kept = || t.scalar("SELECT COUNT(*) FROM carts WHERE email IS NOT NULL");

    // The old form: Standard Webhooks over the empty body, which named no customer.
    let ts = Utc::now().timestamp();
    let bare = cartback::ingest::signature::sign(&key, "erase-old", ts, b"");
    let old =
        [("webhook-id", "erase-old".to_owned()), ("webhook-timestamp", ts.to_string()), ("webhook-signature", bare)];
    let r = send_erase(&t, "cu_a1", &old).await;
    assert_eq!(r.status(), 401);
    assert_eq!(kept().await, 2, "a refused erase changes nothing");

    let signed = erase_headers(&key, "erase-a", "cu_a1");
    // Replayed against another customer: the signature does not cover that path.
    let r = send_erase(&t, "cu_b1", &signed).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(kept().await, 2);

    let r = send_erase(&t, "cu_a1", &signed).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.expect("json")["carts"], 1);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM carts WHERE email = 'ben@example.com'").await, 1, "Ben is untouched");

    // Ada comes back within the signature's five minutes; the captured request is refused.
    assert_eq!(t.post(&cart_event("cart.updated", "a2", "ada@example.com", now)).await.status(), 202);
    let r = send_erase(&t, "cu_a2", &erase_headers(&key, "erase-a", "cu_a2")).await;
    assert_eq!(r.status(), 409, "the same webhook-id a second time");
    let problem: serde_json::Value = r.json().await.expect("problem+json");
    assert_eq!(problem["field"], "webhook-id");
    assert_eq!(t.scalar("SELECT COUNT(*) FROM carts WHERE email = 'ada@example.com'").await, 1, "her new cart stays");
    t.shutdown().await;
}

/// After an erasure, the SQLite file and its WAL hold none of the person's bytes: not in
/// rows, not in the free space inside pages, not in the statistics' samples, not in old page
/// images in the WAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_no_bytes_in_the_sqlite_files() {
    let t = spawn_app_with(Backend::Sqlite, &quick_campaign(1, &[("reminder", 1, "reminder")]), true, |_| {}).await;
    let past = Utc::now() - chrono::Duration::hours(1);
    let mut ev = cart_event("cart.updated", "z1", "zelda.quintessence@example.com", past);
    ev["customer"]["first_name"] = "Zephyrine".into();
    ev["customer"]["phone"] = "+4915799887766".into();
    ev["cart"]["items"][0]["title"] = "Xylophone Quartz Seven".into();
    assert_eq!(t.post(&ev).await.status(), 202);
    t.wait_for("the reminder", Duration::from_secs(20), || async {
        (t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'sent'").await == 1).then_some(())
    })
    .await;
    // Statistics with samples of every index, as the worker's PRAGMA optimize makes in time.
    t.exec("ANALYZE").await;
    let secrets = ["zelda.quintessence", "Zephyrine", "4915799887766", "Xylophone Quartz"];
    let files = || {
        ["test.db", "test.db-wal"]
            .iter()
            .filter_map(|f| std::fs::read(t.dir.path().join(f)).ok())
            .collect::<Vec<Vec<u8>>>()
    };
    let found = |bytes: &[Vec<u8>]| -> Vec<&str> {
        secrets
            .iter()
            .copied()
            .filter(|s| bytes.iter().any(|b| b.windows(s.len()).any(|w| w == s.as_bytes())))
            .collect()
    };
    assert_eq!(found(&files()), secrets, "the person is in the files before the erasure");

    let who = cartback::ops::privacy::Person {
        shop: common::SHOP.into(),
        email: Some("zelda.quintessence@example.com".into()),
        ..Default::default()
    };
    assert_eq!(cartback::ops::privacy::erase(&t.app, &who).await.expect("erase").carts, 1);
    assert_eq!(found(&files()), Vec::<&str>::new(), "bytes left in the database file or its WAL");
    t.shutdown().await;
}

/// The database (link-signing key, personal data), its WAL and shared-memory files, and the
/// outbox are the owner's alone, even under a umask of 022.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_holding_secrets_and_personal_data_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let t = spawn_app_with(Backend::Sqlite, &quick_campaign(1, &[("reminder", 1, "reminder")]), true, |_| {}).await;
    let past = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(t.post(&cart_event("cart.updated", "perm", "perm@example.com", past)).await.status(), 202);
    let (file, _) =
        t.wait_for("the reminder", Duration::from_secs(20), || async { t.emails().into_iter().next() }).await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    let db = t.dir.path().join("test.db");
    for p in [db.clone(), db.with_extension("db-wal"), db.with_extension("db-shm"), file.clone()] {
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    assert_eq!(mode(&t.outbox()), 0o700, "the outbox directory");
    t.shutdown().await;

    // A database created by an older release with the umask's mode is closed up at start.
    let dir = tempfile::tempdir().expect("tempdir");
    let old = dir.path().join("old.db");
    std::fs::write(&old, b"").expect("create");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let db = cartback::store::Db::connect(&format!("sqlite://{}", old.display())).await.expect("connect");
    assert_eq!(mode(&old), 0o600);
    drop(db);
}
