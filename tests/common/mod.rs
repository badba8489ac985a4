//! Shared test harness: the real app on port 0 against a fresh SQLite file or a fresh
//! PostgreSQL database, with real HTTP.

#![allow(dead_code)]

/// `on_both!(story, …)`: one test per story and backend, `sqlite::story` and
/// `postgres::story`, each calling `story(Backend::…)` from the including module (which must
/// have `Backend` in scope). Needs `#[macro_use] mod common;`.
#[allow(unused_macros)]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Backend::Postgres).await } )* }
    };
}

pub mod procs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cartback::app::App;
use cartback::config::{Secret, Settings, ShopSettings};
use cartback::store::{Db, Dialects};
use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::watch;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const SHOP: &str = "test";
pub const SECRET: &str = "whsec_dGVzdC1zZWNyZXQtZm9yLWNhcnRiYWNrLXRlc3Rz";

/// The PostgreSQL server tests use. Unreachable means the test fails: it never skips.
pub fn postgres_admin_url() -> String {
    std::env::var("CARTBACK_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The pool behind a [`Db`], for tests that read or change tables directly.
pub enum Raw<'a> {
    Sqlite(&'a sqlx::SqlitePool),
    Postgres(&'a sqlx::PgPool),
}

/// `db`'s pool.
pub fn raw(db: &Db) -> Raw<'_> {
    match (db.as_sqlite(), db.as_postgres()) {
        (Some(p), _) => Raw::Sqlite(p),
        (None, Some(p)) => Raw::Postgres(p),
        (None, None) => unreachable!("a database is SQLite or PostgreSQL"),
    }
}

/// One integer from `sql`, on either database.
/// Every row of a one-text-column query, on either backend.
pub async fn texts(db: &Db, sql: &'static str) -> Vec<String> {
    match raw(db) {
        Raw::Sqlite(p) => sqlx::query_scalar::<_, String>(sql).fetch_all(p).await.expect("query"),
        Raw::Postgres(p) => sqlx::query_scalar::<_, String>(sql).fetch_all(p).await.expect("query"),
    }
}

/// Run the real binary with `--config config` and `args`: (exit code, stdout, stderr).
pub fn cli(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cartback"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cartback");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

pub async fn scalar(db: &Db, sql: &'static str) -> i64 {
    db.fetch_one::<(i64,)>(&Dialects::same(sql), &[]).await.expect("query").0
}

/// A fresh, uniquely named PostgreSQL database; returns its URL.
pub async fn fresh_postgres_db() -> String {
    let admin = postgres_admin_url();
    let name = format!("cartback_t_{}", &cartback::store::public_id()[..16]);
    let pool = sqlx::PgPool::connect(&admin).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is required for this test and is unreachable at {admin}: {e}\nStart it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start")
    });
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create test database");
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_owned();
    format!("{base}/{name}")
}

