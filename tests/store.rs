//! The store's transactions: timeline lines wait for the commit and are written in order;
//! recovery jobs' transactions are grouped on SQLite.

#[macro_use]
mod common;

use cartback::domain::CustomerRef;
use cartback::store::NewSend;
use chrono::Utc;
use common::{Backend, cart_event, quick_campaign, spawn_app_with};

/// An app (no worker) with one active cart, and that cart's row id.
async fn one_cart(backend: Backend) -> (common::TestApp, i64) {
    let t = spawn_app_with(backend, &quick_campaign(600, &[("reminder", 600, "reminder")]), false, |_| {}).await;
    assert_eq!(t.post(&cart_event("cart.updated", "c_1", "anna@example.de", Utc::now())).await.status(), 202);
    let cart = t.scalar("SELECT id FROM carts").await;
    (t, cart)
}

/// Lines logged in a transaction are written by its commit, in order, across more than one
/// `INSERT` (200 lines each); the transaction reads its own lines before that; a transaction
/// dropped without a commit writes none.
async fn timeline_lines_are_written_with_the_commit(backend: Backend) {
    let (t, cart) = one_cart(backend).await;
    let before = t.scalar("SELECT COUNT(*) FROM cart_log").await;

    let mut tx = t.app.db.begin().await.expect("begin");
    tx.log(cart, 1, "test", "dropped").await.expect("log");
    drop(tx);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM cart_log").await, before, "a rolled-back transaction writes no line");

    let mut tx = t.app.db.begin().await.expect("begin");
    for i in 0..450 {
        tx.log(cart, 1_000 + i, "test", &format!("line {i}")).await.expect("log");
    }
    let own: Vec<String> =
        tx.cart_log(cart).await.expect("timeline").into_iter().filter(|e| e.what == "test").map(|e| e.detail).collect();
    assert_eq!(own.len(), 450, "the transaction reads the lines it logged");
    tx.log(cart, 2_000, "test", "last").await.expect("log");
    tx.commit().await.expect("commit");

    let mut tx = t.app.db.begin().await.expect("begin");
    let lines: Vec<String> =
        tx.cart_log(cart).await.expect("timeline").into_iter().filter(|e| e.what == "test").map(|e| e.detail).collect();
    tx.commit().await.expect("commit");
    let expected: Vec<String> = (0..450).map(|i| format!("line {i}")).chain(["last".to_owned()]).collect();
    assert_eq!(lines, expected, "every line, once, in the order logged");
    t.shutdown().await;
}

/// Wait until `n` recovery jobs stand in line for a turn in the shared transaction.
async fn until_in_line(t: &common::TestApp, n: usize) {
    for _ in 0..500 {
        if t.app.jobs_tx.in_line() == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{n} turns never stood in line");
}

async fn paused_count(t: &common::TestApp) -> i64 {
    t.scalar("SELECT COUNT(*) FROM campaign_state WHERE paused").await
}

/// Turn `a` holds the group transaction and has written; turn `b`, in a task, waits for its
/// turn, writes, then waits for `go` and either commits or (a job that failed) drops its turn.
async fn two_turns(
    t: &common::TestApp,
    b_commits: bool,
) -> (
    cartback::store::GroupTx,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), cartback::store::StoreError>>,
) {
    let group = t.app.jobs_tx.clone();
    let mut a = group.begin().await.expect("begin a");
    a.set_campaign_paused("a", true, 1).await.expect("write a");
    let (go, hold) = tokio::sync::oneshot::channel::<()>();
    let b = tokio::spawn(async move {
        let mut b = group.begin().await.expect("begin b");
        b.set_campaign_paused("b", true, 1).await.expect("write b");
        hold.await.expect("go");
        if b_commits { b.commit().await } else { Ok(()) }
    });
    (a, go, b)
}

