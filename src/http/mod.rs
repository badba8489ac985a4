//! HTTP: webhooks in, customer links, health. One router, errors mapped in one place.

mod auth;
mod conn;
mod dashboard;
mod health;
mod links;
mod ops;
mod problem;
mod sms;
mod webhooks;

// For the fuzz targets in fuzz/: the checks of untrusted input that live here.
#[doc(hidden)]
pub use auth::{form_token_valid, session_valid};
#[doc(hidden)]
pub use sms::keyword;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use problem::Problem;

use crate::app::App;
use crate::ingest::Ingest;

/// What the handlers share: the application and the ingest writer (each handler extracts the
/// part it needs).
#[derive(Debug, Clone)]
pub struct HttpState {
    app: Arc<App>,
    ingest: Ingest,
}

impl axum::extract::FromRef<HttpState> for Arc<App> {
    fn from_ref(s: &HttpState) -> Self {
        s.app.clone()
    }
}

impl axum::extract::FromRef<HttpState> for Ingest {
    fn from_ref(s: &HttpState) -> Self {
        s.ingest.clone()
    }
}

/// Bodies larger than this are refused with 413 before they are read in full.
pub const MAX_BODY: usize = 1024 * 1024;

/// The router with every route; events go to `ingest`.
pub fn router(app: Arc<App>, ingest: Ingest) -> Router {
    let protected = Router::new()
        .route("/ops/jobs", get(ops::list_jobs))
        .route("/ops/jobs/{id}", get(ops::show_job))
        .route("/ops/jobs/{id}/retry", post(ops::retry_job))
        .route("/ops/jobs/{id}/cancel", post(ops::cancel_job))
        .route("/ops/carts/{id}", get(ops::show_cart))
        .route("/ops/stats", get(ops::stats))
        .route("/ops/outbound", get(ops::list_outbound))
        .route("/ops/outbound/{id}/retry", post(ops::retry_outbound))
        .route("/ops/campaigns/{name}/{action}", post(ops::pause))
        .route("/metrics", get(ops::metrics))
        .route_layer(from_fn_with_state(app.clone(), auth::require_token));
    Router::new()
        .merge(protected)
        .route("/ops/", get(dashboard::dashboard))
        .route("/ops", get(dashboard::dashboard))
        .route("/ops/login", post(dashboard::login))
        .route("/ops/logout", post(dashboard::logout))
        .route("/ops/ui/jobs", get(dashboard::jobs))
        .route("/ops/ui/jobs/{id}", get(dashboard::job))
        .route("/ops/ui/jobs/{id}/retry", post(dashboard::retry))
        .route("/ops/ui/jobs/{id}/cancel", post(dashboard::cancel))
        .route("/ops/ui/campaigns", get(dashboard::campaigns))
        .route("/ops/ui/campaigns/{name}/pause", post(dashboard::pause))
        .route("/ops/ui/campaigns/{name}/resume", post(dashboard::resume))
        .route("/ops/ui/carts", get(dashboard::carts).post(dashboard::search))
        .route("/ops/ui/carts/{shop}/{cart}", get(dashboard::cart))
        .route("/ops/ui/charts", get(dashboard::charts))
        .route("/ops/ui/outbound", get(dashboard::outbound))
        .route("/ops/ui/outbound/{id}/retry", post(dashboard::retry_outbound))
        .route("/v1/shops/{shop}/events", post(webhooks::generic))
        .route("/v1/shops/{shop}/shopify", post(webhooks::shopify))
        .route("/v1/sms/status", post(sms::status))
        .route("/v1/sms/inbound", post(sms::inbound))
        .route("/v1/shops/{shop}/customers/{id}", axum::routing::delete(ops::erase_customer))
        .route("/r/{token}", get(links::restore))
        .route("/u/{token}", get(links::unsubscribe_page).post(links::unsubscribe))
        .route("/f/{token}", get(links::feedback))
        .route("/healthz", get(health::healthz))
        .route("/openapi.json", get(openapi))
        .route("/readyz", get(health::readyz))
        .layer(
            // Spans name the route pattern, never the raw URI: paths carry link tokens.
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
                tracing::info_span!("request", method = %req.method(), route)
            }),
        )
        .with_state(HttpState { app, ingest })
}

