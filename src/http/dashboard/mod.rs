//! `/ops/`: the operator console, server-rendered HTML and inline SVG, no JavaScript.
//!
//! Pages: the overview (queue depth, upcoming sends, failures, the funnel), jobs by state
//! with filters and paging and each job's detail, campaigns with pause and resume, a cart
//! search with the cart's whole timeline, charts over time, and outbound webhook deliveries.
//!
//! Sign-in: a form posts the ops token once; the browser then holds an HttpOnly,
//! SameSite=Strict session cookie of its own (signed with the token, never the token
//! itself, 12 hours). Every form carries a token derived from the session and a POST is
//! refused without it or from another origin (SameSite does not cover sibling subdomains).
//! Results of actions are shown from a fixed list (`?done=`), so a link cannot put words
//! on the page. Customer addresses are shown masked, and the cart search is a POST, so an
//! address searched for never stands in a URL (browser history, proxy logs).

mod campaigns;
mod carts;
mod charts;
mod jobs;
mod outbound;
mod overview;

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

pub use campaigns::{campaigns, pause, resume};
pub use carts::{cart, carts, search};
pub use charts::charts;
pub use jobs::{cancel, job, jobs, retry};
pub use outbound::{outbound, retry_outbound};
pub use overview::dashboard;

use super::auth::{COOKIE, Caller, caller, form_token, form_token_valid, new_session, same_origin};
use crate::app::App;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A path segment or query value, percent-encoded (ids come from the database or the URL).
fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// Text #18181b/#3f3f46 on white and #71717a (muted, 4.8:1) keep WCAG AA contrast; links and
// buttons show a visible focus ring for keyboard use.
const STYLE: &str = "body{font-family:-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f4f5;color:#18181b}
header{background:#18181b;color:#fff;padding:14px 24px;font-size:18px;font-weight:600}
nav.top{background:#27272a;padding:0 24px}nav.top a{color:#e4e4e7;display:inline-block;padding:10px 12px;text-decoration:none}
nav.top a[aria-current=page]{color:#fff;border-bottom:3px solid #60a5fa}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:#fff;color:#18181b;padding:6px}
main{padding:20px 24px;max-width:1200px}
section{background:#fff;border-radius:8px;padding:16px 20px;margin-bottom:18px;box-shadow:0 1px 2px #0001}
h1{font-size:20px;margin:0 0 14px 0}h2{font-size:15px;margin:0 0 12px 0;color:#3f3f46;text-transform:uppercase;letter-spacing:.04em}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{flex:1;min-width:110px;background:#fafafa;border:1px solid #e4e4e7;border-radius:8px;padding:12px}
.card b{display:block;font-size:26px}a.card{color:inherit;text-decoration:none}.card span{color:#71717a;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:14px}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #f0f0f2;vertical-align:top}
th{color:#52525b;font-weight:500}.err{color:#b91c1c}.msg{background:#ecfdf5;border:1px solid #a7f3d0;padding:10px 14px;border-radius:6px;margin-bottom:14px}
.msg.bad{background:#fef2f2;border-color:#fecaca}
button{background:#18181b;color:#fff;border:0;border-radius:6px;padding:6px 12px;cursor:pointer}.muted{color:#71717a}
a{color:#1d4ed8}a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible{outline:3px solid #2563eb;outline-offset:2px}
form.filters{display:flex;gap:12px;flex-wrap:wrap;align-items:end}form.filters label{display:flex;flex-direction:column;font-size:13px;color:#3f3f46}
input,select{font:inherit;padding:5px 8px;border:1px solid #a1a1aa;border-radius:6px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}dt{color:#52525b}dd{margin:0}
.inline{display:inline}.pager{display:flex;gap:16px;margin-top:12px}";

/// The pages of the console, in the order of the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tab {
    Overview,
    Jobs,
    Campaigns,
    Carts,
    Charts,
    Outbound,
}

impl Tab {
    const ALL: [Self; 6] = [Self::Overview, Self::Jobs, Self::Campaigns, Self::Carts, Self::Charts, Self::Outbound];
    fn href(self) -> &'static str {
        match self {
            Self::Overview => "/ops/",
            Self::Jobs => "/ops/ui/jobs",
            Self::Campaigns => "/ops/ui/campaigns",
            Self::Carts => "/ops/ui/carts",
            Self::Charts => "/ops/ui/charts",
            Self::Outbound => "/ops/ui/outbound",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Self::Overview => "Overview",
            Self::Jobs => "Jobs",
            Self::Campaigns => "Campaigns",
            Self::Carts => "Carts",
            Self::Charts => "Charts",
            Self::Outbound => "Outbound",
        }
    }
}

/// A whole page: header, navigation (when signed in) and the body.
fn page(title: &str, tab: Option<Tab>, body: &str) -> Html<String> {
    let mut nav = String::new();
    if let Some(current) = tab {
        nav.push_str("<nav class=\"top\" aria-label=\"Console\">");
        for t in Tab::ALL {
            let cur = if t == current { " aria-current=\"page\"" } else { "" };
            nav.push_str(&format!("<a href=\"{}\"{cur}>{}</a>", t.href(), t.label()));
        }
        nav.push_str("</nav>");
    }
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · Cartback</title><style>{STYLE}</style></head><body><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header>Cartback · {t}</header>{nav}<main id=\"main\">{body}</main></body></html>",
        t = esc(title)
    ))
}

fn sign_in(status: StatusCode, error: Option<&str>) -> Response {
    let err = error.map(|e| format!("<p class=\"err\" role=\"alert\">{}</p>", esc(e))).unwrap_or_default();
    let body = format!(
        "<section><h2>Sign in</h2>{err}<form method=\"post\" action=\"/ops/login\"><label>Ops token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" autofocus></label> <button type=\"submit\">Sign in</button></form></section>"
    );
    (status, page("Operations", None, &body)).into_response()
}

/// The session of a signed-in browser (`None`: show the sign-in form).
fn session(app: &App, headers: &HeaderMap) -> Option<String> {
    match caller(app, headers) {
        Ok(Caller::Session(s)) => Some(s),
        _ => None,
    }
}

/// A signed-in page view: the form token its forms carry (`None`: show [`sign_in_form`]).
fn signed_in(app: &App, headers: &HeaderMap) -> Option<String> {
    let session = session(app, headers)?;
    Some(app.settings.ops_token.as_ref().map(|t| form_token(t.expose(), &session)).unwrap_or_default())
}

/// The sign-in form, for a page asked for without a session.
fn sign_in_form() -> Response {
    sign_in(StatusCode::OK, None)
}

/// The hidden field every form carries.
fn csrf_field(csrf: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(csrf))
}

/// A one-button form posting to `action`.
fn button(action: &str, csrf: &str, label: &str) -> String {
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{}\">{}<button type=\"submit\">{}</button></form>",
        esc(action),
        csrf_field(csrf),
        esc(label)
    )
}

/// The page shown when the database could not be read.
fn failed(tab: Tab, e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "console page failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        page(
            tab.label(),
            Some(tab),
            "<section class=\"err\">This page could not read the database; see the logs.</section>",
        ),
    )
        .into_response()
}

/// Why a console POST is refused before it does anything (`None`: it may go ahead).
fn refuse_post(app: &App, headers: &HeaderMap, csrf: &str) -> Option<Response> {
    let Some(session) = session(app, headers) else {
        return Some(sign_in(StatusCode::UNAUTHORIZED, Some("Please sign in again.")));
    };
    let token = app.settings.ops_token.as_ref()?;
    if !same_origin(headers, &app.public_base) || !form_token_valid(token.expose(), &session, csrf) {
        tracing::warn!("dashboard form refused: another origin or no valid form token");
        return Some(
            (
                StatusCode::FORBIDDEN,
                page("Operations", None, "<section class=\"err\">This form did not come from this dashboard. Reload the page and try again.</section>"),
            )
                .into_response(),
        );
    }
    None
}

/// After an action: back to `to` (a path of ours) with what it did.
fn redirect(to: &str, done: Done) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    (StatusCode::SEE_OTHER, [(header::LOCATION, format!("{to}{sep}done={}", done.code()))]).into_response()
}

/// The sign-in form's body.
#[derive(Debug, Deserialize)]
pub struct Login {
    token: String,
}

/// `POST /ops/login`
pub async fn login(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<Login>) -> Response {
    if !same_origin(&headers, &app.public_base) {
        return sign_in(StatusCode::FORBIDDEN, Some("Sign in from this dashboard's own page."));
    }
    let Some(token) = app.settings.ops_token.as_ref() else {
        return sign_in(StatusCode::UNAUTHORIZED, Some("Operations are disabled: set ops_token first."));
    };
    use subtle::ConstantTimeEq;
    if !bool::from(f.token.trim().as_bytes().ct_eq(token.expose().as_bytes())) {
        return sign_in(StatusCode::UNAUTHORIZED, Some("That token is not right."));
    }
    let secure = if app.public_base.starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/ops; Max-Age={}{secure}",
        new_session(token.expose(), Utc::now().timestamp()),
        super::auth::SESSION_SECS
    );
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/ops/")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// A console form's body: its form token.
#[derive(Debug, Deserialize)]
pub struct Action {
    #[serde(default)]
    csrf: String,
}

/// `POST /ops/logout`: forget the session in this browser.
pub async fn logout(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<Action>) -> Response {
    if let Some(refused) = refuse_post(&app, &headers, &f.csrf) {
        return refused;
    }
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/ops; Max-Age=0");
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/ops/")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// What an action did, shown after its redirect. A fixed list: the query names one, it
/// cannot carry text of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Retried,
    NotRetried,
    Cancelled,
    NotCancelled,
    Paused,
    Resumed,
    NotSwitched,
    Redelivering,
    NotRedelivered,
}

impl Done {
    const ALL: [Self; 9] = [
        Self::Retried,
        Self::NotRetried,
        Self::Cancelled,
        Self::NotCancelled,
        Self::Paused,
        Self::Resumed,
        Self::NotSwitched,
        Self::Redelivering,
        Self::NotRedelivered,
    ];
    fn parse(code: Option<&str>) -> Option<Self> {
        Self::ALL.into_iter().find(|d| Some(d.code()) == code)
    }
    fn code(self) -> &'static str {
        match self {
            Self::Retried => "retried",
            Self::NotRetried => "not_retried",
            Self::Cancelled => "cancelled",
            Self::NotCancelled => "not_cancelled",
            Self::Paused => "paused",
            Self::Resumed => "resumed",
            Self::NotSwitched => "not_switched",
            Self::Redelivering => "redelivering",
            Self::NotRedelivered => "not_redelivered",
        }
    }
    fn text(self) -> &'static str {
        match self {
            Self::Retried => "The job was queued again.",
            Self::NotRetried => "The job could not be retried (it may have run meanwhile); the log says why.",
            Self::Cancelled => "The job was cancelled; its cart's sequence waits until the job is retried.",
            Self::NotCancelled => "The job could not be cancelled (a worker may hold it now); the log says why.",
            Self::Paused => "The campaign is paused: due messages wait and go out after it is resumed.",
            Self::Resumed => "The campaign is resumed: waiting messages go out within 15 seconds.",
            Self::NotSwitched => "The campaign could not be switched; the log says why.",
            Self::Redelivering => "The webhook is queued for delivery again.",
            Self::NotRedelivered => {
                "The webhook could not be queued again (it may have been delivered); the log says why."
            }
        }
    }
    fn good(self) -> bool {
        !matches!(self, Self::NotRetried | Self::NotCancelled | Self::NotSwitched | Self::NotRedelivered)
    }
    /// The banner for `?done=`, or nothing.
    fn banner(code: Option<&str>) -> String {
        Self::parse(code).map_or_else(String::new, |d| {
            let class = if d.good() { "msg" } else { "msg bad" };
            format!("<div class=\"{class}\" role=\"status\">{}</div>", d.text())
        })
    }
}

/// The `?done=` of a page after an action. Unknown values are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}