/// Recovery jobs' transactions: on SQLite, jobs running together take turns in one transaction,
/// and a turn's commit returns only once the group's commit is durable (so a job never sends
/// a message on a claim that could still be lost). On PostgreSQL each is its own transaction.
async fn grouped_turns_commit_together(backend: Backend) {
    let t = spawn_app_with(backend, &quick_campaign(600, &[("reminder", 600, "reminder")]), false, |_| {}).await;
    let (a, go, b) = two_turns(&t, true).await;
    match backend {
        Backend::Sqlite => {
            until_in_line(&t, 1).await;
            let a_done = tokio::spawn(a.commit());
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert!(!a_done.is_finished(), "a turn's commit waits for the group it handed its writes to");
            go.send(()).expect("b waits");
            a_done.await.expect("join").expect("a durable");
            b.await.expect("join").expect("b durable");
        }
        Backend::Postgres => {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert_eq!(t.app.jobs_tx.in_line(), 0, "no turn waits on PostgreSQL");
            a.commit().await.expect("a commits alone, while b is still open");
            go.send(()).expect("b waits");
            b.await.expect("join").expect("b commits");
        }
    }
    assert_eq!(paused_count(&t).await, 2, "both writes are stored");
    t.shutdown().await;
}

/// A turn that ends without its commit (a failed job) cannot be undone alone: on SQLite its
/// whole group rolls back and the other turns' commits say so; the next turn starts afresh.
async fn a_failed_turn_rolls_back_its_group(backend: Backend) {
    let t = spawn_app_with(backend, &quick_campaign(600, &[("reminder", 600, "reminder")]), false, |_| {}).await;
    let (a, go, b) = two_turns(&t, false).await;
    match backend {
        Backend::Sqlite => {
            until_in_line(&t, 1).await;
            let a_done = tokio::spawn(a.commit());
            go.send(()).expect("b waits");
            b.await.expect("join").expect("b dropped its turn");
            let err = a_done.await.expect("join").expect_err("a's group failed");
            assert!(matches!(err, cartback::store::StoreError::GroupAborted(_)), "{err}");
            assert_eq!(paused_count(&t).await, 0, "nothing of the group is stored");
        }
        Backend::Postgres => {
            a.commit().await.expect("a commits alone");
            go.send(()).expect("b waits");
            b.await.expect("join").expect("b dropped its turn");
            assert_eq!(paused_count(&t).await, 1, "only b's write is lost");
        }
    }
    let mut c = t.app.jobs_tx.begin().await.expect("begin c");
    c.set_campaign_paused("c", true, 1).await.expect("write c");
    c.commit().await.expect("c commits");
    let stored = match backend {
        Backend::Sqlite => 1,   // c alone: the failed group left nothing
        Backend::Postgres => 2, // a and c
    };
    assert_eq!(paused_count(&t).await, stored, "the next turn starts a group of its own and commits");
    t.shutdown().await;
}

/// A claim to an address checks the suppression list in the same statement: a suppressed
/// address (as written, or as the hash an erasure keeps) gets `Suppressed` and no row; an
/// address that is not suppressed is claimed once, and a second claim finds it held.
async fn a_claim_checks_the_suppression_list(backend: Backend) {
    use cartback::store::Claim;
    use cartback::store::sends::address_hash;
    let (t, cart) = one_cart(backend).await;
    let shop = t.text("SELECT shop FROM carts").await;
    let mut tx = t.app.db.begin().await.expect("begin");
    tx.suppress(&shop, "email", "blocked@example.de", "bounced", 1).await.expect("suppress");
    tx.suppress(&shop, "email", &address_hash("erased@example.de"), "erased", 1).await.expect("suppress");
    for (step, address, reason) in [("a", "blocked@example.de", "bounced"), ("b", "erased@example.de", "erased")] {
        match tx
            .claim_send(
                &NewSend {
                    cart_id: cart,
                    step,
                    channel: "email",
                    due_at: 0,
                    customer_ref: None,
                    to: Some((&shop, address)),
                },
                10,
                1_000,
            )
            .await
            .expect("claim")
        {
            Claim::Suppressed(r) => assert_eq!(r, reason, "{address}"),
            other => panic!("{address} is suppressed: {other:?}"),
        }
    }
    assert!(matches!(
        tx.claim_send(
            &NewSend {
                cart_id: cart,
                step: "a",
                channel: "sms",
                due_at: 0,
                customer_ref: None,
                to: Some((&shop, "blocked@example.de"))
            },
            10,
            1_000
        )
        .await
        .expect("claim"),
        Claim::Claimed(_)
    ));
    let Claim::Claimed(row) = tx
        .claim_send(
            &NewSend {
                cart_id: cart,
                step: "c",
                channel: "email",
                due_at: 0,
                customer_ref: None,
                to: Some((&shop, "anna@example.de")),
            },
            10,
            1_000,
        )
        .await
        .expect("claim")
    else {
        panic!("a new claim")
    };
    assert_eq!((row.cart_id, row.step.as_str(), row.channel.as_str()), (cart, "c", "email"));
    assert!(matches!(
        tx.claim_send(
            &NewSend {
                cart_id: cart,
                step: "c",
                channel: "email",
                due_at: 0,
                customer_ref: None,
                to: Some((&shop, "anna@example.de"))
            },
            20,
            1_000
        )
        .await
        .expect("claim"),
        Claim::Held(_, 1_010)
    ));
    tx.commit().await.expect("commit");
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE channel = 'email'").await, 1, "suppressed: no rows");
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE channel = 'sms'").await, 1, "other channel claimed");
    t.shutdown().await;
}

