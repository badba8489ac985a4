//! Who may use `/ops`, `/metrics` and the dashboard: the bearer ops token, or the
//! dashboard's session cookie derived from it. Both are compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::Problem;
use crate::app::App;
use crate::crypto::hex;

/// The cookie the dashboard's sign-in sets (HttpOnly, SameSite=Strict, Path=/ops).
pub const COOKIE: &str = "cartback_ops";

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').find_map(|kv| kv.trim().strip_prefix(&format!("{COOKIE}=")).map(str::to_owned)))
}

/// How a request proved it may use the operator surfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// `Authorization: Bearer <ops_token>`: scripts and the CLI.
    Bearer,
    /// The dashboard's session cookie (its value, to derive the form token from).
    Session(String),
}

fn disabled() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "Operations are disabled",
        "set ops_token (or CARTBACK_OPS_TOKEN) to use /ops and /metrics",
    )
}

/// Who is calling: the ops token as a bearer token, or a live dashboard session cookie
/// (both checked in constant time).
pub fn caller(app: &App, headers: &HeaderMap) -> Result<Caller, Problem> {
    let Some(token) = app.settings.ops_token.as_ref() else { return Err(disabled()) };
    if bearer(headers).is_some_and(|p| bool::from(p.as_bytes().ct_eq(token.expose().as_bytes()))) {
        return Ok(Caller::Bearer);
    }
    match cookie(headers) {
        Some(c) if session_valid(token.expose(), &c, chrono::Utc::now().timestamp()) => Ok(Caller::Session(c)),
        _ => Err(Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", "send Authorization: Bearer <ops_token>")),
    }
}

/// Middleware for `/ops` JSON routes and `/metrics`. Reads take the token or the cookie;
/// anything that changes state takes the bearer token only: a browser attaches cookies to
/// requests other sites make it send, and SameSite does not cover sibling subdomains.
pub async fn require_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    match caller(&app, req.headers()) {
        Ok(Caller::Bearer) => next.run(req).await,
        Ok(Caller::Session(_)) if safe => next.run(req).await,
        Ok(Caller::Session(_)) => Problem::new(
            StatusCode::FORBIDDEN,
            "Bearer token required",
            "changes through /ops need Authorization: Bearer <ops_token>; the dashboard's buttons use their own forms",
        )
        .into_response(),
        Err(p) => {
            let mut r = p.into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            r
        }
    }
}

/// How long a dashboard session lasts.
pub const SESSION_SECS: i64 = 12 * 3600;

fn session_mac(token: &str, expires: i64, nonce: &str) -> Vec<u8> {
    crate::crypto::hmac_sha256(
        token.as_bytes(),
        &[b"cartback dashboard session\n", expires.to_string().as_bytes(), b".", nonce.as_bytes()],
    )
}

/// A new session cookie value, `<expires>.<nonce>.<mac>`: different at every sign-in, dead
/// after [`SESSION_SECS`], and signed with the ops token (never the token itself), so
/// rotating the token ends every session at once.
pub fn new_session(token: &str, now: i64) -> String {
    let nonce = hex(&rand::random::<[u8; 16]>());
    let expires = now + SESSION_SECS;
    format!("{expires}.{nonce}.{}", hex(&session_mac(token, expires, &nonce)))
}

/// Whether `value` is a session cookie signed with `token` that has not expired at `now`.
pub fn session_valid(token: &str, value: &str, now: i64) -> bool {
    let mut parts = value.splitn(3, '.');
    let (Some(expires), Some(nonce), Some(mac)) = (parts.next(), parts.next(), parts.next()) else { return false };
    let Ok(expires) = expires.parse::<i64>() else { return false };
    let expected = hex(&session_mac(token, expires, nonce));
    bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) && now < expires && expires <= now + SESSION_SECS
}

/// The form token of a session: every dashboard form carries it, and a POST without the
/// right one is refused, whatever cookies the browser sent along.
pub fn form_token(token: &str, session: &str) -> String {
    hex(&crate::crypto::hmac_sha256(token.as_bytes(), &[b"cartback dashboard form\n", session.as_bytes()]))
}

/// Whether a form token matches the session (constant time).
pub fn form_token_valid(token: &str, session: &str, given: &str) -> bool {
    bool::from(form_token(token, session).as_bytes().ct_eq(given.as_bytes()))
}

/// Whether a browser's `Origin` (or, without one, `Referer`) names this server: both are
/// set by the browser and cannot be forged by a page. A request with neither (an old client,
/// a privacy proxy) passes on the form token alone.
pub fn same_origin(headers: &HeaderMap, public_base: &str) -> bool {
    let own = |u: &str| url::Url::parse(u).ok().map(|u| u.origin().ascii_serialization());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let theirs = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .map(|o| if o == "null" { None } else { own(o) });
    match theirs {
        None => true,
        Some(None) => false,
        Some(Some(o)) => {
            Some(&o) == own(public_base).as_ref()
                || host.is_some_and(|h| o == format!("http://{h}") || o == format!("https://{h}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_differ_per_sign_in_and_expire() {
        let (a, b) = (new_session("tok", 1_000), new_session("tok", 1_000));
        assert_ne!(a, b, "every sign-in gets its own session");
        assert!(session_valid("tok", &a, 1_001));
        assert!(!session_valid("tok", &a, 1_000 + SESSION_SECS), "expired");
        assert!(!session_valid("rotated", &a, 1_001), "a new token ends it");
        let forged = a.replacen(&(1_000 + SESSION_SECS).to_string(), &(1_000 + 10 * SESSION_SECS).to_string(), 1);
        assert!(!session_valid("tok", &forged, 1_001), "the expiry is signed");
        assert!(!session_valid("tok", "garbage", 1_001));
    }

    #[test]
    fn form_tokens_belong_to_their_session() {
        let s = new_session("tok", 1_000);
        let f = form_token("tok", &s);
        assert!(form_token_valid("tok", &s, &f));
        assert!(!form_token_valid("tok", &new_session("tok", 1_000), &f));
        assert!(!form_token_valid("tok", &s, ""));
    }

    #[test]
    fn only_this_servers_origin_passes() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, header::HeaderValue::from_static(v));
            }
            m
        };
        let base = "https://recover.shop.example";
        assert!(same_origin(&h(&[("origin", "https://recover.shop.example")]), base));
        assert!(same_origin(&h(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]), base));
        assert!(!same_origin(&h(&[("origin", "https://evil.example")]), base));
        assert!(!same_origin(&h(&[("origin", "https://sub.recover.shop.example")]), base));
        assert!(!same_origin(&h(&[("origin", "null")]), base));
        assert!(!same_origin(&h(&[("referer", "https://evil.example/page")]), base));
        assert!(same_origin(&h(&[("referer", "https://recover.shop.example/ops/")]), base));
        assert!(same_origin(&h(&[]), base));
    }
}
