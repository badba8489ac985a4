//! `cartback demo`: the newcomer's tour.
//!
//! Starts the real service (HTTP + worker) on SQLite and the file outbox, posts signed
//! events for carts from several time zones and locales over real HTTP, lets the quick
//! `demo` campaign run, clicks one restore link, and prints each cart's timeline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use chrono::Utc;
use clap::Args;
use serde_json::json;
use tokio::sync::watch;

use super::{Cli, Failure, settings};
use crate::app::App;
use crate::config::{Secret, ShopSettings};
use crate::store::{CartStatus, SendStatus};

/// Options for `cartback demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// SQLite file for the demo (recreated on every run).
    #[arg(long, default_value = "cartback-demo.db")]
    pub db: PathBuf,
    /// Where the rendered messages go (emptied on every run).
    #[arg(long, default_value = "outbox/demo")]
    pub outbox: PathBuf,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

struct Sample {
    id: &'static str,
    name: &'static str,
    email: Option<&'static str>,
    phone: Option<&'static str>,
    tz: &'static str,
    locale: &'static str,
    country: &'static str,
    currency: &'static str,
    total: &'static str,
    item: &'static str,
    orders: u32,
    email_ok: bool,
    sms_ok: bool,
    story: &'static str,
}

const SAMPLES: &[Sample] = &[
    Sample {
        id: "c_anna",
        name: "Anna",
        email: Some("anna@example.de"),
        phone: Some("+4915123456789"),
        tz: "Europe/Berlin",
        locale: "de-AT",
        country: "DE",
        currency: "EUR",
        total: "129.90",
        item: "Wool coat",
        orders: 3,
        email_ok: true,
        sms_ok: true,
        story: "full sequence, email and SMS",
    },
    Sample {
        id: "c_kenji",
        name: "Kenji",
        email: Some("kenji@example.jp"),
        phone: None,
        tz: "Asia/Tokyo",
        locale: "ja",
        country: "JP",
        currency: "JPY",
        total: "25000",
        item: "Ceramic teapot",
        orders: 0,
        email_ok: true,
        sms_ok: false,
        story: "JPY cart, judged by JPY thresholds: high-value tier",
    },
    Sample {
        id: "c_maria",
        name: "María",
        email: Some("maria@example.mx"),
        phone: None,
        tz: "America/Mexico_City",
        locale: "es-MX",
        country: "MX",
        currency: "MXN",
        total: "1500.00",
        item: "Leather bag",
        orders: 1,
        email_ok: true,
        sms_ok: false,
        story: "orders after the first reminder: sequence stops",
    },
    Sample {
        id: "c_priya",
        name: "Priya",
        email: Some("priya@example.in"),
        phone: Some("+919812345678"),
        tz: "",
        locale: "en-IN",
        country: "",
        currency: "INR",
        total: "4999",
        item: "Silk scarf",
        orders: 2,
        email_ok: false,
        sms_ok: true,
        story: "sent no zone and no country: zone from the +91 phone number; no email consent, so SMS only",
    },
    Sample {
        id: "c_liam",
        name: "Liam",
        email: Some("liam@example.au"),
        phone: None,
        tz: "Australia/Sydney",
        locale: "en-AU",
        country: "AU",
        currency: "AUD",
        total: "45.00",
        item: "Running socks",
        orders: 0,
        email_ok: true,
        sms_ok: false,
        story: "empties the cart before it counts as abandoned",
    },
];

fn event(kind: &str, s: &Sample) -> serde_json::Value {
    json!({
        "type": kind,
        "occurred_at": Utc::now().to_rfc3339(),
        "cart": {
            "id": s.id, "currency": s.currency, "total": s.total,
            "items": [{ "sku": "SKU-1", "title": s.item, "quantity": 1, "price": s.total,
                        "image_url": "https://shop.example/img/item.png", "url": "https://shop.example/p/item" }],
            "restore_url": format!("https://shop.example/cart/recover?cart={}", s.id),
            "locale": s.locale,
        },
        "customer": {
            "id": format!("cu_{}", s.id), "email": s.email, "phone": s.phone, "first_name": s.name,
            "timezone": (!s.tz.is_empty()).then_some(s.tz), "locale": s.locale, "country": (!s.country.is_empty()).then_some(s.country), "orders_count": s.orders,
            "accepts_email_marketing": s.email_ok, "accepts_sms_marketing": s.sms_ok,
        }
    })
}