/// A recovery job's transaction on SQLite holds its cart's changes and its next job back and
/// sends them in the same command as the claim: the claim's own values and the cart's are
/// stored as given, a claim refused by the suppression list keeps the cart's changes, the job
/// is queued once. PostgreSQL writes at once: the same result.
async fn a_claim_carries_the_held_back_writes(backend: Backend) {
    use cartback::queue::{RecoveryJob, push};
    use cartback::store::Claim;
    let (t, cart) = one_cart(backend).await;
    let shop = t.text("SELECT shop FROM carts").await;
    let jobs_sql = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM Jobs",
        Backend::Postgres => "SELECT COUNT(*) FROM apalis.jobs",
    };
    let jobs_before = t.scalar(jobs_sql).await;
    let mut tx = t.app.db.begin().await.expect("begin");
    tx.defer_writes();
    tx.suppress(&shop, "email", "blocked@example.de", "bounced", 1).await.expect("suppress");
    let mut row = tx.cart_by_id(cart).await.expect("read").expect("cart");
    row.first_name = Some("Claimed".into());
    row.next_step = 2;
    row.next_run_at = Some(77);
    tx.save_cart(&row).await.expect("save");
    push(&mut tx, RecoveryJob { cart, seq: 99, due_ms: None }, Utc::now() + chrono::Duration::seconds(30))
        .await
        .expect("push");
    let seven = CustomerRef::account("7");
    let claim = tx
        .claim_send(
            &NewSend {
                cart_id: cart,
                step: "a",
                channel: "email",
                due_at: 5,
                customer_ref: Some(&seven),
                to: Some((&shop, "anna@example.de")),
            },
            10,
            1_000,
        )
        .await;
    let Claim::Claimed(send) = claim.expect("claim") else { panic!("a new claim") };
    assert_eq!(
        (send.cart_id, send.step.as_str(), send.channel.as_str(), send.status.as_str()),
        (cart, "a", "email", "claimed")
    );
    assert_eq!((send.due_at, send.claimed_at, send.customer_ref), (5, 10, Some(seven)));
    let read = tx.cart_by_id(cart).await.expect("read").expect("cart");
    assert_eq!(format!("{read:?}"), format!("{row:?}"), "the cart as the job saved it");

    row.first_name = Some("Suppressed".into());
    tx.save_cart(&row).await.expect("save");
    let claim = tx
        .claim_send(
            &NewSend {
                cart_id: cart,
                step: "b",
                channel: "email",
                due_at: 5,
                customer_ref: None,
                to: Some((&shop, "blocked@example.de")),
            },
            10,
            1_000,
        )
        .await;
    assert!(matches!(claim.expect("claim"), Claim::Suppressed(r) if r == "bounced"));
    tx.commit().await.expect("commit");

    assert_eq!(t.text("SELECT first_name FROM carts").await, "Suppressed");
    assert_eq!(t.scalar("SELECT next_run_at FROM carts").await, 77);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends").await, 1, "the suppressed claim wrote no row");
    assert_eq!(t.scalar(jobs_sql).await, jobs_before + 1, "the job was queued once");
    t.shutdown().await;
}

