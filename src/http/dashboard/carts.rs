//! The cart search (by the shop's cart id, or the customer's email or phone) and a cart's
//! page: its facts, its messages and its whole timeline in UTC and the customer's time, which
//! answers "why did this customer get — or not get — that message?".

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono_tz::Tz;
use serde::Deserialize;

use super::{Tab, csrf_field, enc, esc, failed, page, refuse_post, sign_in_form, signed_in};
use crate::app::App;
use crate::domain::{Currency, Money, from_millis, mask_email, mask_phone};
use crate::ops;
use crate::ops::console::CartQuery;
use crate::store::{CartRow, LogEntry};

/// Carts listed for one search.
const RESULTS: i64 = 50;

fn money(minor: Option<i64>, currency: Option<&str>) -> String {
    match (minor, currency.and_then(|c| Currency::parse(c).ok())) {
        (Some(m), Some(c)) => format!("{} {}", Money::from_minor(m, c).decimal(), c.code()),
        (Some(m), None) => m.to_string(),
        _ => "-".into(),
    }
}

fn when(ms: i64, tz: Option<Tz>) -> (String, String) {
    let t = from_millis(ms);
    let utc = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let local = tz.map_or_else(String::new, |z| t.with_timezone(&z).format("%a %Y-%m-%d %H:%M %Z").to_string());
    (utc, local)
}

fn customer(c: &CartRow) -> String {
    let parts: Vec<String> =
        [c.email.as_deref().map(mask_email), c.phone.as_deref().map(mask_phone)].into_iter().flatten().collect();
    if parts.is_empty() { "-".into() } else { parts.join(" · ") }
}

/// A timeline as a table, with the customer's time beside UTC when their zone is known.
pub(super) fn timeline_table(lines: &[LogEntry], tz: Option<Tz>) -> String {
    if lines.is_empty() {
        return "<p class=\"muted\">No timeline lines.</p>".into();
    }
    let mut b = String::from("<table class=\"timeline\"><thead><tr><th scope=\"col\">When (UTC)</th>");
    if tz.is_some() {
        b.push_str("<th scope=\"col\">Customer's time</th>");
    }
    b.push_str("<th scope=\"col\">What</th><th scope=\"col\">Why / detail</th></tr></thead><tbody>");
    for l in lines {
        let (utc, local) = when(l.at, tz);
        let _ = write!(b, "<tr data-what=\"{}\"><td>{utc}</td>", esc(&l.what));
        if tz.is_some() {
            let _ = write!(b, "<td>{local}</td>");
        }
        let _ = write!(b, "<td>{}</td><td>{}</td></tr>", esc(&l.what), esc(&l.detail));
    }
    b.push_str("</tbody></table>");
    b
}

fn search_form(csrf: &str, q: &str) -> String {
    format!(
        "<section><h1>Carts</h1><form class=\"filters\" method=\"post\" action=\"/ops/ui/carts\">{}\
         <label for=\"q\">Cart id, customer email or phone<input id=\"q\" name=\"q\" value=\"{}\" size=\"40\" required></label>\
         <button type=\"submit\">Search</button></form>\
         <p class=\"muted\">Email and phone are matched whole, as the shop sent them (a phone in international form, +49…). \
         The search is a form post, so what you type never stands in a URL.</p></section>",
        csrf_field(csrf),
        esc(q)
    )
}

/// `GET /ops/ui/carts`: the search form.
pub async fn carts(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match signed_in(&app, &headers) {
        Some(csrf) => page("Carts", Some(Tab::Carts), &search_form(&csrf, "")).into_response(),
        None => sign_in_form(),
    }
}

/// The search form's body.
#[derive(Debug, Deserialize)]
pub struct Search {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    q: String,
}

/// `POST /ops/ui/carts`: the carts matching a search.
pub async fn search(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<Search>) -> Response {
    if let Some(refused) = refuse_post(&app, &headers, &f.csrf) {
        return refused;
    }
    let mut b = search_form(&f.csrf, &f.q);
    let Some(query) = CartQuery::parse(&f.q) else {
        b.push_str("<div class=\"msg bad\" role=\"status\">Type a cart id, an email address or a phone number.</div>");
        return (StatusCode::UNPROCESSABLE_ENTITY, page("Carts", Some(Tab::Carts), &b)).into_response();
    };
    let found = match ops::console::search_carts(&app, &query, RESULTS).await {
        Ok(f) => f,
        Err(e) => return failed(Tab::Carts, &e),
    };
    b.push_str("<section><h2>Results</h2>");
    if found.is_empty() {
        b.push_str("<p class=\"muted\" role=\"status\">No cart matches.</p>");
    } else {
        b.push_str(
            "<table><thead><tr><th scope=\"col\">Shop</th><th scope=\"col\">Cart</th><th scope=\"col\">Status</th>\
             <th scope=\"col\">Campaign</th><th scope=\"col\">Customer</th><th scope=\"col\">Value</th>\
             <th scope=\"col\">Last activity (UTC)</th></tr></thead><tbody>",
        );
        for c in &found {
            let _ = write!(
                b,
                "<tr><td>{}</td><td><a href=\"/ops/ui/carts/{}/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.shop),
                enc(&c.shop),
                enc(&c.external_id),
                esc(&c.external_id),
                esc(c.status.as_str()),
                esc(c.campaign.as_deref().unwrap_or("-")),
                esc(&customer(c)),
                esc(&money(c.total_minor, c.currency.as_deref())),
                when(c.last_activity_at, None).0
            );
        }
        b.push_str("</tbody></table>");
        if found.len() as i64 == RESULTS {
            let _ = write!(b, "<p class=\"muted\">The {RESULTS} most recently active are shown.</p>");
        }
    }
    b.push_str("</section>");
    page("Carts", Some(Tab::Carts), &b).into_response()
}

