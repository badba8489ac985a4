//! Email through a real SMTP server on loopback (aiosmtpd, from PyPI; `.ci/run` installs it).

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Backend, cart_event, header, quick_campaign, restore_link, spawn_app_with, unfold_qp};

struct SmtpServer {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_smtp_server() -> SmtpServer {
    start_smtp_server_with("aiosmtpd.handlers.Mailbox")
}

fn start_smtp_server_with(handler: &str) -> SmtpServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let maildir = tempfile::tempdir().expect("maildir");
    let child = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", handler])
        .env("PYTHONPATH", common::repo().join("tests/smtp"))
        .arg(maildir.path().join("mail"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed to run the SMTP tests");
    let mut server = SmtpServer { child, port, maildir };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = server.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("aiosmtpd exited ({status}): {err}\nInstall it with: pip install aiosmtpd");
        }
        assert!(start.elapsed() < Duration::from_secs(15), "aiosmtpd did not start listening on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn delivered(server: &SmtpServer) -> Vec<String> {
    std::fs::read_dir(server.maildir.path().join("mail/new"))
        .map(|rd| rd.filter_map(|e| e.ok()).filter_map(|e| std::fs::read_to_string(e.path()).ok()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminder_arrives_at_a_real_smtp_server_with_a_working_restore_link() {
    let server = start_smtp_server();
    let port = server.port;
    let t = spawn_app_with(Backend::Sqlite, &quick_campaign(1, &[("reminder", 1, "reminder")]), true, |s| {
        s.email.transport = cartback::config::EmailTransportKind::Smtp;
        s.email.smtp_url = Some(cartback::config::Secret::new(format!("smtp://127.0.0.1:{port}")));
    })
    .await;
    assert_eq!(t.post(&cart_event("cart.updated", "c_smtp", "grace@example.org", Utc::now())).await.status(), 202);
    let mail = t
        .wait_for("a message at the SMTP server", Duration::from_secs(30), || async {
            delivered(&server).into_iter().next()
        })
        .await;

    assert_eq!(header(&mail, "To").as_deref(), Some("grace@example.org"));
    assert_eq!(header(&mail, "Subject").as_deref(), Some("Anna, your cart at Test Shop is still waiting"));
    assert!(header(&mail, "Content-Type").is_some_and(|c| c.starts_with("multipart/alternative")));
    assert!(header(&mail, "Message-ID").is_some_and(|m| m.ends_with("@cartback>")));
    let body = unfold_qp(&mail);
    assert!(body.contains("Content-Type: text/plain") && body.contains("Content-Type: text/html"));
    let link = restore_link(&mail, &t.base).expect("restore link in the delivered message");
    let resp = t.client.get(&link).send().await.expect("click");
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "https://shop.example/cart/recover?key=c_smtp");
    t.wait_for("the send to be recorded with the relay's answer", Duration::from_secs(10), || async {
        (t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'sent' AND message_ref LIKE 'smtp 250%'").await == 1)
            .then_some(())
    })
    .await;
    t.shutdown().await;
}

/// The relay's answers decide the class: 5xx fails the message for good, 4xx and dropped
/// connections release it for a later attempt, and the healthy recipient still gets theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_failures_are_classified_by_the_relays_answer() {
    let server = start_smtp_server_with("faults.FaultHandler");
    let port = server.port;
    let t = spawn_app_with(Backend::Sqlite, &quick_campaign(1, &[("reminder", 1, "reminder")]), true, |s| {
        s.email.transport = cartback::config::EmailTransportKind::Smtp;
        s.email.smtp_url = Some(cartback::config::Secret::new(format!("smtp://127.0.0.1:{port}")));
    })
    .await;
    let past = Utc::now() - chrono::Duration::hours(1);
    for (id, to) in [
        ("c_ok", "fine@example.org"),
        ("c_soft", "soft@example.org"),
        ("c_hard", "hard@example.org"),
        ("c_drop", "drop@example.org"),
    ] {
        assert_eq!(t.post(&cart_event("cart.updated", id, to, past)).await.status(), 202);
    }
    t.wait_for("every first attempt to be recorded", Duration::from_secs(30), || async {
        let done = t.scalar("SELECT COUNT(*) FROM sends WHERE status IN ('sent', 'failed')").await == 2
            && t.scalar("SELECT COUNT(*) FROM cart_log WHERE what = 'retry'").await == 2;
        done.then_some(())
    })
    .await;
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'sent'").await, 1);
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'failed' AND reason LIKE '%550%'").await,
        1,
        "5xx is permanent"
    );
    // 4xx and a dropped connection: the claim is released (claimed_at = 0) for a retry with backoff.
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'claimed' AND claimed_at = 0").await, 2);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM cart_log WHERE what = 'retry' AND detail LIKE '%451%'").await, 1);
    assert_eq!(delivered(&server).len(), 1, "only the healthy recipient received a message");
    assert_eq!(delivered(&server).first().and_then(|m| header(m, "To")).as_deref(), Some("fine@example.org"));
    t.shutdown().await;
}
