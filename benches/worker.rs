//! Worker throughput on 10,000 due sends, SQLite and PostgreSQL, beside bare apalis.
//!
//! `cargo bench --bench worker` (release build). Prints one table; set
//! `CARTBACK_BENCH_JOBS` to change the batch size and `CARTBACK_TEST_POSTGRES_URL` to point
//! at another server.

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
use serde_json::json;
use tokio::sync::watch;

const CAMPAIGN: &str = "name: bench\nabandon_after: 1s\nsteps:\n  - id: reminder\n    after: 1s\n    channels: [email]\n    template: reminder\n";

fn jobs() -> usize {
    std::env::var("CARTBACK_BENCH_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
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
    match db {
        Db::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await.expect("count"),
        Db::Postgres(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await.expect("count"),
    }
}

/// Cartback's recovery job end to end: re-read cart, enter campaign, claim, render, write `.eml`, record, complete.
async fn cartback_sends(backend: &str, n: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_db(backend, dir.path(), "cb").await;
    std::fs::create_dir_all(dir.path().join("campaigns")).expect("dir");
    std::fs::write(dir.path().join("campaigns/bench.yaml"), CAMPAIGN).expect("campaign");
    let mut s = Settings {
        database_url: Secret::new(url.clone()),
        campaigns_dir: dir.path().join("campaigns"),
        templates_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/templates").into(),
        ..Settings::default()
    };
    s.email.outbox_dir = dir.path().join("outbox");
    s.worker.poll_interval = Duration::from_millis(50);
    s.worker.concurrency = 16;
    s.shops.insert(
        "b".into(),
        ShopSettings {
            name: "Bench".into(),
            webhook_secret: Secret::new("bench-secret-of-some-length"),
            timezone: "UTC".into(),
            locale: "en".into(),
            currency: "EUR".into(),
            campaign: "bench".into(),
            url: None,
            from: None,
            reply_to: None,
            unsubscribe_mailto: None,
            events_url: None,
            restore_code_param: None,
            transactional_first_reminder: false,
            sms_opt_out_line: None,
        },
    );
    let app = App::build(s).await.expect("app");
    let shop = app.shop("b").expect("shop").clone();
    let past = Utc::now() - chrono::Duration::hours(1);
    let started = Instant::now();
    for i in 0..n {
        let body = serde_json::to_vec(&json!({
            "type": "cart.updated", "occurred_at": past.to_rfc3339(),
            "cart": {"id": format!("c{i}"), "currency": "EUR", "total": "50.00",
                     "items": [{"title": "Thing", "quantity": 1, "price": "50.00"}], "restore_url": "https://s.example/r"},
            "customer": {"email": format!("c{i}@example.com"), "accepts_email_marketing": true}
        }))
        .expect("json");
        let ev = cartback::ingest::generic::parse(&body).expect("parse");
        let id = WebhookId::parse(&format!("m{i}")).expect("id");
        cartback::scheduler::accept::accept(&app, &shop, &id, &ev, &body).await.expect("accept");
    }
    let ingest_rate = n as f64 / started.elapsed().as_secs_f64();
    let (stop, rx) = watch::channel(false);
    let started = Instant::now();
    let worker = tokio::spawn(cartback::scheduler::run_worker(app.clone(), rx));
    while count(&app.db, "SELECT COUNT(*) FROM carts WHERE status = 'completed'").await < n as i64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = worker.await;
    app.db.close().await;
    drop_db(&url).await;
    (ingest_rate, rate)
}

async fn noop(_: u64) -> Result<(), BoxDynError> {
    Ok(())
}

/// Bare apalis: the same backend settings, a handler that does nothing.
async fn bare_apalis(backend: &str, n: usize, keep_lidx: bool) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_db(backend, dir.path(), "raw").await;
    let db = Db::connect(&url).await.expect("connect");
    db.migrate().await.expect("migrate");
    let tasks: Vec<_> = (0..n as u64)
        .map(|i| TaskBuilder::new(serde_json::to_vec(&i).expect("json")).max_attempts(5).build())
        .collect();
    let (stop, mut rx) = watch::channel(false);
    let signal = async move {
        let _ = rx.wait_for(|s| *s).await;
        Ok::<(), std::io::Error>(())
    };
    let rate = match &db {
        Db::Sqlite(pool) => {
            if keep_lidx {
                sqlx::query("CREATE INDEX IF NOT EXISTS LIdx ON Jobs(lock_by)").execute(pool).await.expect("LIdx");
            }
            let mut conn = pool.acquire().await.expect("conn");
            apalis_sqlite::queries::push_tasks(&mut *conn, "raw", &tasks).await.expect("push");
            drop(conn);
            let cfg = apalis_sqlite::Config::default().queue("raw").batch_size(16);
            let backend =
                SqliteStorage::<u64>::new(pool).with_config(cfg).poll_with_interval(Duration::from_millis(50));
            let started = Instant::now();
            let w =
                tokio::spawn(WorkerBuilder::new("raw").backend(backend).concurrency(16).build(noop).run_until(signal));
            while count(&db, "SELECT COUNT(*) FROM Jobs WHERE status = 'Done'").await < n as i64 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let r = n as f64 / started.elapsed().as_secs_f64();
            let _ = stop.send(true);
            let _ = w.await;
            r
        }
        Db::Postgres(pool) => {
            let mut conn = pool.acquire().await.expect("conn");
            apalis_postgres::queries::push_tasks(&mut *conn, "raw", tasks).await.expect("push");
            drop(conn);
            let cfg = apalis_postgres::Config::default().queue("raw").batch_size(16);
            let backend =
                PostgresStorage::<u64>::new(pool).with_config(cfg).poll_with_interval(Duration::from_millis(50));
            let started = Instant::now();
            let w =
                tokio::spawn(WorkerBuilder::new("raw").backend(backend).concurrency(16).build(noop).run_until(signal));
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

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let n = jobs();
    let _ = Arc::new(());
    rt.block_on(async {
        println!(
            "worker throughput, {n} due jobs, {} cores",
            std::thread::available_parallelism().map_or(0, |p| p.get())
        );
        println!("{:<10} {:<52} {:>12}", "backend", "what", "per second");
        for backend in ["sqlite", "postgres"] {
            let raw = bare_apalis(backend, n, false).await;
            println!("{backend:<10} {:<52} {raw:>12.0}", "bare apalis, no-op jobs (baseline)");
            if backend == "sqlite" {
                let with = bare_apalis(backend, n, true).await;
                println!("{backend:<10} {:<52} {with:>12.0}", "bare apalis, no-op jobs, with apalis's LIdx index");
            }
            let (ingest, sends) = cartback_sends(backend, n).await;
            println!("{backend:<10} {:<52} {ingest:>12.0}", "events accepted in-process (cart + job, one tx)");
            println!("{backend:<10} {:<52} {sends:>12.0}", "recovery jobs → rendered .eml in the file outbox");
        }
    });
}