/// The OpenAPI description of every public endpoint (`docs/openapi.json`).
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Every route the router serves, as `(METHOD, path)`; a test keeps `docs/openapi.json` in step.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/ops/jobs"),
    ("get", "/ops/jobs/{id}"),
    ("post", "/ops/jobs/{id}/retry"),
    ("post", "/ops/jobs/{id}/cancel"),
    ("get", "/ops/carts/{id}"),
    ("get", "/ops/stats"),
    ("get", "/ops/outbound"),
    ("post", "/ops/outbound/{id}/retry"),
    ("post", "/ops/campaigns/{name}/{action}"),
    ("get", "/metrics"),
    ("get", "/ops/"),
    ("post", "/ops/login"),
    ("post", "/ops/logout"),
    ("get", "/ops/ui/jobs"),
    ("get", "/ops/ui/jobs/{id}"),
    ("post", "/ops/ui/jobs/{id}/retry"),
    ("post", "/ops/ui/jobs/{id}/cancel"),
    ("get", "/ops/ui/campaigns"),
    ("post", "/ops/ui/campaigns/{name}/pause"),
    ("post", "/ops/ui/campaigns/{name}/resume"),
    ("get", "/ops/ui/carts"),
    ("post", "/ops/ui/carts"),
    ("get", "/ops/ui/carts/{shop}/{cart}"),
    ("get", "/ops/ui/charts"),
    ("get", "/ops/ui/outbound"),
    ("post", "/ops/ui/outbound/{id}/retry"),
    ("post", "/v1/shops/{shop}/events"),
    ("post", "/v1/shops/{shop}/shopify"),
    ("post", "/v1/sms/status"),
    ("post", "/v1/sms/inbound"),
    ("delete", "/v1/shops/{shop}/customers/{id}"),
    ("get", "/r/{token}"),
    ("get", "/u/{token}"),
    ("post", "/u/{token}"),
    ("get", "/f/{token}"),
    ("get", "/healthz"),
    ("get", "/openapi.json"),
    ("get", "/readyz"),
];

/// Serve on `listener` until `shutdown` resolves.
pub async fn launch(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ingest = Ingest::start(&app);
    serve(listener, router(app, ingest), shutdown).await
}

/// A request's body must arrive within this long.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(15);
/// On shutdown, requests being handled get this long to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
pub use conn::{IDLE_READ, MAX_CONNECTIONS};

/// Serve `router` on `listener` until `shutdown` resolves, with the limits of [`conn`]
/// (connection cap, idle reads) and [`BODY_TIMEOUT`]. At shutdown the server stops
/// accepting and closes idle keep-alive connections; requests being handled get up to
/// [`SHUTDOWN_GRACE`] to answer, and a client still sending a request is not waited for
/// longer than that.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (asked, asked_rx) = tokio::sync::oneshot::channel::<()>();
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_TIMEOUT));
    let server = axum::serve(conn::Limited::new(listener), router).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = asked.send(());
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        r = &mut server => return r,
        _ = asked_rx => {}
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!("HTTP connections still open after the shutdown grace; closing");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn openapi_describes_every_route() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("docs/openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        for (method, path) in super::ROUTES {
            assert!(doc["paths"][path][method].is_object(), "{method} {path} is missing from docs/openapi.json");
        }
        let documented: usize =
            doc["paths"].as_object().map_or(0, |p| p.values().map(|m| m.as_object().map_or(0, |m| m.len())).sum());
        assert_eq!(documented, super::ROUTES.len(), "docs/openapi.json documents a route the router does not serve");
    }
}
