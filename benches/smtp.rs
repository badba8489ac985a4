//! Email delivery throughput into postfix's `smtp-sink` on loopback, beside `smtp-source`
//! (postfix's own load generator) against the same sink in the same run.
//!
//! `cargo bench --bench smtp` (release). Needs postfix's `smtp-sink` and `smtp-source`
//! (`apt-get install postfix`). `CARTBACK_BENCH_EMAILS` sets the batch (default 5,000).
//! Measures Cartback's SMTP transport (lettre, pooled connections, the same MIME message
//! the worker sends) — not the queue; `--bench worker` measures that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cartback::deliver::{EmailTransport, OutgoingEmail};
use cartback::domain::Email;
use futures::StreamExt;
use support::{Sink, smtp_source};

mod support;

fn emails() -> usize {
    std::env::var("CARTBACK_BENCH_EMAILS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000)
}

fn sample(i: usize) -> OutgoingEmail {
    OutgoingEmail {
        id: format!("{i:032x}"),
        from: "Demo Shop <shop@example.com>".parse().expect("from"),
        reply_to: None,
        to: Email::parse(&format!("customer{i}@example.com")).expect("to"),
        subject: "Anna, Ihr Warenkorb bei Demo Shop wartet noch auf Sie".into(),
        text: "Hallo Anna,\n\nSie haben 3 Artikel in Ihrem Warenkorb gelassen.\n".repeat(8),
        html: "<p>Hallo Anna,</p><p>Sie haben 3 Artikel in Ihrem Warenkorb gelassen.</p>".repeat(12),
        unsubscribe_url: "https://recover.example/u/TOKEN".into(),
        unsubscribe_mailto: None,
    }
}

async fn cartback_rate(port: u16, n: usize, connections: u32) -> f64 {
    let t = Arc::new(
        EmailTransport::smtp(
            &format!("smtp://127.0.0.1:{port}"),
            None,
            &cartback::deliver::SmtpOptions {
                timeout: Duration::from_secs(30),
                connections,
                breaker_failures: 3,
                breaker_cooldown: Duration::from_secs(30),
            },
        )
        .expect("transport"),
    );
    // Warm the pool.
    t.send(&sample(0), &cartback::deliver::Open).await.expect("first send");
    let started = Instant::now();
    let mut sends = futures::stream::iter(1..=n)
        .map(|i| {
            let t = t.clone();
            async move { t.send(&sample(i), &cartback::deliver::Open).await }
        })
        .buffer_unordered(usize::try_from(connections).unwrap_or(1) * 2);
    let mut failed = 0;
    while let Some(r) = sends.next().await {
        if r.is_err() {
            failed += 1;
        }
    }
    assert_eq!(failed, 0, "every message accepted");
    n as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = emails();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!(
        "{n} emails into postfix smtp-sink on loopback ({} cores)\n",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    println!("{:<46} {:>12}", "sender", "emails/s");
    let sink = Sink::start();
    let port = sink.port;
    for sessions in [1, 20] {
        println!(
            "{:<46} {:>12.0}",
            format!("smtp-source, {sessions} session(s), 2 KB messages"),
            smtp_source(port, n, sessions)
        );
    }
    for connections in [1, 8, 32, 64] {
        let count = if connections == 1 { n.min(500) } else { n };
        let rate = rt.block_on(cartback_rate(port, count, connections));
        println!("{:<46} {:>12.0}", format!("cartback SMTP transport, {connections} connection(s)"), rate);
    }
}
