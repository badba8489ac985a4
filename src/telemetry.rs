//! Logging: `tracing` to stderr, human-readable or JSON; `RUST_LOG` filters.
//!
//! No personal data or token reaches a log at any level. Cartback's own lines mask addresses
//! and never print tokens; libraries whose verbose output would carry customers' data are
//! capped whatever `RUST_LOG` asks for ([`CAPPED`]).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

use crate::config::LogFormat;

/// Targets held at `warn` even under `RUST_LOG=debug`: handlebars logs every value it
/// renders (customers' names, cart contents) at debug, and the HTTP stacks log headers and
/// bodies at trace.
pub const CAPPED: &[&str] = &["handlebars", "hyper", "hyper_util", "h2", "reqwest", "rustls", "lettre"];

/// The filter: `RUST_LOG`, else `default`, with [`CAPPED`] applied on top.
fn filter(default: &str) -> EnvFilter {
    let mut f = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    for target in CAPPED {
        if let Ok(d) = format!("{target}=warn").parse::<Directive>() {
            f = f.add_directive(d);
        }
    }
    f
}

/// Install the global subscriber once; later calls are no-ops. `quiet` lists further
/// `target=level` defaults (the job queue's chatter) that `RUST_LOG` may override.
pub fn init(format: LogFormat, quiet: &str) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(&format!("info,sqlx=warn,{quiet}")))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Install a subscriber with a fixed default filter (used by the demo to keep output quiet).
pub fn init_with(default_filter: &str) {
    let _ = tracing_subscriber::fmt().with_env_filter(filter(default_filter)).with_writer(std::io::stderr).try_init();
}
