//! The operator surfaces against a browser that other sites can make send requests:
//! sessions of their own per sign-in, form tokens and an origin check on every dashboard
//! POST, changes through /ops with the bearer token only, and no text a link can put on
//! the page.

mod common;

use cartback::config::Secret;
use common::{Backend, quick_campaign, spawn_app_with};
use reqwest::StatusCode;

const TOKEN: &str = "ops-token-for-sessions";

async fn sign_in(t: &common::TestApp) -> String {
    let r = t
        .client
        .post(format!("{}/ops/login", t.base))
        .header("origin", &t.base)
        .form(&[("token", TOKEN)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()["set-cookie"].to_str().expect("ascii").to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    set.split(';').next().expect("cookie").to_owned()
}

fn form_token(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form token on the page") + 19;
    page[at..].split('"').next().expect("value").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_posts_need_their_form_token_and_this_origin() {
    let t = spawn_app_with(Backend::Sqlite, &quick_campaign(1, &[("reminder", 1, "reminder")]), false, |s| {
        s.ops_token = Some(Secret::new(TOKEN));
    })
    .await;
    let (a, b) = (sign_in(&t).await, sign_in(&t).await);
    assert_ne!(a, b, "every sign-in gets its own session");
    assert!(!a.contains(TOKEN));

    let page = |cookie: String, query: &'static str| {
        let t = &t;
        async move {
            let r = t.client.get(format!("{}/ops/{query}", t.base)).header("cookie", cookie).send().await.expect("get");
            assert_eq!(r.status(), StatusCode::OK);
            r.text().await.expect("body")
        }
    };
    let html = page(a.clone(), "").await;
    assert!(html.contains("<h2>Queue</h2>"), "signed in");
    let csrf = form_token(&html);

    // A link cannot put words on the page; only the fixed results can be shown.
    let spoof = page(a.clone(), "?msg=Your%20token%20expired%2C%20call%20555&done=call_us").await;
    assert!(
        !spoof.contains("expired") && !spoof.contains("call_us") && !spoof.contains("role=\"status\""),
        "reflected: {spoof}"
    );
    assert!(page(a.clone(), "?done=retried").await.contains("The job was queued again."));

    let retry = |cookie: &str, origin: Option<&str>, csrf: &str| {
        let mut req = t.client.post(format!("{}/ops/ui/jobs/no-such-job/retry", t.base)).header("cookie", cookie);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.form(&[("csrf", csrf)]).send()
    };
    let no_token = retry(&a, Some(&t.base), "").await.expect("post");
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN, "no form token");
    let other_session = retry(&b, Some(&t.base), &csrf).await.expect("post");
    assert_eq!(other_session.status(), StatusCode::FORBIDDEN, "another session's form token");
    let evil = retry(&a, Some("https://evil.example"), &csrf).await.expect("post");
    assert_eq!(evil.status(), StatusCode::FORBIDDEN, "another origin");
    let sibling = retry(&a, Some("http://sub.127.0.0.1.nip.io"), &csrf).await.expect("post");
    assert_eq!(sibling.status(), StatusCode::FORBIDDEN, "a sibling origin");
    let ok = retry(&a, Some(&t.base), &csrf).await.expect("post");
    assert_eq!(ok.status(), StatusCode::SEE_OTHER, "the dashboard's own form");
    assert_eq!(
        ok.headers()["location"],
        "/ops/ui/jobs/no-such-job?done=not_retried",
        "the unknown job was not retried"
    );

    // Every other console form is held to the same rules before it does anything.
    for path in [
        "/ops/ui/jobs/no-such-job/cancel",
        "/ops/ui/campaigns/quick/pause",
        "/ops/ui/campaigns/quick/resume",
        "/ops/ui/outbound/1/retry",
        "/ops/ui/carts",
    ] {
        let post = |origin: &str, csrf: &str| {
            t.client
                .post(format!("{}{path}", t.base))
                .header("cookie", a.clone())
                .header("origin", origin)
                .form(&[("csrf", csrf), ("q", "c_1")])
                .send()
        };
        assert_eq!(
            post(&t.base, "").await.expect("post").status(),
            StatusCode::FORBIDDEN,
            "{path} without a form token"
        );
        assert_eq!(
            post("https://evil.example", &csrf).await.expect("post").status(),
            StatusCode::FORBIDDEN,
            "{path} cross-origin"
        );
        assert!(post(&t.base, &csrf).await.expect("post").status().as_u16() < 400, "{path} from the console itself");
    }
    assert_eq!(t.scalar("SELECT COUNT(*) FROM campaign_state WHERE paused = 1").await, 0, "paused and resumed");

    // Changes through the JSON API take the bearer token, never the cookie.
    let pause = |auth: (&'static str, String)| {
        t.client
            .post(format!("{}/ops/campaigns/quick/pause", t.base))
            .header(auth.0, auth.1)
            .header("origin", "https://evil.example")
            .send()
    };
    assert_eq!(pause(("cookie", a.clone())).await.expect("post").status(), StatusCode::FORBIDDEN);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM campaign_state WHERE paused = 1").await, 0, "nothing paused");
    assert_eq!(pause(("authorization", format!("Bearer {TOKEN}"))).await.expect("post").status(), StatusCode::OK);
    let erase = t
        .client
        .delete(format!("{}/v1/shops/{}/customers/cu_x", t.base, common::SHOP))
        .header("cookie", a.clone())
        .send()
        .await
        .expect("delete");
    assert_eq!(erase.status(), StatusCode::UNAUTHORIZED, "an erase with the cookie alone");

    // Reads still work with the cookie; signing out clears it in the browser.
    let jobs = t.client.get(format!("{}/ops/jobs", t.base)).header("cookie", a.clone()).send().await.expect("get");
    assert_eq!(jobs.status(), StatusCode::OK);
    let out = t
        .client
        .post(format!("{}/ops/logout", t.base))
        .header("cookie", a.clone())
        .header("origin", &t.base)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(out.headers()["set-cookie"].to_str().expect("ascii").contains("Max-Age=0"));

    // A forged session (the expiry pushed out) is not accepted.
    let value = a.split_once('=').expect("name=value").1;
    let mut parts = value.splitn(2, '.');
    let (expires, rest) = (parts.next().expect("expires"), parts.next().expect("rest"));
    let forged = format!("cartback_ops={}.{rest}", expires.parse::<i64>().expect("number") + 86_400);
    let r = t.client.get(format!("{}/ops/jobs", t.base)).header("cookie", forged).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    t.shutdown().await;
}