/// `advance_cart` moves a cart on only while it is as its job read it (abandoned, same `seq`).
async fn advancing_an_unread_cart_is_guarded(backend: Backend) {
    use cartback::store::CartStatus;
    let (t, cart) = one_cart(backend).await;
    let seq = t.scalar("SELECT seq FROM carts").await;
    let mut tx = t.app.db.begin().await.expect("begin");
    assert!(
        !tx.advance_cart(cart, seq, CartStatus::Completed, 1, seq, None).await.expect("advance"),
        "an active cart is not moved on"
    );
    tx.commit().await.expect("commit");
    t.exec("UPDATE carts SET status = 'abandoned'").await;
    let mut tx = t.app.db.begin().await.expect("begin");
    assert!(!tx.advance_cart(cart, seq - 1, CartStatus::Completed, 1, seq, None).await.expect("advance"), "old seq");
    assert!(tx.advance_cart(cart, seq, CartStatus::Abandoned, 1, seq + 1, Some(5)).await.expect("advance"));
    tx.commit().await.expect("commit");
    assert_eq!(t.scalar("SELECT seq FROM carts").await, seq + 1);
    assert_eq!(t.scalar("SELECT next_step FROM carts").await, 1);
    assert_eq!(t.scalar("SELECT next_run_at FROM carts").await, 5);
    assert_eq!(t.text("SELECT status FROM carts").await, "abandoned");
    t.shutdown().await;
}

/// An ingest transaction holds its cart updates, identity links and jobs back and writes them
/// together (SQLite), yet reads them as if written at once: its cart as changed, who owns an
/// identity, the zone another of the customer's carts reported; any other statement writes
/// them first, and the commit writes the last version. PostgreSQL writes at once: the same
/// reads, the same result.
async fn held_back_writes_read_as_written(backend: Backend) {
    use cartback::queue::{RecoveryJob, push};
    let (t, cart) = one_cart(backend).await;
    let jobs_sql = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM Jobs",
        Backend::Postgres => "SELECT COUNT(*) FROM apalis.jobs",
    };
    let jobs_before = t.scalar(jobs_sql).await;
    let now = Utc::now().timestamp_millis();
    let mut tx = t.app.db.begin().await.expect("begin");
    tx.defer_writes();
    let (mut row, created) = tx.ensure_cart(common::SHOP, "c_1", now).await.expect("cart");
    assert!(!created);
    assert_eq!(row.id, cart);
    row.first_name = Some("Held".into());
    row.customer_ref = Some(CustomerRef::account("42"));
    row.timezone = Some("Europe/Vienna".into());
    row.timezone_source = Some("event: customer.timezone".into());
    row.accepts_email = true;
    row.consent_at = Some(now - 5_000);
    row.consent_source = Some("cart.updated for cart c_1".into());
    row.updated_at = now;
    tx.save_cart(&row).await.expect("save");
    let (again, created) = tx.ensure_cart(common::SHOP, "c_1", now).await.expect("cart");
    assert!(!created);
    assert_eq!(again.first_name.as_deref(), Some("Held"), "the cart as this transaction changed it");

    let (held, account) = (CustomerRef::Email("held@example.com".into()), CustomerRef::account("42"));
    tx.link_identities(common::SHOP, std::slice::from_ref(&held), &account).await.expect("link");
    let owners = tx.identity_owners(common::SHOP, &[held.clone(), CustomerRef::Email("none@x.io".into())]).await;
    let owners = owners.expect("owners");
    assert_eq!(owners.get(&held), Some(&account));
    assert_eq!(owners.len(), 1, "unknown identities have no owner");

    let (other, created) = tx.ensure_cart(common::SHOP, "c_2", now).await.expect("cart");
    assert!(created, "a new cart is new");
    let facts = tx.customer_facts(common::SHOP, None, Some((&account, other.id))).await.expect("facts");
    assert_eq!(facts.zone.as_deref(), Some("Europe/Vienna"), "the zone the held-back cart carries");
    let consent = facts.consent.expect("the consent the held-back cart carries");
    assert_eq!((consent.email, consent.sms, consent.at), (true, false, now - 5_000));
    let key =
        cartback::store::history::HistoryKey { customer_id: Some("42"), email: None, phone: None, currency: "EUR" };
    let facts = tx.customer_facts(common::SHOP, Some(key), Some((&account, cart))).await.expect("facts");
    assert_eq!(
        facts,
        cartback::store::history::CustomerFacts { orders: Some((0, 0)), zone: None, consent: None },
        "own cart left out"
    );

    let job = RecoveryJob { cart, seq: 99, due_ms: None };
    push(&mut tx, job, Utc::now() + chrono::Duration::seconds(30)).await.expect("push");
    // Any other statement writes what was held back first.
    let read = tx.cart_by_id(cart).await.expect("read").expect("cart");
    assert_eq!(read.first_name.as_deref(), Some("Held"));
    row.first_name = Some("Last".into());
    tx.save_cart(&row).await.expect("save");
    tx.commit().await.expect("commit");

    assert_eq!(t.text("SELECT first_name FROM carts WHERE external_id = 'c_1'").await, "Last");
    assert_eq!(t.text("SELECT person FROM identities WHERE identity = 'email:held@example.com'").await, "id:42");
    assert_eq!(t.scalar(jobs_sql).await, jobs_before + 1, "the job was queued once");
    if backend == Backend::Sqlite {
        // The held-back job is the row apalis-sqlite's own push writes for the event's job.
        // (The event's job waits in the far-future queue; this one is due within the horizon.)
        let pushed = "SELECT status || ' ' || attempts || ' ' || max_attempts || ' ' || priority || ' ' || metadata
                      || ' ' || length(id) || ' ' || typeof(job) FROM Jobs ORDER BY rowid";
        let rows: Vec<String> = match crate::common::raw(&t.app.db) {
            crate::common::Raw::Sqlite(p) => sqlx::query_scalar(pushed).fetch_all(p).await.expect("jobs"),
            crate::common::Raw::Postgres(_) => unreachable!(),
        };
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], rows[1], "same columns as apalis writes");
    }
    t.shutdown().await;
}

