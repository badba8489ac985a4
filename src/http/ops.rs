//! `/ops/*` (JSON for operators) and `/metrics`, behind the bearer `ops_token`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::Problem;
use crate::app::App;
use crate::ops::{self, OpsError};
use crate::queue::tables::JobFilter;

impl From<OpsError> for Problem {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::NotFound(m) => Problem::new(StatusCode::NOT_FOUND, "Not found", m),
            OpsError::Conflict(m) => Problem::new(StatusCode::CONFLICT, "Conflict", m),
            OpsError::Replayed(m) => Problem::new(StatusCode::CONFLICT, "Request replayed", m).field("webhook-id"),
            OpsError::Store(e) => Problem::internal(&e),
        }
    }
}

/// Query of `GET /ops/jobs`.
#[derive(Debug, Deserialize)]
pub struct JobsQuery {
    state: Option<String>,
    shop: Option<String>,
    campaign: Option<String>,
    cart: Option<String>,
    limit: Option<i64>,
}

const STATES: [&str; 7] = ["pending", "scheduled", "running", "done", "failed", "dead", "cancelled"];

/// `GET /ops/jobs`
pub async fn list_jobs(State(app): State<Arc<App>>, Query(q): Query<JobsQuery>) -> Result<Response, Problem> {
    if let Some(s) = &q.state
        && !STATES.contains(&s.as_str())
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "Invalid query",
            format!("state must be one of {}", STATES.join(", ")),
        )
        .field("state"));
    }
    let filter = JobFilter {
        state: q.state,
        shop: q.shop,
        campaign: q.campaign,
        cart: q.cart,
        limit: q.limit.unwrap_or(100),
        ..JobFilter::default()
    };
    Ok(Json(ops::jobs(&app, &filter).await?).into_response())
}

/// `GET /ops/jobs/{id}`
pub async fn show_job(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, Problem> {
    Ok(Json(ops::job(&app, &id).await?).into_response())
}

/// `POST /ops/jobs/{id}/retry`
pub async fn retry_job(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, Problem> {
    Ok(Json(json!({ "status": "queued", "detail": ops::retry_job(&app, &id).await? })).into_response())
}

/// `POST /ops/jobs/{id}/cancel`
pub async fn cancel_job(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, Problem> {
    Ok(Json(json!({ "status": "cancelled", "detail": ops::cancel_job(&app, &id).await? })).into_response())
}

/// Query of `GET /ops/outbound`.
#[derive(Debug, Deserialize)]
pub struct OutboundQuery {
    state: Option<String>,
    limit: Option<i64>,
}

/// `GET /ops/outbound`: events sent to shops, newest first.
pub async fn list_outbound(State(app): State<Arc<App>>, Query(q): Query<OutboundQuery>) -> Result<Response, Problem> {
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(crate::store::outbound::OutboundState::parse(s).ok_or_else(|| {
            Problem::new(StatusCode::BAD_REQUEST, "Invalid query", "state must be one of pending, delivered, dead")
                .field("state")
        })?),
    };
    Ok(Json(ops::outbound::list(&app, state, q.limit.unwrap_or(100)).await?).into_response())
}

/// `POST /ops/outbound/{id}/retry`
pub async fn retry_outbound(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, Problem> {
    let id: i64 = id.parse().map_err(|_| {
        Problem::new(StatusCode::BAD_REQUEST, "Invalid path", format!("{id:?} is not an outbound event id (a number)"))
            .field("id")
    })?;
    Ok(Json(json!({ "status": "queued", "detail": ops::outbound::retry(&app, id).await? })).into_response())
}

/// Query with an optional shop.
#[derive(Debug, Deserialize)]
pub struct ShopQuery {
    shop: Option<String>,
}

/// `GET /ops/carts/{id}`
pub async fn show_cart(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<ShopQuery>,
) -> Result<Response, Problem> {
    Ok(Json(ops::cart(&app, &id, q.shop.as_deref()).await?).into_response())
}

/// Query of `GET /ops/stats`.
#[derive(Debug, Deserialize)]
pub struct StatsQuery {
    since: Option<String>,
    shop: Option<String>,
    by: Option<String>,
}

/// `GET /ops/stats?since=7d`
pub async fn stats(State(app): State<Arc<App>>, Query(q): Query<StatsQuery>) -> Result<Response, Problem> {
    let since = q.since.as_deref().unwrap_or("7d");
    let period =
        humantime::parse_duration(since).ok().and_then(|d| chrono::Duration::from_std(d).ok()).ok_or_else(|| {
            Problem::new(StatusCode::BAD_REQUEST, "Invalid query", format!("since {since:?} is not a duration like 7d"))
                .field("since")
        })?;
    match q.by.as_deref() {
        None | Some("campaign") => {
            Ok(Json(ops::stats(&app, Utc::now() - period, q.shop.as_deref()).await?).into_response())
        }
        Some("reason") => {
            Ok(Json(ops::reasons::by_reason(&app, Utc::now() - period, q.shop.as_deref()).await?).into_response())
        }
        Some(other) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "Invalid query",
            format!("by {other:?}: campaign (default) or reason"),
        )
        .field("by")),
    }
}

/// `POST /ops/campaigns/{name}/pause` and `/resume`
pub async fn pause(
    State(app): State<Arc<App>>,
    Path((name, action)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let paused = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => return Err(Problem::new(StatusCode::NOT_FOUND, "Not found", "use /pause or /resume")),
    };
    Ok(Json(json!({ "paused": paused, "detail": ops::set_paused(&app, &name, paused).await? })).into_response())
}

/// `GET /metrics` in the Prometheus text format.
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    if let Ok(c) = crate::queue::tables::counts(&app.db, crate::queue::RECOVERY).await {
        for (state, n) in [
            ("pending", c.pending),
            ("running", c.running),
            ("done", c.done),
            ("failed", c.failed),
            ("killed", c.killed),
        ] {
            app.metrics.jobs.get_or_create(&crate::metrics::StateLabels { state: state.into() }).set(n);
        }
    }
    app.metrics.smtp_circuit_open.set(i64::from(app.email.circuit_open()));
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], app.metrics.encode())
        .into_response()
}

/// `DELETE /v1/shops/{shop}/customers/{id}`: erase a person by the shop's customer id.
/// Authorised by the ops token, or by the shop itself with a Standard Webhooks signature
/// over the request line and body ([`request_payload`](crate::ingest::signature::request_payload)),
/// so the signature names the customer it erases; each signed `webhook-id` works once.
pub async fn erase_customer(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Path((shop, id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    use crate::ingest::signature;
    let Some(s) = app.shop(&shop) else {
        return Err(Problem::new(StatusCode::NOT_FOUND, "Unknown shop", format!("no shop {shop:?} is configured")));
    };
    let mut once = None;
    // The bearer token, or the shop's signature; never the dashboard's cookie (a browser
    // sends that along with requests other sites make).
    if !matches!(super::auth::caller(&app, &headers), Ok(super::auth::Caller::Bearer)) {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        signature::verify(
            &s.webhook_key,
            h("webhook-id"),
            h("webhook-timestamp"),
            h("webhook-signature"),
            &signature::request_payload("DELETE", uri.path(), b""),
            Utc::now().timestamp(),
        )
        .map_err(|e| {
            Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", format!("ops token or shop signature required: {e}"))
        })?;
        once = h("webhook-id");
    }
    let who = ops::privacy::Person { shop, customer_id: Some(id), ..Default::default() };
    Ok(Json(ops::privacy::erase_once(&app, &who, once, false).await?).into_response())
}
