//! Cartback's speed on this machine, each figure beside its baseline from the same run:
//!
//! 1. ingest: signed events over real HTTP from concurrent clients (durable before `202`),
//!    p50/p99 latency; baseline: raw apalis pushes, one transaction each, as concurrent;
//! 2. dispatch to the file outbox; baseline: bare apalis no-op jobs, same backend and settings;
//! 3. dispatch over SMTP into postfix's `smtp-sink`; baseline: `smtp-source` into that sink;
//! 4. lateness: sends falling due over a window, (sent − due) p50/p99/max, and how many early.
//!
//! 5. scale: ingest and file dispatch with `CARTBACK_BENCH_PENDING` (default 1,000,000) live
//!    carts pending, the due-job query plan and time (SQLite), and the process's peak RSS.
//!
//! Ingest, file dispatch, scale and lateness run on both databases; on PostgreSQL file
//! dispatch also runs in one and in two separate `cartback worker` processes.
//!
//! `cargo bench --bench worker` (release build). `CARTBACK_BENCH_JOBS` sets the batch size
//! (default 10,000), `CARTBACK_BENCH_CLIENTS` the HTTP clients (default 32),
//! `CARTBACK_BENCH_LATENESS_JOBS` (default 100,000) and `CARTBACK_BENCH_LATENESS_SECS` (windows
//! in seconds, comma-separated, default `300,600`) shape the lateness part,
//! `CARTBACK_BENCH_ONLY=ingest,file,smtp,scale,lateness` runs some parts, and `sqlite` or
//! `postgres` in it limits ingest and file dispatch to that database (`file,sqlite`: file
//! dispatch on SQLite only), `CARTBACK_TEST_POSTGRES_URL` names another server, `RUST_LOG` (for example
//! `sqlx::query=debug`: every statement and its time) logs to stderr. Needs postfix
//! (`smtp-sink`, `smtp-source`). The outboxes stay until the bench ends (see `outbox_dir`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use cartback::app::App;
use cartback::config::{Secret, Settings, ShopSettings};
use cartback::domain::WebhookId;
use cartback::store::Db;
use chrono::Utc;
use futures::StreamExt;
use serde_json::json;
use support::{Sink, smtp_source};
use tokio::sync::watch;

mod support;

const CAMPAIGN: &str = "name: bench\nabandon_after: 1s\nsteps:\n  - id: reminder\n    after: 1s\n    channels: [email]\n    template: reminder\n";

fn jobs() -> usize {
    env_or("CARTBACK_BENCH_JOBS", 10_000)
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const SECRET: &str = "bench-secret-of-some-length";

fn event(i: usize, occurred: chrono::DateTime<Utc>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": "cart.updated", "occurred_at": occurred.to_rfc3339(),
        "cart": {"id": format!("c{i}"), "currency": "EUR", "total": "50.00",
                 "items": [{"title": "Thing", "quantity": 1, "price": "50.00"}], "restore_url": "https://s.example/r"},
        "customer": {"email": format!("c{i}@example.com"), "accepts_email_marketing": true}
    }))
    .expect("json")
}

/// A Cartback app on a fresh database in `dir` (one shop `b`, the one-step campaign).
async fn bench_app(backend: &str, dir: &std::path::Path, tweak: impl FnOnce(&mut Settings)) -> (Arc<App>, String) {
    let url = fresh_db(backend, dir, "cb").await;
    std::fs::create_dir_all(dir.join("campaigns")).expect("dir");
    std::fs::write(dir.join("campaigns/bench.yaml"), CAMPAIGN).expect("campaign");
    let mut s = Settings {
        database_url: Secret::new(url.clone()),
        campaigns_dir: dir.join("campaigns"),
        templates_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/templates").into(),
        ..Settings::default()
    };
    s.email.outbox_dir = outbox_dir();
    s.worker.poll_interval = Duration::from_millis(50);
    s.shops.insert("b".into(), ShopSettings::new("Bench", Secret::new(SECRET), "UTC", "en", "EUR", "bench"));
    tweak(&mut s);
    (App::build(s).await.expect("app"), url)
}

/// Every part's outbox, in one directory removed when the bench ends. On an ext4 file system
/// without a journal (this machine's), creating a file costs more for some minutes after many
/// files were deleted nearby (the kernel's `recently_deleted` check skips freshly freed
/// inodes): removing one part's 10,000 messages would slow the next part's outbox.
fn outbox_dir() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    outbox_root().join(format!("part{i}"))
}