struct Poster {
    client: reqwest::Client,
    base: String,
    key: Vec<u8>,
    n: u32,
}

impl Poster {
    async fn post(&mut self, body: &serde_json::Value) -> anyhow::Result<u16> {
        self.n += 1;
        let id = format!("demo_{}_{}", Utc::now().timestamp_millis(), self.n);
        let ts = Utc::now().timestamp();
        let bytes = serde_json::to_vec(body)?;
        let sig = crate::ingest::signature::sign(&self.key, &id, ts, &bytes);
        let resp = self
            .client
            .post(format!("{}/v1/shops/demo/events", self.base))
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await?;
        Ok(resp.status().as_u16())
    }
}

pub async fn run(cli: &Cli, args: &DemoArgs) -> Result<(), Failure> {
    // The demo brings its own shop, database and outbox: a cartback.toml in the working
    // directory (someone's real configuration) is read only when named with --config.
    let mut s = match &cli.config {
        Some(_) => settings(cli)?,
        None => crate::config::Settings::default(),
    };
    // Run from anywhere: without templates and campaigns here, use the ones it was built from.
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (dir, name) in [(&mut s.templates_dir, "templates"), (&mut s.campaigns_dir, "campaigns")] {
        if !dir.exists() && source.join(name).exists() {
            *dir = source.join(name);
        }
    }
    // Quiet logs: the timeline is the output.
    if std::env::var_os("RUST_LOG").is_none() {
        crate::telemetry::init_with("warn");
    } else {
        crate::telemetry::init(s.log_format, crate::queue::LOG_DEFAULTS);
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", args.db.display()));
    }
    let _ = std::fs::remove_dir_all(&args.outbox);
    let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(crate::store::public_id()));
    s.database_url = Secret::new(format!("sqlite://{}", args.db.display()));
    s.email.transport = crate::config::EmailTransportKind::File;
    s.email.outbox_dir = args.outbox.join("email");
    s.sms.outbox_dir = args.outbox.join("sms");
    s.worker.poll_interval = Duration::from_millis(100);
    s.shops = BTreeMap::from([(
        "demo".to_owned(),
        ShopSettings {
            url: Some("https://shop.example".into()),
            from: Some("Demo Shop <shop@example.com>".into()),
            reply_to: Some("Demo Shop Support <help@example.com>".into()),
            unsubscribe_mailto: Some("unsubscribe@example.com".into()),
            restore_code_param: Some("discount".into()),
            ..ShopSettings::new("Demo Shop", Secret::new(secret.clone()), "Europe/Berlin", "en", "EUR", "demo")
        },
    )]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding a local port")?;
    let addr = listener.local_addr().context("local address")?;
    s.public_url = Some(format!("http://{addr}"));
    let app = App::build(s).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(crate::worker::run_worker(app.clone(), stop_rx.clone()));
    let mut rx = stop_rx.clone();
    let http = tokio::spawn(crate::http::launch(listener, app.clone(), async move {
        let _ = rx.wait_for(|s| *s).await;
    }));

    println!("Cartback demo: SQLite {} + file outbox {}/", args.db.display(), args.outbox.display());
    println!("Service on http://{addr}; campaign \"demo\" (abandoned after 3s idle; steps at +2s, +6s, +10s)\n");
    let key = crate::ingest::signature::secret_key(&secret).context("demo secret")?;
    let mut poster = Poster { client: reqwest::Client::new(), base: format!("http://{addr}"), key, n: 0 };
    for sample in SAMPLES {
        let status = poster.post(&event("cart.updated", sample)).await.context("posting a demo event")?;
        println!(
            "  POST cart.updated {:<8} → {status}   {} ({}, {}): {}",
            sample.id,
            sample.name,
            if sample.tz.is_empty() { "no time zone" } else { sample.tz },
            sample.locale,
            sample.story
        );
    }
    let liam = &SAMPLES[4];
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let status = poster.post(&event("cart.emptied", liam)).await?;
    println!("  POST cart.emptied {:<8} → {status}", liam.id);

    let started = Instant::now();
    let deadline = Duration::from_secs(args.timeout);
    let mut clicked = false;
    let mut ordered = false;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut tx = app.db.begin().await.context("reading carts")?;
        let carts = tx.carts_of_shop("demo").await.context("reading carts")?;
        let maria = carts.iter().find(|c| c.external_id == "c_maria");
        let maria_sends = match maria {
            Some(c) => tx.sends_of_cart(c.id).await.context("reading sends")?,
            None => Vec::new(),
        };
        let anna_sends = match carts.iter().find(|c| c.external_id == "c_anna") {
            Some(c) => tx.sends_of_cart(c.id).await.context("reading sends")?,
            None => Vec::new(),
        };
        tx.commit().await.context("reading carts")?;
        if !ordered && maria_sends.iter().any(|s| s.status == SendStatus::Sent) {
            let mut order = event("order.placed", &SAMPLES[2]);
            order["order_id"] = json!("o_1001");
            order["total"] = json!("1500.00");
            order["currency"] = json!("MXN");
            let status = poster.post(&order).await?;
            println!("  POST order.placed c_maria  → {status}   (María bought after the reminder)");
            ordered = true;
        }
        if !clicked && let Some(send) = anna_sends.iter().find(|s| s.status == SendStatus::Sent && s.channel == "email")
        {
            let exp = Utc::now().timestamp() + 3600;
            let token = app.keys.sign(crate::links::Purpose::Restore, &send.public_id, exp);
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("http client")?;
            let resp =
                client.get(format!("http://{addr}/r/{token}")).send().await.context("clicking a restore link")?;
            let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            println!("  GET  /r/<token> (Anna's reminder) → {} Location: {location}", resp.status().as_u16());
            clicked = true;
        }
        let settled = carts.len() == SAMPLES.len()
            && carts
                .iter()
                .all(|c| !matches!(c.status(), CartStatus::Active | CartStatus::Abandoned) && c.next_run_at.is_none());
        if settled || started.elapsed() > deadline {
            break;
        }
    }
    let elapsed = started.elapsed();
    let _ = stop_tx.send(true);
    let _ = http.await;
    let _ = worker.await;

    println!("\nTimelines (each line: UTC time | customer's local time | what happened)\n");
    let mut tx = app.db.begin().await.context("reading carts")?;
    let carts = tx.carts_of_shop("demo").await.context("reading carts")?;
    for cart in &carts {
        let tz: chrono_tz::Tz = cart.timezone.as_deref().and_then(|t| t.parse().ok()).unwrap_or(chrono_tz::UTC);
        println!("{} ({}, {}) → {}", cart.external_id, tz, cart.locale.as_deref().unwrap_or("?"), cart.status);
        for e in tx.cart_log(cart.id).await.context("reading timeline")? {
            let t = crate::domain::from_millis(e.at);
            println!(
                "  {} | {} | {:<11} {}",
                t.format("%H:%M:%S%.3f"),
                t.with_timezone(&tz).format("%a %H:%M:%S %Z"),
                e.what,
                e.detail
            );
        }
        println!();
    }
    tx.commit().await.context("reading carts")?;
    app.db.close().await;

    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["email", "sms"] {
        if let Ok(rd) = std::fs::read_dir(args.outbox.join(dir)) {
            files.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
        }
    }
    files.sort();
    println!(
        "{} rendered messages in {}/ (email: .eml, open with any mail client; sms: .json):",
        files.len(),
        args.outbox.display()
    );
    for f in &files {
        println!("  {}", f.display());
    }
    println!(
        "\nDone in {:.1}s. The demo database is {} (inspect with sqlite3).",
        elapsed.as_secs_f64(),
        args.db.display()
    );
    Ok(())
}