/// `GET /ops/ui/carts/{shop}/{cart}`: one cart, its messages and its timeline.
pub async fn cart(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((shop, id)): Path<(String, String)>,
) -> Response {
    if signed_in(&app, &headers).is_none() {
        return sign_in_form();
    }
    let view = match ops::cart(&app, &id, Some(&shop)).await {
        Ok(v) => v,
        Err(ops::OpsError::NotFound(_)) => {
            let body = format!("<section><h1>Cart</h1><p>Shop {} has no cart {}.</p></section>", esc(&shop), esc(&id));
            return (StatusCode::NOT_FOUND, page("Cart", Some(Tab::Carts), &body)).into_response();
        }
        Err(e) => return failed(Tab::Carts, &e),
    };
    let c = &view.cart;
    let tz: Option<Tz> = c.timezone.as_deref().and_then(|t| t.parse().ok());
    let step = c.campaign.as_deref().and_then(|k| {
        app.campaigns().get(k).and_then(|k| k.steps.get(usize::try_from(c.next_step).ok()?).map(|s| s.id.value.clone()))
    });
    let next = c.next_run_at.map_or_else(
        || "-".into(),
        |t| {
            let (utc, local) = when(t, tz);
            format!(
                "{} at {utc} UTC{}",
                step.as_deref().unwrap_or("idle check"),
                if local.is_empty() { String::new() } else { format!(" ({local})") }
            )
        },
    );
    let mut b =
        format!("<section><h1>Cart {} <span class=\"muted\">· {}</span></h1><dl>", esc(&c.external_id), esc(&c.shop));
    let facts: [(&str, String); 11] = [
        ("Status", c.status.as_str().to_owned()),
        (
            "Campaign",
            format!(
                "{}{}",
                c.campaign.as_deref().unwrap_or("none"),
                c.arm.as_deref().map(|a| format!(" ({a} arm)")).unwrap_or_default()
            ),
        ),
        ("Next", next),
        ("Customer", customer(c)),
        ("Consent", format!("email {} · SMS {}", yes(c.accepts_email), yes(c.accepts_sms))),
        (
            "Time zone",
            format!("{} ({})", c.timezone.as_deref().unwrap_or("unknown"), c.timezone_source.as_deref().unwrap_or("-")),
        ),
        ("Locale", c.locale.clone().unwrap_or_else(|| "-".into())),
        ("Value", money(c.total_minor, c.currency.as_deref())),
        (
            "Order",
            c.order_id
                .as_deref()
                .map_or_else(|| "-".into(), |o| format!("{o}, {}", money(c.order_total_minor, c.currency.as_deref()))),
        ),
        ("Exit", c.exit_reason.clone().unwrap_or_else(|| "-".into())),
        ("Abandoned (UTC)", c.abandoned_at.map_or_else(|| "-".into(), |t| when(t, None).0)),
    ];
    for (k, v) in facts {
        let _ = write!(b, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
    }
    b.push_str("</dl></section><section><h2>Messages</h2>");
    if view.sends.is_empty() {
        b.push_str("<p class=\"muted\">No message was sent, skipped or tried.</p>");
    } else {
        b.push_str(
            "<table><thead><tr><th scope=\"col\">Step</th><th scope=\"col\">Channel</th><th scope=\"col\">Outcome</th>\
             <th scope=\"col\">Why</th><th scope=\"col\">Finished (UTC)</th><th scope=\"col\">Customer's time</th><th scope=\"col\">Clicks</th></tr></thead><tbody>",
        );
        for s in &view.sends {
            let (utc, local) = s.send.completed_at.map_or_else(|| ("-".into(), String::new()), |t| when(t, tz));
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{utc}</td><td>{local}</td><td>{}</td></tr>",
                esc(&s.send.step),
                esc(&s.send.channel),
                esc(s.send.status.as_str()),
                esc(s.send.reason.as_deref().unwrap_or("")),
                s.clicks
            );
        }
        b.push_str("</tbody></table>");
    }
    let _ = write!(b, "</section><section><h2>Timeline</h2>{}</section>", timeline_table(&view.timeline, tz));
    page("Cart", Some(Tab::Carts), &b).into_response()
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