fn outbox_root() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("cartback-bench-outbox-{}", std::process::id()))
}

/// Jobs the service's worker takes from the queue and holds at once: the baseline's batch
/// and concurrency.
fn in_hand() -> usize {
    Settings::default().worker.in_hand()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Ingest over HTTP: `clients` concurrent clients post `n` signed events; returns
/// (events/s, p50 ms, p99 ms).
async fn ingest_http(backend: &str, n: usize, clients: usize, pending: usize) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (app, url) = bench_app(backend, dir.path(), |_| {}).await;
    if pending > 0 {
        backlog(&app.db, pending).await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, mut rx) = watch::channel(false);
    let server = tokio::spawn(cartback::http::launch(listener, app.clone(), async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    let key = cartback::ingest::signature::secret_key(SECRET).expect("key");
    let client = reqwest::Client::builder().pool_max_idle_per_host(clients).build().expect("client");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, key, base, next) = (client.clone(), key.clone(), base.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return lat;
                }
                let body = event(i, Utc::now());
                let id = format!("m{i}");
                let ts = Utc::now().timestamp();
                let sig = cartback::ingest::signature::sign(&key, &id, ts, &body);
                let t0 = Instant::now();
                let r = client
                    .post(format!("{base}/v1/shops/b/events"))
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", sig)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("post");
                assert_eq!(r.status(), 202, "accepted");
                lat.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut lat = Vec::with_capacity(n);
    for t in tasks {
        lat.extend(t.await.expect("client"));
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let stored = count(&app.db, "SELECT COUNT(*) FROM webhook_events").await;
    assert_eq!(stored, (n + pending) as i64, "every 202 is stored");
    let _ = stop.send(true);
    let _ = server.await;
    app.db.close().await;
    drop_db(&url).await;
    (rate, percentile(&lat, 0.5), percentile(&lat, 0.99))
}

/// `n` live carts waiting a day for their next step, as a shop with a big backlog has them:
/// the cart, its customer's identity, the webhook delivery that made it and its pending job.
/// Written straight into the tables (the service would take minutes to take them in).
async fn backlog(db: &Db, n: usize) {
    let now_ms = Utc::now().timestamp_millis();
    let later_s = Utc::now().timestamp() + 86_400;
    let statements = [
        format!(
            "WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < {n})
             INSERT INTO carts (public_id, shop, external_id, status, currency, total_minor, customer_ref, email,
                                accepts_email, timezone, last_activity_at, campaign, next_run_at, seq, created_at, updated_at)
             SELECT 'bl' || x, 'b', 'backlog' || x, 'active', 'EUR', 5000, 'email:bl' || x || '@example.com',
                    'bl' || x || '@example.com', TRUE, 'UTC', {now_ms}, NULL, {later_ms}, 1, {now_ms}, {now_ms} FROM k",
            later_ms = later_s * 1000
        ),
        "INSERT INTO identities (shop, identity, person) SELECT shop, customer_ref, customer_ref FROM carts WHERE public_id LIKE 'bl%'".to_owned(),
        format!(
            "INSERT INTO webhook_events (shop, webhook_id, kind, occurred_at, received_at, cart_id, outcome, body)
             SELECT 'b', 'bl' || id, 'cart.updated', {now_ms}, {now_ms}, id, 'active: watching for inactivity', '{{}}'
             FROM carts WHERE public_id LIKE 'bl%'"
        ),
    ];
    let jobs = format!(
        "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, idempotency_key)
         SELECT CAST('{{\"cart\":' || id || ',\"seq\":1}}' AS BLOB), 'bl' || id, '{later_queue}', 'Pending', 0, 5,
                {later_s}, 0, id || ':1' FROM carts WHERE public_id LIKE 'bl%'",
        // Due tomorrow: where the service files such jobs (queue::LATER on SQLite).
        later_queue = cartback::queue::LATER
    );
    match raw(db) {
        Raw::Sqlite(pool) => {
            for sql in statements.iter().chain(std::iter::once(&jobs)) {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .execute(pool)
                    .await
                    .unwrap_or_else(|e| panic!("backlog: {e}\n{sql}"));
            }
            sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
        }
        Raw::Postgres(pool) => {
            // The same rows; PostgreSQL keeps far jobs in the polled queue (its due-job
            // lookup searches an index range on run_at), and job payloads are bytes.
            let jobs = format!(
                "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, idempotency_key)
                 SELECT convert_to('{{\"cart\":' || id || ',\"seq\":1}}', 'UTF8'), 'bl' || id, '{queue}', 'Pending', 0, 5,
                        to_timestamp({later_s}), 0, id || ':1' FROM carts WHERE public_id LIKE 'bl%'",
                queue = cartback::queue::QUEUE
            );
            let carts = statements[0].replace(
                &format!("WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < {n})"),
                &format!("WITH k(x) AS (SELECT generate_series(1, {n}))"),
            );
            for sql in [&carts, &statements[1], &statements[2], &jobs] {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .execute(pool)
                    .await
                    .unwrap_or_else(|e| panic!("backlog: {e}\n{sql}"));
            }
            sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
        }
    }
}

/// apalis-sqlite's due-job lookup (`queries/backend/fetch_next.sql`, its first branch).
const DUE_JOBS: &str = "SELECT ROWID, priority, run_at, id FROM Jobs
     WHERE job_type = $1 AND status = 'Pending' AND lock_by IS NULL AND (run_at IS NULL OR run_at <= strftime('%s', 'now'))
     ORDER BY priority DESC, run_at ASC, id ASC LIMIT 512";

/// The plan of the due-job lookup on the backlog (it must search an index, not scan the
/// table), and its time in ms once nothing is due: on the queue the workers poll, and on the
/// queue name the backlog waits under (what every look would cost if the backlog waited in
/// the polled queue: the `run_at` condition cannot bound an index range).
async fn fetch_plan(db: &Db) -> (String, f64, f64) {
    let Some(p) = db.as_sqlite() else { return (String::new(), f64::NAN, f64::NAN) };
    let rows: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {DUE_JOBS}")))
            .bind(cartback::queue::QUEUE)
            .fetch_all(p)
            .await
            .expect("explain");
    let plan = rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; ");
    let time = |queue: &'static str| async move {
        let started = Instant::now();
        for _ in 0..5 {
            sqlx::query(DUE_JOBS).bind(queue).fetch_all(p).await.expect("due jobs");
        }
        started.elapsed().as_secs_f64() * 1000.0 / 5.0
    };
    (plan, time(cartback::queue::QUEUE).await, time(cartback::queue::LATER).await)
}

/// Peak resident memory of this process (server, worker and bench clients together), MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU time this process has used so far (user + system), in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    f.get(11).zip(f.get(12)).map_or(f64::NAN, |(u, s)| (u + s) / 100.0)
}