/// Drop every test database left by earlier runs (best effort, at the start of a run).
pub async fn drop_postgres_db(url: &str) {
    let admin = postgres_admin_url();
    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
    if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .execute(&pool)
            .await;
        pool.close().await;
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A campaign with second-scale delays: abandoned after `abandon`s, steps after the given seconds (email only).
pub fn quick_campaign(abandon: u32, steps: &[(&str, u32, &str)]) -> String {
    let mut y = format!("name: quick\nabandon_after: {abandon}s\naudience: {{ min_total: 5 }}\nsteps:\n");
    for (id, after, template) in steps {
        y.push_str(&format!("  - id: {id}\n    after: {after}s\n    channels: [email]\n    template: {template}\n"));
        if *template == "incentive" {
            y.push_str("    incentive: tiers\n");
        }
    }
    y.push_str(
        "incentives:\n  code_ttl: 7d\n  tiers:\n    - { name: default, offer: { amount_off: 5 } }\nexit_when: [order_placed, cart_emptied, unsubscribed]\n",
    );
    y
}

/// Settings for a test in `dir` against `database_url`.
pub fn settings(dir: &Path, database_url: &str, campaign_yaml: &str) -> Settings {
    let campaigns = dir.join("campaigns");
    std::fs::create_dir_all(&campaigns).expect("campaigns dir");
    std::fs::write(campaigns.join("quick.yaml"), campaign_yaml).expect("campaign file");
    let mut s = Settings {
        database_url: Secret::new(database_url),
        campaigns_dir: campaigns,
        templates_dir: repo().join("templates"),
        ..Settings::default()
    };
    s.email.outbox_dir = dir.join("outbox/email");
    s.sms.outbox_dir = dir.join("outbox/sms");
    s.worker.poll_interval = Duration::from_millis(100);
    s.worker.heartbeat = Duration::from_secs(1);
    s.worker.claim_lease = Duration::from_secs(2);
    // A claim must outlive the provider call it protects (checked at start).
    s.email.smtp_timeout = Duration::from_millis(1500);
    s.sms.timeout = Duration::from_millis(1500);
    s.shops.insert(
        SHOP.into(),
        ShopSettings {
            url: Some("https://shop.example".into()),
            from: Some("Test Shop <shop@example.com>".into()),
            ..ShopSettings::new("Test Shop", Secret::new(SECRET), "Europe/Berlin", "en", "EUR", "quick")
        },
    );
    s
}

pub struct TestApp {
    pub app: Arc<App>,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    pub backend: Backend,
    stop: watch::Sender<bool>,
    worker: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pg_url: Option<String>,
    pub key: Vec<u8>,
    n: std::sync::atomic::AtomicU32,
}

/// Where the test's database lives: a file in `dir` or a fresh PostgreSQL database.
pub async fn database_url(backend: Backend, dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("test.db").display()),
        Backend::Postgres => fresh_postgres_db().await,
    }
}

/// Start the real service (HTTP on port 0, and the worker unless `with_worker` is false).
pub async fn spawn_app_with(
    backend: Backend,
    campaign_yaml: &str,
    with_worker: bool,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = database_url(backend, dir.path()).await;
    let mut s = settings(dir.path(), &url, campaign_yaml);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    s.public_url = Some(format!("http://{addr}"));
    tweak(&mut s);
    let app = App::build(s).await.expect("app builds");
    let (stop, rx) = watch::channel(false);
    let mut http_rx = rx.clone();
    tokio::spawn(cartback::http::launch(listener, app.clone(), async move {
        let _ = http_rx.wait_for(|s| *s).await;
    }));
    let worker = with_worker.then(|| tokio::spawn(cartback::worker::run_worker(app.clone(), rx.clone())));
    TestApp {
        app,
        base: format!("http://{addr}"),
        dir,
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
        backend,
        stop,
        worker,
        pg_url: (backend == Backend::Postgres).then_some(url),
        key: cartback::ingest::signature::secret_key(SECRET).expect("secret"),
        n: Default::default(),
    }
}

pub async fn spawn_app(backend: Backend, campaign_yaml: &str) -> TestApp {
    spawn_app_with(backend, campaign_yaml, true, |_| {}).await
}

/// A generic event for cart `id` with an email address and consent.
pub fn cart_event(kind: &str, id: &str, email: &str, occurred_at: chrono::DateTime<Utc>) -> Value {
    json!({
        "type": kind,
        "occurred_at": occurred_at.to_rfc3339(),
        "cart": {
            "id": id, "currency": "EUR", "total": "129.90",
            "items": [{"sku": "TSHIRT-M", "title": "T-Shirt", "quantity": 2, "price": "64.95"}],
            "restore_url": format!("https://shop.example/cart/recover?key={id}"),
        },
        "customer": { "id": format!("cu_{id}"), "email": email, "first_name": "Anna", "timezone": "Europe/Berlin",
                      "accepts_email_marketing": true }
    })
}

