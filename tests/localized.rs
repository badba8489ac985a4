//! A German customer, end to end over real HTTP: the email is German, amounts are in German
//! format, and the one-click unsubscribe in its own `List-Unsubscribe` header works.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Backend, cart_event, header, quick_campaign, spawn_app};

async fn german_customer_gets_german_email_with_one_click_unsubscribe(backend: Backend) {
    let t = spawn_app(backend, &quick_campaign(1, &[("reminder", 1, "reminder"), ("faq", 30, "faq")])).await;
    // Active a moment ago: the reminder is due at once, the FAQ half a minute later (a cart
    // idle for longer would have both overdue, and they would go back to back).
    let mut ev = cart_event("cart.updated", "c_de", "anna@example.de", Utc::now() - chrono::Duration::seconds(2));
    ev["customer"]["locale"] = "de-DE".into();
    ev["cart"]["total"] = "1234.50".into();
    ev["cart"]["items"][0]["price"] = "617.25".into();
    assert_eq!(t.post(&ev).await.status(), 202);

    let mails = t
        .wait_for("the reminder", Duration::from_secs(30), || async {
            let m = t.emails();
            (m.len() == 1).then_some(m)
        })
        .await;
    let raw = &mails[0].1;
    let msg = mail_parser::MessageParser::default().parse(raw.as_bytes()).expect("a MIME message");
    assert_eq!(msg.subject(), Some("Anna, Ihr Warenkorb bei Test Shop wartet noch auf Sie"));
    let text = msg.body_text(0).expect("text part");
    assert!(text.contains("Hallo Anna,"), "{text}");
    assert!(text.contains("Gesamt: 1.234,50\u{a0}€"), "German money format: {text}");
    assert!(text.contains("T-Shirt × 2: 1.234,50\u{a0}€"), "{text}");
    let html = msg.body_html(0).expect("html part");
    assert!(html.contains("<html lang=\"de\">") && html.contains("Zurück zum Warenkorb"), "German HTML");

    // The mail client's one-click unsubscribe (RFC 8058): POST to the header's URL.
    let list = header(raw, "List-Unsubscribe").expect("List-Unsubscribe");
    let url = list.trim_start_matches('<').split('>').next().expect("URL").to_owned();
    assert!(url.starts_with(&format!("{}/u/", t.base)), "{url}");
    assert_eq!(header(raw, "List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    // Following the link in a browser only asks (mail scanners follow links): in German.
    let confirm = t.client.get(&url).send().await.expect("page");
    assert_eq!(confirm.status(), 200);
    let confirm = confirm.text().await.expect("html");
    assert!(confirm.contains("<html lang=\"de\">") && confirm.contains("<h1>Abmelden?</h1>"), "{confirm}");
    assert_eq!(t.scalar("SELECT COUNT(*) FROM suppressions").await, 0, "a GET changes nothing");
    let resp = t
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("unsubscribe");
    assert!(resp.status().is_success(), "{}", resp.status());
    assert!(resp.text().await.expect("html").contains("Sie sind abgemeldet"));
    // It takes effect before the response: the address is suppressed and the FAQ never goes.
    assert_eq!(t.scalar("SELECT COUNT(*) FROM suppressions WHERE channel = 'email'").await, 1);
    t.wait_for("the sequence to stop", Duration::from_secs(45), || async {
        (t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'unsubscribed' AND next_run_at IS NULL").await == 1)
            .then_some(())
    })
    .await;
    assert_eq!(t.emails().len(), 1, "nothing after the unsubscribe");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_german_customer() {
    german_customer_gets_german_email_with_one_click_unsubscribe(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_german_customer() {
    german_customer_gets_german_email_with_one_click_unsubscribe(Backend::Postgres).await;
}

/// Links whose token says nothing about the customer (expired, forged) answer in the
/// browser's language; never a server error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_links_answer_in_the_browsers_language() {
    let t = spawn_app(Backend::Sqlite, &quick_campaign(1, &[("reminder", 60, "reminder")])).await;
    let expired = t.app.keys.sign(cartback::links::Purpose::Restore, "0123456789abcdef", Utc::now().timestamp() - 60);
    let cases = [
        (format!("{}/r/{expired}", t.base), "de-AT,de;q=0.9,en;q=0.5", 410, "Dieser Link ist abgelaufen"),
        (format!("{}/r/{expired}", t.base), "fr-FR,fr;q=0.9", 410, "Ce lien a expiré"),
        (format!("{}/r/not-a-token", t.base), "ja", 404, "このリンクはご利用いただけません"),
        (format!("{}/u/not-a-token", t.base), "zh-CN,zh;q=0.9", 404, "此链接无法使用"),
        (format!("{}/u/not-a-token", t.base), "sv-SE", 404, "This link doesn't work"),
    ];
    for (url, lang, status, want) in cases {
        let resp = t.client.get(&url).header("accept-language", lang).send().await.expect("get");
        assert_eq!(resp.status().as_u16(), status, "{url} {lang}");
        assert_eq!(resp.headers().get("vary").and_then(|v| v.to_str().ok()), Some("Accept-Language"));
        let html = resp.text().await.expect("html");
        assert!(html.contains(want), "{lang}: {html}");
    }
    t.shutdown().await;
}
