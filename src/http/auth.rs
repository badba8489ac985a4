//! Who may use `/ops`, `/metrics` and the dashboard: the bearer ops token, or the
//! dashboard's session cookie derived from it. Both are compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::Problem;
use crate::app::App;

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

/// Whether `headers` carry the ops token as a bearer token, or the dashboard's session
/// cookie derived from it (both compared in constant time).
pub fn authorized(app: &App, headers: &HeaderMap) -> Result<(), Problem> {
    let Some(token) = app.settings.ops_token.as_ref() else {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "Operations are disabled",
            "set ops_token (or CARTBACK_OPS_TOKEN) to use /ops and /metrics",
        ));
    };
    let by_bearer = bearer(headers).is_some_and(|p| bool::from(p.as_bytes().ct_eq(token.expose().as_bytes())));
    let session = session_value(token.expose());
    let by_cookie = cookie(headers).is_some_and(|c| bool::from(c.as_bytes().ct_eq(session.as_bytes())));
    if by_bearer || by_cookie {
        Ok(())
    } else {
        Err(Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", "send Authorization: Bearer <ops_token>"))
    }
}

/// Middleware: every `/ops` JSON route and `/metrics` needs the token.
pub async fn require_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    match authorized(&app, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(p) => {
            let mut r = p.into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            r
        }
    }
}

/// The cookie value for a token: an HMAC, so the token itself never sits in a browser.
pub fn session_value(token: &str) -> String {
    crate::crypto::hmac_sha256(token.as_bytes(), &[b"cartback dashboard session"])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
