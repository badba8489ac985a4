//! `/ops/`: the operator dashboard — queue depth, upcoming sends, failures with a retry
//! button, and the funnel as a chart. Server-rendered HTML and inline SVG, no JavaScript.
//!
//! Sign-in: a form posts the ops token once; the browser then holds an HttpOnly,
//! SameSite=Strict session cookie of its own (signed with the token, never the token
//! itself, 12 hours). Every form carries a token derived from the session and a POST is
//! refused without it or from another origin (SameSite does not cover sibling subdomains).
//! Results of actions are shown from a fixed list (`?done=`), so a link cannot put words
//! on the page.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

use super::auth::{COOKIE, Caller, caller, form_token, form_token_valid, new_session, same_origin};
use crate::app::App;
use crate::domain::from_millis;
use crate::ops;
use crate::queue::RECOVERY;
use crate::queue::tables::JobFilter;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f4f5;color:#18181b}
header{background:#18181b;color:#fff;padding:14px 24px;font-size:18px;font-weight:600}
main{padding:20px 24px;max-width:1200px}
section{background:#fff;border-radius:8px;padding:16px 20px;margin-bottom:18px;box-shadow:0 1px 2px #0001}
h2{font-size:15px;margin:0 0 12px 0;color:#3f3f46;text-transform:uppercase;letter-spacing:.04em}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{flex:1;min-width:110px;background:#fafafa;border:1px solid #e4e4e7;border-radius:8px;padding:12px}
.card b{display:block;font-size:26px}.card span{color:#71717a;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:14px}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #f0f0f2;vertical-align:top}
th{color:#71717a;font-weight:500}.err{color:#b91c1c}.msg{background:#ecfdf5;border:1px solid #a7f3d0;padding:10px 14px;border-radius:6px;margin-bottom:14px}
button{background:#18181b;color:#fff;border:0;border-radius:6px;padding:6px 12px;cursor:pointer}.muted{color:#a1a1aa}";

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body><header>Cartback · {t}</header><main>{body}</main></body></html>",
        t = esc(title)
    ))
}

fn sign_in(status: StatusCode, error: Option<&str>) -> Response {
    let err = error.map(|e| format!("<p class=\"err\">{}</p>", esc(e))).unwrap_or_default();
    let body = format!(
        "<section><h2>Sign in</h2>{err}<form method=\"post\" action=\"/ops/login\"><label>Ops token <input type=\"password\" name=\"token\" autofocus></label> <button type=\"submit\">Sign in</button></form></section>"
    );
    (status, page("Operations", &body)).into_response()
}

/// The session of a signed-in browser (`None`: show the sign-in form).
fn session(app: &App, headers: &HeaderMap) -> Option<String> {
    match caller(app, headers) {
        Ok(Caller::Session(s)) => Some(s),
        _ => None,
    }
}

/// Why a dashboard POST is refused before it does anything (`None`: it may go ahead).
fn refuse_post(app: &App, headers: &HeaderMap, csrf: &str) -> Option<Response> {
    let Some(session) = session(app, headers) else {
        return Some(sign_in(StatusCode::UNAUTHORIZED, Some("Please sign in again.")));
    };
    let token = app.settings.ops_token.as_ref()?;
    if !same_origin(headers, &app.public_base) || !form_token_valid(token.expose(), &session, csrf) {
        tracing::warn!("dashboard form refused: another origin or no valid form token");
        return Some(
            (StatusCode::FORBIDDEN, page("Operations", "<section class=\"err\">This form did not come from this dashboard. Reload the page and try again.</section>"))
                .into_response(),
        );
    }
    None
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

/// A dashboard form's body: its form token.
#[derive(Debug, Deserialize)]
pub struct Action {
    #[serde(default)]
    csrf: String,
}

/// `POST /ops/ui/jobs/{id}/retry`: the dashboard's retry button.
pub async fn retry(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<Action>,
) -> Response {
    if let Some(refused) = refuse_post(&app, &headers, &f.csrf) {
        return refused;
    }
    let done = match ops::retry_job(&app, &id).await {
        Ok(_) => Done::Retried,
        Err(e) => {
            tracing::warn!(error = %e, "dashboard retry failed");
            Done::NotRetried
        }
    };
    (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/ops/?done={}", done.code()))]).into_response()
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
}

impl Done {
    fn parse(code: &str) -> Option<Self> {
        [Self::Retried, Self::NotRetried].into_iter().find(|d| d.code() == code)
    }
    fn code(self) -> &'static str {
        match self {
            Self::Retried => "retried",
            Self::NotRetried => "not_retried",
        }
    }
    fn text(self) -> &'static str {
        match self {
            Self::Retried => "The job was queued again.",
            Self::NotRetried => "The job could not be retried (it may have run meanwhile); the log says why.",
        }
    }
}

/// Query of the dashboard (what an action did). Unknown values are ignored.
#[derive(Debug, Deserialize)]
pub struct DashQuery {
    done: Option<String>,
}

fn bar_chart(stats: &ops::Stats) -> String {
    // One group per campaign: sent, clicks, recovered — horizontal bars scaled to the largest.
    let mut rows: Vec<(String, i64, i64, i64)> = Vec::new();
    for c in &stats.campaigns {
        let sent: i64 = c.steps.iter().map(|s| s.sent).sum();
        let clicks: i64 = c.steps.iter().map(|s| s.clicks).sum();
        rows.push((c.campaign.clone(), sent, clicks, c.recovered));
    }
    if rows.is_empty() {
        return "<p class=\"muted\">No carts in the last 7 days.</p>".into();
    }
    let max = rows.iter().map(|r| r.1.max(r.2).max(r.3)).max().unwrap_or(1).max(1) as f64;
    let h = rows.len() * 78 + 10;
    let mut svg = format!(
        "<svg role=\"img\" aria-label=\"Funnel per campaign\" width=\"100%\" height=\"{h}\" viewBox=\"0 0 760 {h}\" preserveAspectRatio=\"xMinYMin meet\">"
    );
    for (i, (name, sent, clicks, rec)) in rows.iter().enumerate() {
        let y = i * 78 + 6;
        let _ = write!(svg, "<text x=\"0\" y=\"{}\" font-size=\"13\" font-weight=\"600\">{}</text>", y + 12, esc(name));
        for (j, (label, v, color)) in
            [("sent", sent, "#3f3f46"), ("clicked", clicks, "#2563eb"), ("recovered", rec, "#16a34a")]
                .iter()
                .enumerate()
        {
            let w = ((**v as f64) / max * 520.0).round().max(1.0);
            let yy = y + 18 + j * 18;
            let _ = write!(
                svg,
                "<text x=\"0\" y=\"{}\" font-size=\"12\" fill=\"#71717a\">{label}</text><rect x=\"90\" y=\"{yy}\" width=\"{w}\" height=\"13\" rx=\"3\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{v}</text>",
                yy + 11,
                96.0 + w,
                yy + 11
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// `GET /ops/`
pub async fn dashboard(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<DashQuery>) -> Response {
    let Some(session) = session(&app, &headers) else {
        return sign_in(StatusCode::OK, None);
    };
    let done = q.done.as_deref().and_then(Done::parse);
    let csrf = app.settings.ops_token.as_ref().map(|t| form_token(t.expose(), &session)).unwrap_or_default();
    match render(&app, done, &csrf).await {
        Ok(html) => html.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dashboard failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                page(
                    "Operations",
                    "<section class=\"err\">The dashboard could not read the database; see the logs.</section>",
                ),
            )
                .into_response()
        }
    }
}

async fn render(app: &App, done: Option<Done>, csrf: &str) -> Result<Html<String>, ops::OpsError> {
    let counts = crate::queue::tables::counts(&app.db, RECOVERY).await.map_err(ops::OpsError::Store)?;
    let now = Utc::now().timestamp_millis();
    let mut tx = app.db.begin().await?;
    let upcoming = tx.upcoming(now, now + 86_400_000, 50).await?;
    let failed_jobs: Vec<_> = [
        crate::queue::tables::list_jobs(
            &mut tx,
            RECOVERY,
            &JobFilter { state: Some("failed".into()), limit: 20, ..JobFilter::default() },
        )
        .await?,
        crate::queue::tables::list_jobs(
            &mut tx,
            RECOVERY,
            &JobFilter { state: Some("dead".into()), limit: 20, ..JobFilter::default() },
        )
        .await?,
    ]
    .concat();
    let failed_sends = tx.failed_sends(20).await?;
    tx.commit().await?;
    let stats = ops::stats(app, Utc::now() - chrono::Duration::days(7), None).await?;
    let set = app.campaigns();

    let mut b = String::new();
    if let Some(d) = done {
        let _ = write!(b, "<div class=\"msg\" role=\"status\">{}</div>", d.text());
    }
    let csrf = esc(csrf);
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/ops/logout\" style=\"text-align:right\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button type=\"submit\">Sign out</button></form>"
    );
    let _ = write!(b, "<section><h2>Queue</h2><div class=\"cards\">");
    for (label, n) in [
        ("pending", counts.pending),
        ("running", counts.running),
        ("failed", counts.failed),
        ("dead", counts.killed),
        ("done", counts.done),
    ] {
        let _ = write!(b, "<div class=\"card\" data-state=\"{label}\"><b>{n}</b><span>{label}</span></div>");
    }
    let _ = write!(b, "</div></section>");

    let _ = write!(b, "<section><h2>Upcoming sends · next 24 h</h2>");
    if upcoming.is_empty() {
        b.push_str("<p class=\"muted\">Nothing due in the next 24 hours.</p>");
    } else {
        b.push_str("<table><tr><th>Due (UTC)</th><th>Customer's time</th><th>Shop</th><th>Cart</th><th>Campaign</th><th>Step</th></tr>");
        for (shop, cart, campaign, next_step, at, tz, status) in &upcoming {
            let tz: chrono_tz::Tz = tz.as_deref().and_then(|t| t.parse().ok()).unwrap_or(chrono_tz::UTC);
            let step = if status == "active" {
                "idle check".to_owned()
            } else {
                campaign
                    .as_deref()
                    .and_then(|c| set.get(c))
                    .and_then(|c| c.steps.get(usize::try_from(*next_step).ok()?))
                    .map_or_else(|| "-".into(), |s| s.id.value.clone())
            };
            let t = from_millis(*at);
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                t.format("%a %H:%M:%S"),
                t.with_timezone(&tz).format("%a %H:%M %Z"),
                esc(shop),
                esc(cart),
                esc(campaign.as_deref().unwrap_or("-")),
                esc(&step)
            );
        }
        b.push_str("</table>");
    }
    b.push_str("</section>");

    let _ = write!(b, "<section><h2>Failures</h2>");
    if failed_jobs.is_empty() && failed_sends.is_empty() {
        b.push_str("<p class=\"muted\">No failed jobs or messages.</p>");
    }
    if !failed_jobs.is_empty() {
        b.push_str("<table><tr><th>Job</th><th>State</th><th>Cart</th><th>Error</th><th></th></tr>");
        for j in &failed_jobs {
            let _ = write!(
                b,
                "<tr data-job=\"{id}\"><td><code>{id}</code></td><td>{}</td><td>{}</td><td class=\"err\">{}</td>\
                 <td><form method=\"post\" action=\"/ops/ui/jobs/{id}/retry\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button type=\"submit\">Retry</button></form></td></tr>",
                esc(&j.state),
                esc(j.cart.as_deref().unwrap_or("-")),
                esc(j.last_result.as_deref().unwrap_or("")),
                id = esc(&j.id)
            );
        }
        b.push_str("</table>");
    }
    if !failed_sends.is_empty() {
        b.push_str("<table><tr><th>When (UTC)</th><th>Shop</th><th>Cart</th><th>Message</th><th>Reason</th></tr>");
        for (shop, cart, step, channel, reason, at) in &failed_sends {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td class=\"err\">{}</td></tr>",
                at.map(|t| from_millis(t).format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default(),
                esc(shop),
                esc(cart),
                esc(step),
                esc(channel),
                esc(reason.as_deref().unwrap_or(""))
            );
        }
        b.push_str("</table>");
    }
    b.push_str("</section>");

    let _ = write!(b, "<section><h2>Funnel · last 7 days</h2>{}", bar_chart(&stats));
    for c in &stats.campaigns {
        let lift = c.lift.as_ref().map_or_else(
            || "lift needs carts in both arms".to_owned(),
            |l| {
                format!(
                    "lift {:+.1} points (95% CI {:+.1} to {:+.1})",
                    l.difference * 100.0,
                    l.ci95.0 * 100.0,
                    l.ci95.1 * 100.0
                )
            },
        );
        let revenue: Vec<String> = c.revenue.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let _ = write!(
            b,
            "<p><b>{}</b>: {} entered, {} recovered, revenue {}; {}</p>",
            esc(&c.campaign),
            c.entered,
            c.recovered,
            esc(&if revenue.is_empty() { "0".to_owned() } else { revenue.join(", ") }),
            esc(&lift)
        );
    }
    b.push_str("</section>");
    Ok(page("Operations", &b))
}