impl TestApp {
    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox/email")
    }

    /// Start the worker later (tests that need events in place before any job runs).
    pub fn start_worker(&mut self) {
        let rx = self.stop.subscribe();
        self.worker = Some(tokio::spawn(cartback::worker::run_worker(self.app.clone(), rx)));
    }

    /// POST a signed body with a fresh webhook id.
    pub async fn post(&self, body: &Value) -> reqwest::Response {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = format!("msg_{}_{n}", cartback::store::public_id());
        self.post_with_id(&id, body).await
    }

    /// POST a signed body with the given webhook id.
    pub async fn post_with_id(&self, id: &str, body: &Value) -> reqwest::Response {
        let bytes = serde_json::to_vec(body).expect("json");
        self.post_raw(SHOP, id, Utc::now().timestamp(), &bytes, None).await
    }

    /// POST raw bytes, signed with the shop's key (or with `signature` if given).
    pub async fn post_raw(
        &self,
        shop: &str,
        id: &str,
        ts: i64,
        bytes: &[u8],
        signature: Option<&str>,
    ) -> reqwest::Response {
        let sig = signature.map_or_else(|| cartback::ingest::signature::sign(&self.key, id, ts, bytes), str::to_owned);
        self.client
            .post(format!("{}/v1/shops/{shop}/events", self.base))
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .header("content-type", "application/json")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("request")
    }

    /// Poll `check` until it returns `Some` or `timeout` passes (then panic with `what`).
    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Emails in the outbox, parsed minimally: (file, raw text).
    pub fn emails(&self) -> Vec<(PathBuf, String)> {
        let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(self.outbox())
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .map(|p| {
                        let text = std::fs::read_to_string(&p).expect("read eml");
                        (p, text)
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// `GET /metrics` with the ops token `token`, as text.
    pub async fn metrics(&self, token: &str) -> String {
        let r = self.client.get(format!("{}/metrics", self.base)).bearer_auth(token).send().await.expect("metrics");
        assert_eq!(r.status(), 200, "metrics with the ops token");
        r.text().await.expect("text")
    }

    pub async fn scalar(&self, sql: &'static str) -> i64 {
        scalar(&self.app.db, sql).await
    }

    pub async fn text(&self, sql: &'static str) -> String {
        self.app.db.fetch_one::<(String,)>(&Dialects::same(sql), &[]).await.expect("query").0
    }

    pub async fn exec(&self, sql: &'static str) {
        self.app.db.execute(&Dialects::same(sql), &[]).await.expect("statement");
    }

    /// Stop the worker and the server and drop a PostgreSQL test database.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(w) = self.worker.take() {
            let _ = w.await;
        }
        self.app.db.close().await;
        if let Some(url) = self.pg_url.take() {
            drop_postgres_db(&url).await;
        }
    }
}

/// Undo quoted-printable soft line breaks and `=3D` so links can be read from a raw `.eml`.
pub fn unfold_qp(raw: &str) -> String {
    raw.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")
}