/// Raw apalis pushes, one task per transaction, from `clients` concurrent tasks.
async fn apalis_push(backend: &str, n: usize, clients: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_db(backend, dir.path(), "push").await;
    let db = Db::connect(&url).await.expect("connect");
    cartback::queue::migrate(&db).await.expect("migrate");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (db, next) = (db.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let task = TaskBuilder::new(serde_json::to_vec(&i).expect("json")).max_attempts(5).build();
                match raw(&db) {
                    Raw::Sqlite(pool) => {
                        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
                        apalis_sqlite::queries::push_tasks(&mut *tx, "raw", &[task]).await.expect("push");
                        tx.commit().await.expect("commit");
                    }
                    Raw::Postgres(pool) => {
                        let mut tx = pool.begin().await.expect("begin");
                        apalis_postgres::queries::push_tasks(&mut *tx, "raw", vec![task]).await.expect("push");
                        tx.commit().await.expect("commit");
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("pusher");
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    db.close().await;
    drop_db(&url).await;
    rate
}

async fn fresh_db(backend: &str, dir: &std::path::Path, tag: &str) -> String {
    if backend == "sqlite" {
        return format!("sqlite://{}", dir.join(format!("{tag}.db")).display());
    }
    let admin = std::env::var("CARTBACK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("cartback_bench_{tag}_{}", &cartback::store::public_id()[..8]);
    let pool = sqlx::PgPool::connect(&admin).await.expect("PostgreSQL reachable for the benchmark");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.expect("create db");
    pool.close().await;
    format!("{}/{name}", admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b))
}

async fn drop_db(url: &str) {
    if let Some(name) = url.strip_prefix("postgres://").and_then(|u| u.rsplit('/').next()) {
        let admin = std::env::var("CARTBACK_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(&pool)
                .await;
        }
    }
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    match raw(db) {
        Raw::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await.expect("count"),
        Raw::Postgres(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await.expect("count"),
    }
}

/// Messages recorded as sent (the bench's progress and end condition).
const DONE: &str = "SELECT COUNT(*) FROM sends WHERE status = 'sent'";

/// Cartback's recovery job end to end: re-read cart, enter campaign, claim, render, deliver,
/// record, complete. `smtp`: deliver to that relay instead of the file outbox.
async fn dispatch(backend: &str, n: usize, smtp: Option<String>, pending: usize) -> (f64, f64, (String, f64, f64)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (app, url) = bench_app(backend, dir.path(), |s| {
        if let Some(url) = smtp {
            s.email.transport = cartback::config::EmailTransportKind::Smtp;
            s.email.smtp_url = Some(Secret::new(url));
            s.worker.concurrency = 64;
        }
    })
    .await;
    if pending > 0 {
        backlog(&app.db, pending).await;
    }
    accept_due(&app, n, Utc::now() - chrono::Duration::hours(1), Duration::ZERO).await;
    let (stop, rx) = watch::channel(false);
    let started = Instant::now();
    let cpu0 = cpu_seconds();
    let worker = tokio::spawn(cartback::worker::run_worker(app.clone(), rx));
    // Progress is read from `sends` (this run's messages only), not by scanning the carts: with
    // a million carts pending that scan takes ~60 ms, and it would hold the database's one
    // connection while the worker waits. A send's result and its cart's completion commit together.
    while count(&app.db, DONE).await < n as i64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let cpu_ms = (cpu_seconds() - cpu0) * 1000.0 / n as f64;
    assert_eq!(
        count(&app.db, "SELECT COUNT(*) FROM carts WHERE status = 'completed'").await,
        n as i64,
        "all completed"
    );
    let plan = if pending > 0 { fetch_plan(&app.db).await } else { (String::new(), f64::NAN, f64::NAN) };
    let _ = stop.send(true);
    let _ = worker.await;
    app.db.close().await;
    drop_db(&url).await;
    (rate, cpu_ms, plan)
}

/// File dispatch on PostgreSQL by `procs` separate `cartback worker` processes (the release
/// binary) sharing one queue: messages per second from their start until every message is
/// recorded sent. Run for 1 and 2 processes alike, so the two figures compare.
async fn dispatch_processes(n: usize, procs: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let (app, url) = bench_app("postgres", dir.path(), |_| {}).await;
    accept_due(&app, n, Utc::now() - chrono::Duration::hours(1), Duration::ZERO).await;
    let config = dir.path().join("cartback.toml");
    let toml = format!(
        "database_url = \"{url}\"\ncampaigns_dir = \"{}\"\ntemplates_dir = \"{}\"\n[email]\noutbox_dir = \"{}\"\n\
         [worker]\npoll_interval = \"50ms\"\n[shops.b]\nname = \"Bench\"\nwebhook_secret = \"{SECRET}\"\n\
         timezone = \"UTC\"\nlocale = \"en\"\ncurrency = \"EUR\"\ncampaign = \"bench\"\n",
        dir.path().join("campaigns").display(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
        outbox_dir().display()
    );
    std::fs::write(&config, toml).expect("config");
    let started = Instant::now();
    let mut children: Vec<std::process::Child> = (0..procs)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_cartback"))
                .arg("--config")
                .arg(&config)
                .arg("worker")
                .env("RUST_LOG", "error")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("start a cartback worker")
        })
        .collect();
    while count(&app.db, DONE).await < n as i64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    app.db.close().await;
    drop_db(&url).await;
    rate
}

/// Accept `n` events in-process; cart `i` was last active at `first + i * spacing`.
async fn accept_due(app: &App, n: usize, first: chrono::DateTime<Utc>, spacing: Duration) {
    let shop = app.shop("b").expect("shop").clone();
    let ingest = cartback::ingest::Ingest::start(app);
    let spacing = chrono::Duration::from_std(spacing).expect("spacing");
    let mut pending = futures::stream::iter(0..n)
        .map(|i| {
            let (shop, ingest) = (shop.clone(), ingest.clone());
            async move {
                let body = event(i, first + spacing * i32::try_from(i).expect("i"));
                let ev = cartback::ingest::generic::parse(&body).expect("parse");
                let id = WebhookId::parse(&format!("m{i}")).expect("id");
                ingest.accept(&shop, &id, &ev, &body).await.expect("accept");
            }
        })
        .buffer_unordered(64);
    while pending.next().await.is_some() {}
}

/// Lateness: `n` sends falling due evenly over `window` while the worker runs; returns
/// (p50 s, p99 s, max s, early count).
async fn lateness(backend: &str, n: usize, window: Duration) -> (f64, f64, f64, i64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (app, url) = bench_app(backend, dir.path(), |_| {}).await;
    // The campaign sends 1 s after abandonment, abandonment is 1 s after the last activity:
    // a cart last active at t is due at t + 2 s. The window starts once every event has been
    // accepted (about 1 ms each, with room to spare) and the worker has started.
    let lead = 10 + i64::try_from(n / 1000).expect("n");
    let first = Utc::now() + chrono::Duration::seconds(lead) - chrono::Duration::seconds(2);
    accept_due(&app, n, first, window / u32::try_from(n).expect("n")).await;
    let (stop, rx) = watch::channel(false);
    let worker = tokio::spawn(cartback::worker::run_worker(app.clone(), rx));
    while count(&app.db, DONE).await < n as i64 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop.send(true);
    let _ = worker.await;
    let mut late: Vec<f64> = match raw(&app.db) {
        Raw::Sqlite(p) => sqlx::query_scalar::<_, i64>("SELECT completed_at - due_at FROM sends").fetch_all(p).await,
        Raw::Postgres(p) => sqlx::query_scalar::<_, i64>("SELECT completed_at - due_at FROM sends").fetch_all(p).await,
    }
    .expect("lateness")
    .into_iter()
    .map(|ms| ms as f64 / 1000.0)
    .collect();
    late.sort_by(f64::total_cmp);
    let early = late.iter().filter(|l| **l < 0.0).count() as i64;
    app.db.close().await;
    drop_db(&url).await;
    (percentile(&late, 0.5), percentile(&late, 0.99), late.last().copied().unwrap_or(f64::NAN), early)
}

async fn noop(_: u64) -> Result<(), BoxDynError> {
    Ok(())
}

/// Bare apalis: the same backend settings, a handler that does nothing.
async fn bare_apalis(backend: &str, n: usize, keep_lidx: bool) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_db(backend, dir.path(), "raw").await;
    let db = Db::connect(&url).await.expect("connect");
    cartback::queue::migrate(&db).await.expect("migrate");
    let tasks: Vec<_> = (0..n as u64)
        .map(|i| TaskBuilder::new(serde_json::to_vec(&i).expect("json")).max_attempts(5).build())
        .collect();
    let (stop, mut rx) = watch::channel(false);
    let signal = async move {
        let _ = rx.wait_for(|s| *s).await;
        Ok::<(), std::io::Error>(())
    };
    let rate = match raw(&db) {
        Raw::Sqlite(pool) => {
            if keep_lidx {
                sqlx::query("CREATE INDEX IF NOT EXISTS LIdx ON Jobs(lock_by)").execute(pool).await.expect("LIdx");
            }
            let mut conn = pool.acquire().await.expect("conn");
            apalis_sqlite::queries::push_tasks(&mut *conn, "raw", &tasks).await.expect("push");
            drop(conn);
            let cfg = apalis_sqlite::Config::default().queue("raw").batch_size(in_hand());
            let backend =
                SqliteStorage::<u64>::new(pool).with_config(cfg).poll_with_interval(Duration::from_millis(50));
            let started = Instant::now();
            let w = tokio::spawn(
                WorkerBuilder::new("raw").backend(backend).concurrency(in_hand()).build(noop).run_until(signal),
            );
            while count(&db, "SELECT COUNT(*) FROM Jobs WHERE status = 'Done'").await < n as i64 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let r = n as f64 / started.elapsed().as_secs_f64();
            let _ = stop.send(true);
            let _ = w.await;
            r
        }
        Raw::Postgres(pool) => {
            let mut conn = pool.acquire().await.expect("conn");
            apalis_postgres::queries::push_tasks(&mut *conn, "raw", tasks).await.expect("push");
            drop(conn);
            let cfg = apalis_postgres::Config::default().queue("raw").batch_size(in_hand());
            let backend =
                PostgresStorage::<u64>::new(pool).with_config(cfg).poll_with_interval(Duration::from_millis(50));
            let started = Instant::now();
            let w = tokio::spawn(
                WorkerBuilder::new("raw").backend(backend).concurrency(in_hand()).build(noop).run_until(signal),
            );
            while count(&db, "SELECT COUNT(*) FROM apalis.jobs WHERE status = 'Done'").await < n as i64 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let r = n as f64 / started.elapsed().as_secs_f64();
            let _ = stop.send(true);
            let _ = w.await;
            r
        }
    };
    db.close().await;
    drop_db(&url).await;
    rate
}

/// Statements counted while [`COUNTING`] is on (sqlx's statement log, `sqlx::query`: every
/// statement the process sends, the queue library's included). A statement is one round trip
/// or more, whatever the machine: the figure a change can be judged by anywhere.
static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static COUNTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Counts sqlx's statement events, and asks for them only while counting (sqlx formats each
/// statement's summary only when its event is enabled).
struct CountStatements;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountStatements {
    fn register_callsite(&self, m: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        if m.target() == "sqlx::query" {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
    fn enabled(&self, m: &tracing::Metadata<'_>, _: tracing_subscriber::layer::Context<'_, S>) -> bool {
        m.target() == "sqlx::query" && COUNTING.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The statements `run` sends.
async fn counted<T>(run: impl std::future::Future<Output = T>) -> (T, u64) {
    use std::sync::atomic::Ordering;
    let before = STATEMENTS.load(Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let out = run.await;
    COUNTING.store(false, Ordering::Relaxed);
    (out, STATEMENTS.load(Ordering::Relaxed) - before)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // RUST_LOG=sqlx::query=debug logs every statement with its elapsed time (to stderr);
    // without it, statements are counted (the "statements per …" rows).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    } else {
        use tracing_subscriber::layer::SubscriberExt;
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(CountStatements));
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let n = jobs();
    rt.block_on(parts(n));
    // After every measurement: see `outbox_dir`.
    let _ = std::fs::remove_dir_all(outbox_root());
}

async fn parts(n: usize) {
    let clients = env_or("CARTBACK_BENCH_CLIENTS", 32);
    println!(
        "cartback bench: {n} events/jobs per figure, {clients} HTTP clients, {} cores",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    println!("{:<10} {:<58} {:>12} {:>24}", "backend", "what", "per second", "");
    let row = |backend: &str, what: &str, rate: f64, extra: String| {
        println!("{backend:<10} {what:<58} {rate:>12.0} {extra:>24}");
    };
    let statements_row = |backend: &str, what: &str, statements: u64, per: usize| {
        println!(
            "{backend:<10} {what:<58} {:>12.2} {:>24}",
            statements as f64 / per as f64,
            format!("{statements} in all")
        );
    };
    // CARTBACK_BENCH_ONLY: see the header comment.
    let only = std::env::var("CARTBACK_BENCH_ONLY").unwrap_or_default();
    // Part names pick parts and backend names pick backends; either alone means all of the other.
    const PARTS: [&str; 5] = ["ingest", "file", "smtp", "scale", "lateness"];
    let any_part = only.split(',').any(|p| PARTS.contains(&p));
    let run = |part: &str| !any_part || only.split(',').any(|p| p == part);
    let backends: Vec<&str> = ["sqlite", "postgres"]
        .into_iter()
        .filter(|b| !only.contains("sqlite") && !only.contains("postgres") || only.contains(b))
        .collect();
    // SMTP is measured on SQLite only.
    let sqlite = backends.contains(&"sqlite");
    for backend in backends.iter().copied() {
        if run("ingest") {
            let push = apalis_push(backend, n, clients).await;
            row(backend, "raw apalis push, 1 per transaction (baseline)", push, String::new());
            let (rate, p50, p99) = ingest_http(backend, n, clients, 0).await;
            row(
                backend,
                "signed events over HTTP, durable before 202",
                rate,
                format!("p50 {p50:.1} ms, p99 {p99:.1} ms"),
            );
            let m = (n / 5).max(100);
            let (_, statements) = counted(ingest_http(backend, m, clients, 0)).await;
            statements_row(backend, &format!("statements per event ({m} events, sqlx's log)"), statements, m);
        }
        if run("file") {
            let raw = bare_apalis(backend, n, false).await;
            row(backend, "bare apalis, no-op jobs (baseline)", raw, String::new());
            let (file, cpu, _) = dispatch(backend, n, None, 0).await;
            row(backend, "due steps → rendered .eml in the file outbox", file, format!("{cpu:.2} ms CPU each"));
            let m = (n / 5).max(100);
            let (_, statements) = counted(dispatch(backend, m, None, 0)).await;
            statements_row(backend, &format!("statements per message ({m} messages, sqlx's log)"), statements, m);
            if backend == "postgres" {
                // Separate processes, as operators scale out; on one machine they share its cores
                // with PostgreSQL, so this shows what the CPUs allow, not what machines would.
                let one = dispatch_processes(n, 1).await;
                let two = dispatch_processes(n, 2).await;
                row(backend, "due steps → file outbox, 1 `cartback worker` process", one, String::new());
                row(
                    backend,
                    "due steps → file outbox, 2 `cartback worker` processes",
                    two,
                    format!("{:.2}× one", two / one),
                );
            }
        }
    }
    if sqlite && run("smtp") {
        let sink = Sink::start();
        let source = smtp_source(sink.port, n, 20);
        row("-", "smtp-source, 20 sessions, into smtp-sink (baseline)", source, String::new());
        let (smtp, cpu, _) = dispatch("sqlite", n, Some(format!("smtp://127.0.0.1:{}", sink.port)), 0).await;
        row("sqlite", "due steps → emails into smtp-sink", smtp, format!("{cpu:.2} ms CPU each"));
    }
    for backend in backends.iter().copied().filter(|_| run("scale")) {
        let pending = env_or("CARTBACK_BENCH_PENDING", 1_000_000);
        let (rate, p50, p99) = ingest_http(backend, n, clients, pending).await;
        row(
            backend,
            &format!("{pending} carts pending: events over HTTP"),
            rate,
            format!("p50 {p50:.1} ms, p99 {p99:.1} ms"),
        );
        let (file, cpu, plan) = dispatch(backend, n, None, pending).await;
        row(
            backend,
            &format!("{pending} carts pending: due steps → file outbox"),
            file,
            format!("{cpu:.2} ms CPU each"),
        );
        if backend == "sqlite" {
            let (plan, polled, waiting) = plan;
            println!("sqlite     due-job query plan with the backlog: {plan}");
            println!(
                "sqlite     one look for due jobs, none due: {polled:.2} ms; had the backlog waited in the polled queue: {waiting:.1} ms"
            );
        }
        println!("{backend:<10} peak RSS of the bench process (server, worker, clients): {:.0} MiB", peak_rss_mib());
    }
    // One or more windows, seconds, comma-separated: the same sends due faster or slower.
    let windows = std::env::var("CARTBACK_BENCH_LATENESS_SECS").unwrap_or_else(|_| "300,600".into());
    let due = env_or("CARTBACK_BENCH_LATENESS_JOBS", 100_000);
    for backend in backends.iter().copied().filter(|_| run("lateness")) {
        for secs in windows.split(',').filter_map(|w| w.trim().parse::<u64>().ok()) {
            let (p50, p99, max, early) = lateness(backend, due, Duration::from_secs(secs)).await;
            println!(
                "{backend:<10} lateness, {due} sends due over {secs}s ({:.0}/s): p50 {p50:.2} s, p99 {p99:.2} s, max {max:.2} s, early {early}",
                due as f64 / secs as f64
            );
        }
    }
}

/// The pool behind a [`Db`], for the baselines that talk to apalis directly.
enum Raw<'a> {
    Sqlite(&'a sqlx::SqlitePool),
    Postgres(&'a sqlx::PgPool),
}

fn raw(db: &Db) -> Raw<'_> {
    match (db.as_sqlite(), db.as_postgres()) {
        (Some(p), _) => Raw::Sqlite(p),
        (None, Some(p)) => Raw::Postgres(p),
        (None, None) => unreachable!("a database is SQLite or PostgreSQL"),
    }
}
