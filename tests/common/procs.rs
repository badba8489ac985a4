//! Processes of the real `cartback` binary for crash and scale-out tests: workers and
//! servers started with a config file, signalled, and waited on through the database.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cartback::app::App;
use cartback::domain::WebhookId;
use cartback::store::Db;
use chrono::Utc;

use super::{SECRET, SHOP, cart_event};

/// A `cartback` process, killed when dropped.
pub struct Worker(pub Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn config_file(dir: &Path, url: &str) -> std::path::PathBuf {
    config_file_with(dir, url, "")
}

/// The worker's configuration; `email` adds lines to `[email]`, `worker` to `[worker]`.
pub fn config_file_with(dir: &Path, url: &str, email: &str) -> std::path::PathBuf {
    let path = dir.join("cartback.toml");
    let toml = format!(
        r#"database_url = "{url}"
campaigns_dir = "{campaigns}"
templates_dir = "{templates}"
[email]
outbox_dir = "{outbox}"
{email}
[worker]
poll_interval = "100ms"
heartbeat = "1s"
claim_lease = "2s"
[shops.{SHOP}]
name = "Test Shop"
webhook_secret = "{SECRET}"
timezone = "Europe/Berlin"
locale = "en"
currency = "EUR"
campaign = "quick"
"#,
        campaigns = dir.join("campaigns").display(),
        templates = super::repo().join("templates").display(),
        outbox = dir.join("outbox/email").display(),
    );
    std::fs::write(&path, toml).expect("config");
    path
}

pub fn start_worker(config: &Path, log: &Path) -> Worker {
    start_worker_with(config, log, &[])
}

/// A worker process with extra environment (the fault hook: `CRASH_TEST_POINT`, …).
pub fn start_worker_with(config: &Path, log: &Path, env: &[(&str, &str)]) -> Worker {
    start_process("worker", config, log, env)
}

/// `cartback <command>` (`worker` or `serve`) with `config`, logging to `log`.
pub fn start_process(command: &str, config: &Path, log: &Path, env: &[(&str, &str)]) -> Worker {
    let log = std::fs::File::create(log).expect("log file");
    Worker(
        Command::new(env!("CARGO_BIN_EXE_cartback"))
            .arg("--config")
            .arg(config)
            .arg(command)
            .env("RUST_LOG", std::env::var("CRASH_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start cartback worker"),
    )
}

/// Accept `n` carts in-process, idle for an hour so every reminder is due at once (64 at a
/// time, as concurrent webhook deliveries would be: they share the ingest's transactions).
pub async fn accept_due_carts(s: cartback::config::Settings, n: usize) -> Db {
    use futures::StreamExt;
    let app = App::build(s).await.expect("app");
    let shop = app.shop(SHOP).expect("shop").clone();
    let past = Utc::now() - chrono::Duration::hours(1);
    let ingest = cartback::ingest::Ingest::start(&app);
    futures::stream::iter(0..n)
        .for_each_concurrent(64, |i| {
            let (ingest, shop) = (ingest.clone(), shop.clone());
            async move {
                let body = serde_json::to_vec(&cart_event(
                    "cart.updated",
                    &format!("c_{i}"),
                    &format!("p{i}@example.com"),
                    past,
                ))
                .expect("json");
                let ev = cartback::ingest::generic::parse(&body).expect("parse");
                let id = WebhookId::parse(&format!("m_{i}")).expect("id");
                ingest.accept(&shop, &id, &ev, &body).await.expect("accept");
            }
        })
        .await;
    app.db.clone()
}

pub async fn count(db: &Db, sql: &'static str) -> i64 {
    match super::raw(db) {
        super::Raw::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await.expect("query"),
        super::Raw::Postgres(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await.expect("query"),
    }
}

pub async fn wait_until(db: &Db, what: &str, timeout: Duration, sql: &'static str, at_least: i64, log: &Path) {
    let start = Instant::now();
    loop {
        if count(db, sql).await >= at_least {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {what}; worker log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until the worker's log contains `text`.
pub async fn wait_for_log(log: &Path, text: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        let content = std::fs::read_to_string(log).unwrap_or_default();
        if content.contains(text) {
            return;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {text:?} in the worker log:\n{content}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn signal(worker: &Worker, sig: &str) {
    let pid = worker.0.id().to_string();
    assert!(Command::new("kill").args([sig, &pid]).status().expect("kill").success(), "kill {sig} {pid}");
}