on_both!(
    timeline_lines_are_written_with_the_commit,
    grouped_turns_commit_together,
    a_failed_turn_rolls_back_its_group,
    a_claim_checks_the_suppression_list,
    a_claim_carries_the_held_back_writes,
    advancing_an_unread_cart_is_guarded,
    held_back_writes_read_as_written,
);

/// A migrated SQLite database of its own (removed with the directory).
async fn fresh_sqlite() -> (tempfile::TempDir, cartback::store::Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("cartback.db").display());
    let db = cartback::store::Db::connect(&url).await.expect("connect");
    cartback::queue::migrate(&db).await.expect("migrate");
    (dir, db)
}

/// A customer's past orders are found through the indexes on shop account, email and phone,
/// not by reading every order of the shop (each event asks; a shop may import millions).
#[tokio::test]
async fn sqlite_order_history_reads_its_indexes() {
    let (_dir, db) = fresh_sqlite().await;
    let pool = db.as_sqlite().expect("a SQLite database");
    // A shop with some history, and the planner's statistics about it.
    sqlx::query(
        "WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < 5000)
         INSERT INTO customer_orders (shop, order_id, customer_id, email, phone, currency, total_minor, placed_at, source)
         SELECT 's', 'o' || x, 'c' || x, 'e' || x || '@x.io', '+4930' || x, 'EUR', 100, 0, 'import' FROM k",
    )
    .execute(pool)
    .await
    .expect("orders");
    sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
    let mut tx = db.begin().await.expect("begin");
    let plan = tx.explain_history_plan().await.expect("plan").join("\n");
    tx.commit().await.expect("commit");
    for index in ["customer_orders_customer (shop=? AND customer_id=?)", "customer_orders_email (shop=? AND email=?)"] {
        assert!(plan.contains(index), "history should search {index}:\n{plan}");
    }
    assert!(plan.contains("customer_orders_phone (shop=? AND phone=?)"), "and by phone:\n{plan}");
    db.close().await;
}

/// SQLite keeps statement plans whatever values are bound (a build with `ENABLE_QPSG`, or
/// statements are prepared again on most executions once statistics exist), and the worker's
/// `optimize` gives a database that never had statistics some: the planner's counts.
#[tokio::test]
async fn sqlite_keeps_plans_and_statistics() {
    let (_dir, db) = fresh_sqlite().await;
    let pool = db.as_sqlite().expect("a SQLite database");
    let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options").fetch_all(pool).await.expect("options");
    assert!(options.iter().any(|o| o == "ENABLE_QPSG"), "built without the stability guarantee: {options:?}");
    sqlx::query(
        "WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < 2000)
         INSERT INTO carts (public_id, shop, external_id, status, last_activity_at, created_at, updated_at)
         SELECT 'p' || x, 's', 'c' || x, 'active', 0, 0, 0 FROM k",
    )
    .execute(pool)
    .await
    .expect("carts");
    let stats = "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'";
    let before: i64 = sqlx::query_scalar(stats).fetch_one(pool).await.expect("stats");
    assert_eq!(before, 0, "a new database has no statistics");
    db.optimize(true).await.expect("optimize");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'carts'")
        .fetch_one(pool)
        .await
        .expect("carts' statistics");
    assert!(rows > 0, "optimize analysed carts");
    db.optimize(false).await.expect("the periodic optimize");
    db.close().await;
}
