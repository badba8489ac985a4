//! Campaigns as loaded, with their steps, and the pause and resume switches. A paused
//! campaign defers its sends; it never drops them.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::{
    Action, Done, DoneQuery, Tab, button, enc, esc, failed, page, redirect, refuse_post, sign_in_form, signed_in,
};
use crate::app::App;
use crate::ops;

/// `GET /ops/ui/campaigns`
pub async fn campaigns(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<DoneQuery>) -> Response {
    let Some(csrf) = signed_in(&app, &headers) else {
        return sign_in_form();
    };
    let list = match ops::console::campaigns(&app).await {
        Ok(l) => l,
        Err(e) => return failed(Tab::Campaigns, &e),
    };
    let mut b = Done::banner(q.done.as_deref());
    b.push_str("<section><h1>Campaigns</h1>");
    if list.is_empty() {
        b.push_str("<p class=\"muted\">No campaign is loaded.</p>");
    } else {
        b.push_str(
            "<table><thead><tr><th scope=\"col\">Campaign</th><th scope=\"col\">Kind</th><th scope=\"col\">Holdout</th>\
             <th scope=\"col\">Steps</th><th scope=\"col\">State</th><th scope=\"col\"><span class=\"skip\">Switch</span></th></tr></thead><tbody>",
        );
        for c in &list {
            let steps: Vec<String> = c
                .steps
                .iter()
                .map(|(id, after, ch)| format!("{} (after {}, {})", esc(id), esc(after), esc(ch)))
                .collect();
            let (state, action, label) =
                if c.paused { ("paused", "resume", "Resume") } else { ("running", "pause", "Pause") };
            let _ = write!(
                b,
                "<tr data-campaign=\"{name}\"><td><b>{name}</b></td><td>{}</td><td>{}</td><td>{}</td><td class=\"state\">{state}</td><td>{}</td></tr>",
                esc(&c.kind),
                esc(&c.holdout),
                steps.join("<br>"),
                button(&format!("/ops/ui/campaigns/{}/{action}", enc(&c.name)), &csrf, &format!("{label} {}", c.name)),
                name = esc(&c.name)
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str(
        "<p class=\"muted\">Pausing defers: due messages wait and go out, in their send windows, after the campaign is resumed.</p></section>",
    );
    page("Campaigns", Some(Tab::Campaigns), &b).into_response()
}

async fn switch(app: &App, headers: &HeaderMap, name: &str, csrf: &str, paused: bool) -> Response {
    if let Some(refused) = refuse_post(app, headers, csrf) {
        return refused;
    }
    let done = match ops::set_paused(app, name, paused).await {
        Ok(_) if paused => Done::Paused,
        Ok(_) => Done::Resumed,
        Err(e) => {
            tracing::warn!(error = %e, "dashboard campaign switch failed");
            Done::NotSwitched
        }
    };
    redirect("/ops/ui/campaigns", done)
}

/// `POST /ops/ui/campaigns/{name}/pause`
pub async fn pause(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<Action>,
) -> Response {
    switch(&app, &headers, &name, &f.csrf, true).await
}

/// `POST /ops/ui/campaigns/{name}/resume`
pub async fn resume(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<Action>,
) -> Response {
    switch(&app, &headers, &name, &f.csrf, false).await
}
