//! `POST /v1/shops/{shop}/events`: Standard Webhooks signed generic events.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{MAX_BODY, Problem};
use crate::app::App;
use crate::domain::WebhookId;
use crate::ingest::{Accepted, Ingest};
use crate::ingest::{generic, signature};

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The configured shop (404 otherwise) and the body, read up to [`MAX_BODY`] (413 beyond).
async fn shop_and_body<'a>(
    app: &'a App,
    shop: &str,
    body: Body,
    count: &(dyn Fn(&str) + Sync),
) -> Result<(&'a crate::config::Shop, axum::body::Bytes), Problem> {
    let shop = app.shop(shop).ok_or_else(|| {
        count("unknown_shop");
        Problem::new(StatusCode::NOT_FOUND, "Unknown shop", format!("no shop {shop:?} is configured"))
    })?;
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        count("too_large");
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Body too large",
            format!("webhook bodies are limited to {MAX_BODY} bytes"),
        )
    })?;
    Ok((shop, bytes))
}

/// Verify, parse and durably accept one event. Nothing is stored unless the answer is 200/202.
#[tracing::instrument(skip_all, fields(shop = %shop))]
pub async fn generic(
    State(app): State<Arc<App>>,
    State(ingest): State<Ingest>,
    Path(shop): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let count = |result: &str| app.metrics.event("unknown", result);
    let (shop, bytes) = shop_and_body(&app, &shop, body, &count).await?;
    let now = chrono::Utc::now().timestamp();
    signature::verify(
        &shop.webhook_key,
        header(&headers, "webhook-id"),
        header(&headers, "webhook-timestamp"),
        header(&headers, "webhook-signature"),
        &bytes,
        now,
    )
    .map_err(|e| {
        count("unauthorized");
        Problem::new(StatusCode::UNAUTHORIZED, "Invalid signature", e.to_string())
    })?;
    let webhook_id = WebhookId::parse(header(&headers, "webhook-id").unwrap_or_default())
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "Invalid header", e.to_string()).field("webhook-id"))?;
    let event = generic::parse(&bytes)
        .and_then(|e| generic::check_time(e.occurred_at, chrono::Utc::now(), "occurred_at").map(|()| e))
        .inspect_err(|_| count("invalid"))
        .map_err(payload_problem)?;
    respond(&app, &ingest, shop, &webhook_id, &event, &bytes).await
}

/// A refused payload: 400 for broken JSON, 422 naming the field otherwise.
fn payload_problem(e: generic::PayloadError) -> Problem {
    match e {
        generic::PayloadError::Syntax { .. } => {
            Problem::new(StatusCode::BAD_REQUEST, "Malformed JSON", e.to_string()).field("(body)")
        }
        generic::PayloadError::Field { ref field, .. } => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid event", e.to_string()).field(field.clone())
        }
    }
}

/// Accept a verified, parsed event and answer 202 (new) or 200 (repeat).
async fn respond(
    app: &App,
    ingest: &Ingest,
    shop: &crate::config::Shop,
    webhook_id: &WebhookId,
    event: &crate::domain::ShopEvent,
    bytes: &[u8],
) -> Result<Response, Problem> {
    let kind = event.kind.as_str();
    match ingest.accept(shop, webhook_id, event, bytes).await {
        Ok(Accepted::New { outcome }) => {
            app.metrics.event(kind, "accepted");
            Ok((StatusCode::ACCEPTED, Json(json!({ "status": "accepted", "outcome": outcome }))).into_response())
        }
        Ok(Accepted::Duplicate) => {
            app.metrics.event(kind, "duplicate");
            Ok((StatusCode::OK, Json(json!({ "status": "duplicate" }))).into_response())
        }
        Err(e) => {
            app.metrics.event(kind, "error");
            Err(Problem::internal(&e))
        }
    }
}

/// `POST /v1/shops/{shop}/shopify`: Shopify topics by `X-Shopify-Topic`.
#[tracing::instrument(skip_all, fields(shop = %shop))]
pub async fn shopify(
    State(app): State<Arc<App>>,
    State(ingest): State<Ingest>,
    Path(shop): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    use crate::ingest::shopify::{self, Topic};
    let count = |result: &str| app.metrics.event("shopify", result);
    let (shop, bytes) = shop_and_body(&app, &shop, body, &count).await?;
    shopify::verify(&shop.webhook_key, header(&headers, "x-shopify-hmac-sha256"), &bytes).map_err(|e| {
        count("unauthorized");
        Problem::new(StatusCode::UNAUTHORIZED, "Invalid signature", e.to_string())
    })?;
    let topic_name = header(&headers, "x-shopify-topic").unwrap_or_default();
    let Some(topic) = Topic::parse(topic_name) else {
        // Acknowledge topics we do not use, or Shopify retries them for two days.
        count("ignored");
        return Ok((
            StatusCode::OK,
            Json(json!({ "status": "ignored", "detail": format!("topic {topic_name:?} is not used") })),
        )
            .into_response());
    };
    let webhook_id = WebhookId::parse(header(&headers, "x-shopify-webhook-id").unwrap_or_default()).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "Invalid header", e.to_string()).field("x-shopify-webhook-id")
    })?;
    // The payload's own time field: orders carry `created_at`, checkouts `updated_at`.
    let time_field = if matches!(topic, shopify::Topic::OrderCreate) { "created_at" } else { "updated_at" };
    let event = shopify::parse(topic, &bytes)
        .and_then(|e| generic::check_time(e.occurred_at, chrono::Utc::now(), time_field).map(|()| e))
        .inspect_err(|_| count("invalid"))
        .map_err(payload_problem)?;
    respond(&app, &ingest, shop, &webhook_id, &event, &bytes).await
}
