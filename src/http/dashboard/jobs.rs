//! Jobs by state with filters and paging, one job's detail, and the retry and cancel buttons.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::carts::timeline_table;
use super::{Action, Done, Tab, button, enc, esc, failed, page, redirect, refuse_post, sign_in_form, signed_in};
use crate::app::App;
use crate::domain::from_millis;
use crate::ops;
use crate::queue::tables::{JobFilter, JobRecord};

/// Jobs on one page of the list.
const PER_PAGE: i64 = 50;

/// The states an operator can filter by, as the queue tables name them.
const STATES: [&str; 7] = ["pending", "scheduled", "running", "failed", "dead", "cancelled", "done"];

/// The list's filters, from its GET form (empty fields mean "any").
#[derive(Debug, Default, Deserialize)]
pub struct JobsQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    shop: String,
    #[serde(default)]
    campaign: String,
    #[serde(default)]
    step: String,
    #[serde(default)]
    page: Option<u32>,
    done: Option<String>,
}

impl JobsQuery {
    fn some(s: &str) -> Option<String> {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_owned())
    }
    /// The query string of these filters on another page.
    fn href(&self, page: u32) -> String {
        format!(
            "/ops/ui/jobs?state={}&shop={}&campaign={}&step={}&page={page}",
            enc(&self.state),
            enc(&self.shop),
            enc(&self.campaign),
            enc(&self.step)
        )
    }
}

