//! Events Cartback sends to shops (`incentive.issued`, `order.expire`): their deliveries, and
//! a retry button for those given up on. Payloads are not shown: they may name customers.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Action, Done, Tab, button, esc, failed, page, redirect, refuse_post, sign_in_form, signed_in};
use crate::app::App;
use crate::domain::from_millis;
use crate::ops;
use crate::store::outbound::OutboundState;

/// Deliveries listed.
const SHOWN: i64 = 100;

/// The list's filter and the result of an action.
#[derive(Debug, Default, Deserialize)]
pub struct OutboundQuery {
    #[serde(default)]
    state: String,
    done: Option<String>,
}

fn at(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".into(), |t| from_millis(t).format("%Y-%m-%d %H:%M:%S").to_string())
}

/// `GET /ops/ui/outbound`
pub async fn outbound(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<OutboundQuery>) -> Response {
    let Some(csrf) = signed_in(&app, &headers) else {
        return sign_in_form();
    };
    let rows = match ops::outbound::list(&app, OutboundState::parse(&q.state), SHOWN).await {
        Ok(r) => r,
        Err(e) => return failed(Tab::Outbound, &e),
    };
    let mut b = Done::banner(q.done.as_deref());
    b.push_str(
        "<section><h1>Outbound webhooks</h1><form class=\"filters\" method=\"get\" action=\"/ops/ui/outbound\">\
         <label for=\"o-state\">State<select id=\"o-state\" name=\"state\"><option value=\"\">any</option>",
    );
    for s in ["pending", "delivered", "dead"] {
        let sel = if q.state == s { " selected" } else { "" };
        let _ = write!(b, "<option{sel}>{s}</option>");
    }
    b.push_str("</select></label><button type=\"submit\">Filter</button></form></section><section>");
    if rows.is_empty() {
        b.push_str("<p class=\"muted\">No outbound webhooks.</p>");
    } else {
        b.push_str(
            "<table><thead><tr><th scope=\"col\">Id</th><th scope=\"col\">Event</th><th scope=\"col\">Shop</th>\
             <th scope=\"col\">Created (UTC)</th><th scope=\"col\">Attempts</th><th scope=\"col\">State</th>\
             <th scope=\"col\">Last error</th><th scope=\"col\"><span class=\"skip\">Actions</span></th></tr></thead><tbody>",
        );
        for r in &rows {
            let state = if r.delivered_at.is_some() {
                format!("delivered {}", at(r.delivered_at))
            } else if r.dead_at.is_some() {
                format!("dead since {}", at(r.dead_at))
            } else {
                "pending".into()
            };
            let retry = if r.dead_at.is_some() && r.delivered_at.is_none() {
                button(&format!("/ops/ui/outbound/{}/retry", r.id), &csrf, "Retry")
            } else {
                String::new()
            };
            let _ = write!(
                b,
                "<tr data-outbound=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"err\">{}</td><td>{retry}</td></tr>",
                r.id,
                esc(&r.public_id),
                esc(&r.kind),
                esc(&r.shop),
                at(Some(r.created_at)),
                r.attempts,
                esc(&state),
                esc(r.last_error.as_deref().unwrap_or("")),
            );
        }
        b.push_str("</tbody></table>");
        if rows.len() as i64 == SHOWN {
            let _ = write!(b, "<p class=\"muted\">The newest {SHOWN} are shown.</p>");
        }
    }
    b.push_str("</section>");
    page("Outbound", Some(Tab::Outbound), &b).into_response()
}

/// `POST /ops/ui/outbound/{id}/retry`
pub async fn retry_outbound(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<Action>,
) -> Response {
    if let Some(refused) = refuse_post(&app, &headers, &f.csrf) {
        return refused;
    }
    let done = match ops::outbound::retry(&app, id).await {
        Ok(_) => Done::Redelivering,
        Err(e) => {
            tracing::warn!(error = %e, "dashboard outbound retry failed");
            Done::NotRedelivered
        }
    };
    redirect("/ops/ui/outbound", done)
}
