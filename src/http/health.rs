//! Liveness and readiness.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;

use crate::app::App;

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// The database answers and every migration this binary knows is applied.
pub async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, String) {
    if let Err(e) = app.db.ping().await {
        tracing::warn!(error = %e, "readiness check failed");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unreachable".into());
    }
    match app.db.pending_migrations().await {
        Ok(p) if p.is_empty() => (StatusCode::OK, "ready".into()),
        Ok(p) => (StatusCode::SERVICE_UNAVAILABLE, format!("migrations not applied: {p:?} (run cartback migrate)")),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "cannot read the migration history".into())
        }
    }
}