fn secs(t: i64) -> String {
    from_millis(t.saturating_mul(1000)).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The step a job's cart is at, by id.
fn step_name(app: &App, j: &JobRecord) -> Option<String> {
    let set = app.campaigns();
    let c = set.get(j.campaign.as_deref()?)?;
    Some(c.steps.get(usize::try_from(j.next_step?).ok()?)?.id.value.clone())
}

fn cart_link(shop: Option<&str>, cart: Option<&str>) -> String {
    match (shop, cart) {
        (Some(s), Some(c)) => format!("<a href=\"/ops/ui/carts/{}/{}\">{}</a>", enc(s), enc(c), esc(c)),
        _ => "-".into(),
    }
}

/// The buttons a job's state allows, posting back to `back`.
fn actions(j: &JobRecord, csrf: &str, back: &str) -> String {
    let id = enc(&j.id);
    let mut out = String::new();
    if ["failed", "dead", "cancelled"].contains(&j.state.as_str()) {
        out.push_str(&button(&format!("/ops/ui/jobs/{id}/retry?back={back}"), csrf, "Retry"));
    }
    if ["pending", "scheduled", "failed"].contains(&j.state.as_str()) {
        out.push(' ');
        out.push_str(&button(&format!("/ops/ui/jobs/{id}/cancel?back={back}"), csrf, "Cancel"));
    }
    out
}

/// `GET /ops/ui/jobs`
pub async fn jobs(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<JobsQuery>) -> Response {
    let Some(csrf) = signed_in(&app, &headers) else {
        return sign_in_form();
    };
    let page_no = q.page.unwrap_or(1).max(1);
    let campaign = JobsQuery::some(&q.campaign);
    let step = JobsQuery::some(&q.step);
    let mut note = None;
    let step_index = match (&campaign, &step) {
        (_, None) => None,
        (None, Some(_)) => {
            note = Some("Choose a campaign to filter by step: step ids belong to their campaign.".to_owned());
            None
        }
        (Some(c), Some(s)) => {
            let set = app.campaigns();
            let i = set.get(c).and_then(|k| k.steps.iter().position(|x| x.id.value == *s));
            if i.is_none() {
                note = Some(format!("Campaign {c} has no step {s}."));
            }
            i.and_then(|i| i64::try_from(i).ok()).or(Some(-1))
        }
    };
    let filter = JobFilter {
        state: JobsQuery::some(&q.state).filter(|s| STATES.contains(&s.as_str())),
        shop: JobsQuery::some(&q.shop),
        campaign: campaign.clone(),
        cart: None,
        step: step_index,
        limit: PER_PAGE + 1,
        offset: i64::from(page_no - 1) * PER_PAGE,
    };
    let mut rows = match ops::jobs(&app, &filter).await {
        Ok(r) => r,
        Err(e) => return failed(Tab::Jobs, &e),
    };
    let more = rows.len() > usize::try_from(PER_PAGE).unwrap_or(50);
    rows.truncate(usize::try_from(PER_PAGE).unwrap_or(50));

    let mut b = Done::banner(q.done.as_deref());
    b.push_str("<section><h1>Jobs</h1><form class=\"filters\" method=\"get\" action=\"/ops/ui/jobs\">");
    let _ =
        write!(b, "<label for=\"f-state\">State<select id=\"f-state\" name=\"state\"><option value=\"\">any</option>");
    for s in STATES {
        let sel = if q.state == s { " selected" } else { "" };
        let _ = write!(b, "<option{sel}>{s}</option>");
    }
    b.push_str("</select></label>");
    let _ =
        write!(b, "<label for=\"f-shop\">Shop<input id=\"f-shop\" name=\"shop\" value=\"{}\"></label>", esc(&q.shop));
    b.push_str(
        "<label for=\"f-campaign\">Campaign<select id=\"f-campaign\" name=\"campaign\"><option value=\"\">any</option>",
    );
    for name in app.campaigns().names() {
        let sel = if q.campaign == name { " selected" } else { "" };
        let _ = write!(b, "<option{sel}>{}</option>", esc(name));
    }
    b.push_str("</select></label>");
    let _ = write!(
        b,
        "<label for=\"f-step\">Step<input id=\"f-step\" name=\"step\" value=\"{}\" placeholder=\"step id\"></label>\
         <button type=\"submit\">Filter</button></form></section>",
        esc(&q.step)
    );
    if let Some(n) = note {
        let _ = write!(b, "<div class=\"msg bad\" role=\"status\">{}</div>", esc(&n));
    }
    b.push_str("<section>");
    if rows.is_empty() {
        b.push_str("<p class=\"muted\">No jobs match.</p>");
    } else {
        b.push_str(
            "<table><thead><tr><th scope=\"col\">Job</th><th scope=\"col\">State</th><th scope=\"col\">Due (UTC)</th>\
             <th scope=\"col\">Attempts</th><th scope=\"col\">Shop</th><th scope=\"col\">Cart</th><th scope=\"col\">Campaign · step</th>\
             <th scope=\"col\">Last error</th><th scope=\"col\"><span class=\"skip\">Actions</span></th></tr></thead><tbody>",
        );
        for j in &rows {
            let _ = write!(
                b,
                "<tr data-job=\"{id}\"><td><a href=\"/ops/ui/jobs/{href}\"><code>{id}</code></a></td><td>{}</td><td>{}</td><td>{}/{}</td>\
                 <td>{}</td><td>{}</td><td>{} · {}</td><td class=\"err\">{}</td><td>{}</td></tr>",
                esc(&j.state),
                secs(j.run_at),
                j.attempts,
                j.max_attempts,
                esc(j.shop.as_deref().unwrap_or("-")),
                cart_link(j.shop.as_deref(), j.cart.as_deref()),
                esc(j.campaign.as_deref().unwrap_or("-")),
                esc(&step_name(&app, j).unwrap_or_else(|| "-".into())),
                esc(&j.error().unwrap_or_default()),
                actions(j, &csrf, "jobs"),
                id = esc(&j.id),
                href = enc(&j.id)
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
    if page_no > 1 {
        let _ = write!(b, "<a href=\"{}\" rel=\"prev\">← Newer</a>", esc(&q.href(page_no - 1)));
    }
    let _ = write!(b, "<span>Page {page_no}</span>");
    if more {
        let _ = write!(b, "<a href=\"{}\" rel=\"next\">Older →</a>", esc(&q.href(page_no + 1)));
    }
    b.push_str("</nav></section>");
    page("Jobs", Some(Tab::Jobs), &b).into_response()
}

/// `GET /ops/ui/jobs/{id}`
pub async fn job(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<super::DoneQuery>,
) -> Response {
    let Some(csrf) = signed_in(&app, &headers) else {
        return sign_in_form();
    };
    let view = match ops::job(&app, &id).await {
        Ok(v) => v,
        Err(ops::OpsError::NotFound(_)) => {
            let body = format!("<section><h1>Job</h1><p>There is no job <code>{}</code>.</p></section>", esc(&id));
            return (axum::http::StatusCode::NOT_FOUND, page("Job", Some(Tab::Jobs), &body)).into_response();
        }
        Err(e) => return failed(Tab::Jobs, &e),
    };
    let j = &view.job;
    let mut b = Done::banner(q.done.as_deref());
    let _ = write!(b, "<section><h1>Job <code>{}</code></h1><dl>", esc(&j.id));
    let rows: [(&str, String); 10] = [
        ("State", esc(&j.state)),
        ("Queue status", esc(&j.status)),
        ("Attempts", format!("{} of {}", j.attempts, j.max_attempts)),
        ("Due (UTC)", secs(j.run_at)),
        (
            if j.state == "running" { "Held by" } else { "Last worker" },
            esc(&j
                .lock_by
                .as_deref()
                .map_or_else(|| "-".into(), |w| format!("{w} since {}", secs(j.lock_at.unwrap_or(0))))),
        ),
        ("Finished (UTC)", j.done_at.map_or_else(|| "-".into(), secs)),
        ("Cart", cart_link(j.shop.as_deref(), j.cart.as_deref())),
        ("Campaign", esc(j.campaign.as_deref().unwrap_or("-"))),
        ("Step", esc(view.step.as_deref().unwrap_or("-"))),
        (
            "Superseded",
            if view.superseded {
                "yes: a newer job of this cart replaced it, so it does nothing".into()
            } else {
                "no".into()
            },
        ),
    ];
    for (k, v) in rows {
        let _ = write!(b, "<dt>{k}</dt><dd>{v}</dd>");
    }
    let _ = write!(
        b,
        "<dt>Last result</dt><dd><pre class=\"{}\">{}</pre></dd></dl><p>{}</p></section>",
        if j.error().is_some() { "err" } else { "" },
        esc(j.last_result.as_deref().unwrap_or("-")),
        actions(j, &csrf, "job")
    );
    let _ = write!(
        b,
        "<section><h2>The cart's last timeline lines</h2>{}<p class=\"muted\">The cart's page shows them all, in the customer's time too.</p></section>",
        timeline_table(&view.timeline, None)
    );
    page("Job", Some(Tab::Jobs), &b).into_response()
}

/// Where a job button goes back to (a fixed list; default: the job's page).
#[derive(Debug, Default, Deserialize)]
pub struct Back {
    back: Option<String>,
}

impl Back {
    fn path(&self, id: &str) -> String {
        match self.back.as_deref() {
            Some("overview") => "/ops/".into(),
            Some("jobs") => "/ops/ui/jobs".into(),
            _ => format!("/ops/ui/jobs/{}", enc(id)),
        }
    }
}

/// Retry or cancel: the same checks, one operator action, back where the button was.
async fn act(app: &App, headers: &HeaderMap, id: &str, back: &Back, csrf: &str, retry: bool) -> Response {
    if let Some(refused) = refuse_post(app, headers, csrf) {
        return refused;
    }
    let result = if retry { ops::retry_job(app, id).await } else { ops::cancel_job(app, id).await };
    let done = match (result, retry) {
        (Ok(_), true) => Done::Retried,
        (Ok(_), false) => Done::Cancelled,
        (Err(e), _) => {
            tracing::warn!(error = %e, retry, "dashboard job action failed");
            if retry { Done::NotRetried } else { Done::NotCancelled }
        }
    };
    redirect(&back.path(id), done)
}

/// `POST /ops/ui/jobs/{id}/retry`
pub async fn retry(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(back): Query<Back>,
    Form(f): Form<Action>,
) -> Response {
    act(&app, &headers, &id, &back, &f.csrf, true).await
}

/// `POST /ops/ui/jobs/{id}/cancel`
pub async fn cancel(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(back): Query<Back>,
    Form(f): Form<Action>,
) -> Response {
    act(&app, &headers, &id, &back, &f.csrf, false).await
}
