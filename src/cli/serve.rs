//! `cartback serve` (HTTP + worker) and `cartback worker` (worker only).

use anyhow::Context;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{Cli, Failure, settings};
use crate::app::App;

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// `kill -HUP <pid>` re-reads the campaign files; a set with errors is refused and the old one stays.
async fn reload_on_sighup(app: std::sync::Arc<App>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            match app.reload_campaigns() {
                Ok(n) => info!(campaigns = n, "campaigns reloaded"),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "campaign reload refused; the previous campaigns stay in force")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = app;
}

pub async fn serve(cli: &Cli, http: bool) -> Result<(), Failure> {
    let s = settings(cli)?;
    crate::telemetry::init(s.log_format, crate::queue::LOG_DEFAULTS);
    if s.shops.is_empty() {
        warn!("no [shops.*] configured: every webhook will answer 404 (see README, Configuration)");
    }
    let listen = s.listen;
    let app = App::build(s).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(reload_on_sighup(app.clone()));
    let worker = tokio::spawn(crate::worker::run_worker(app.clone(), stop_rx.clone()));
    if http {
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
        info!(listen = %listener.local_addr().context("local address")?, "listening");
        let mut rx = stop_rx.clone();
        let http = tokio::spawn(crate::http::launch(listener, app.clone(), async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        shutdown_signal().await;
        info!("shutting down");
        let _ = stop_tx.send(true);
        http.await.context("http task")?.context("http server")?;
    } else {
        shutdown_signal().await;
        info!("shutting down");
        let _ = stop_tx.send(true);
    }
    // The jobs in hand get `worker.shutdown_grace` to finish; a send cut off after that is left
    // to its claim lease and taken over by the next worker (docs/delivery.md).
    let grace = app.settings.worker.shutdown_grace;
    match tokio::time::timeout(grace, worker).await {
        Ok(done) => {
            done.context("worker task")??;
            app.db.close().await;
        }
        // The pool is not closed: closing waits for the connections the cut-off jobs hold.
        Err(_) => warn!(
            grace = %humantime::format_duration(grace),
            "jobs still in hand after the shutdown grace period; stopping anyway (their claims expire and another worker takes them over)"
        ),
    }
    Ok(())
}