/// The first `{base}/r/…` link in a message.
pub fn restore_link(raw: &str, base: &str) -> Option<String> {
    let text = unfold_qp(raw);
    let start = text.find(&format!("{base}/r/"))?;
    let rest = &text[start..];
    let end = rest.find(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>').unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// The value of a header in a raw message.
pub fn header(raw: &str, name: &str) -> Option<String> {
    // As a mail client reads it: unfolded, and RFC 2047 words decoded (`=?utf-8?b?…?=`).
    let msg = mail_parser::MessageParser::default().parse(raw.as_bytes())?;
    if name.eq_ignore_ascii_case("Subject") {
        return msg.subject().map(str::to_owned);
    }
    msg.header_raw(name).map(|v| v.replace("\r\n", "").replace('\n', "").trim().to_owned())
}

/// What a shop's endpoint for Cartback's events received: headers and raw body, in order.
#[derive(Clone, Default)]
pub struct Received {
    pub seen: Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
}

impl Received {
    pub fn all(&self) -> Vec<(axum::http::HeaderMap, String)> {
        self.seen.lock().expect("lock").clone()
    }
    /// The bodies of a given `type`, parsed.
    pub fn of_type(&self, kind: &str) -> Vec<(axum::http::HeaderMap, String)> {
        self.all()
            .into_iter()
            .filter(|(_, b)| serde_json::from_str::<Value>(b).is_ok_and(|v| v["type"] == kind))
            .collect()
    }
}

/// A shop's endpoint for Cartback's events on a local port; `answer(n)` is the status for the
/// n-th delivery (1-based). Returns what it receives and its URL.
pub async fn shop_endpoint(
    answer: impl Fn(usize) -> axum::http::StatusCode + Clone + Send + Sync + 'static,
) -> (Received, String) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/events", listener.local_addr().expect("addr"));
    let r = received.clone();
    let router = axum::Router::new().route(
        "/events",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (r, answer) = (r.clone(), answer.clone());
            async move {
                let n = {
                    let mut seen = r.seen.lock().expect("lock");
                    seen.push((headers, body));
                    seen.len()
                };
                answer(n)
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    (received, url)
}

/// Check the Standard Webhooks signature Cartback put on an event it sent.
pub fn verify_signed(
    key: &[u8],
    headers: &axum::http::HeaderMap,
    body: &str,
) -> Result<(), cartback::ingest::signature::SignatureError> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    cartback::ingest::signature::verify(
        key,
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
        body.as_bytes(),
        Utc::now().timestamp(),
    )
}

/// postfix's `smtp-sink` on a free loopback port (`.ci/run` installs postfix), dumping each
/// accepted message to its own file; `faults` are its fault-injection flags (`-f RCPT`, …).
pub struct SmtpSink {
    child: std::process::Child,
    pub port: u16,
    dumps: tempfile::TempDir,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl SmtpSink {
    pub fn start(faults: &[&str]) -> Self {
        Self::start_on(free_port(), faults)
    }

    pub fn start_on(port: u16, faults: &[&str]) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dumps = tempfile::tempdir().expect("dump dir");
        // smtp-sink drops root privileges to `nobody`, who must be able to write the dumps.
        std::fs::set_permissions(dumps.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let bin = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("postfix's smtp-sink is needed for the SMTP tests (apt-get install postfix; .ci/run does)");
        let mut cmd = std::process::Command::new(bin);
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        if root {
            cmd.args(["-u", "nobody"]);
        }
        cmd.arg("-d").arg(format!("{}/%M.", dumps.path().display()));
        cmd.args(faults);
        cmd.arg(format!("127.0.0.1:{port}")).arg("256");
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start smtp-sink");
        wait_listening(port, "smtp-sink");
        Self { child, port, dumps }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message the sink accepted, as dumped (sink headers, then the message).
    pub fn messages(&self) -> Vec<String> {
        std::fs::read_dir(self.dumps.path())
            .map(|rd| rd.filter_map(|e| e.ok()).filter_map(|e| std::fs::read_to_string(e.path()).ok()).collect())
            .unwrap_or_default()
    }

    /// The `To` header of every message whose whole body arrived. smtp-sink writes its dump
    /// from `DATA` on, so a conversation still open mid-body (a frozen sender's) shows as a
    /// partial file until it closes; Cartback's mail is multipart, so a whole one ends with
    /// the closing boundary.
    pub fn delivered(&self) -> Vec<String> {
        let whole = |m: &String| {
            m.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.starts_with("--") && l.trim_end().ends_with("--"))
        };
        let mut to: Vec<String> = self.messages().iter().filter(|m| whole(m)).filter_map(|m| header(m, "To")).collect();
        to.sort();
        to
    }

    /// The `To` header of every accepted message.
    pub fn recipients(&self) -> Vec<String> {
        let mut to: Vec<String> = self.messages().iter().filter_map(|m| header(m, "To")).collect();
        to.sort();
        to
    }
}

/// Wait until something accepts connections on `127.0.0.1:port`.
pub fn wait_listening(port: u16, what: &str) {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(15), "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
