//! Delivery: email over SMTP or into a file outbox, SMS into a file outbox.
//!
//! Every message is identified by its send-log public id: the file outbox writes
//! `<id>.eml` atomically (a retry after a crash rewrites the same file, so its effect is
//! exactly once), and SMTP messages carry `Message-ID: <id@cartback>` so a duplicate
//! from the at-least-once window (see docs/delivery.md) is recognisable downstream.

mod email;
mod relay;
mod sms;

pub use email::{EmailTransport, OutgoingEmail, SmtpOptions, SmtpUrlError};
pub use relay::{Breaker, Route};
pub use sms::{OutgoingSms, SmsTransport, Twilio};

/// How a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying later (timeouts, 4xx SMTP replies, connection trouble).
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Will never succeed (bad address, 5xx SMTP replies).
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The provider asks us to slow down (HTTP 429 / 20429); retry no sooner than the hint.
    #[error("throttled: {0}")]
    Throttled(String, Option<std::time::Duration>),
    /// The recipient opted out at the provider (Twilio 21610): permanent, and the address is suppressed.
    #[error("recipient unsubscribed at the provider: {0}")]
    Unsubscribed(String),
}

async fn write_atomically(
    dir: &std::path::Path,
    name: &str,
    bytes: &[u8],
) -> Result<std::path::PathBuf, DeliveryError> {
    let io = |e: std::io::Error| DeliveryError::Transient(format!("outbox {}: {e}", dir.display()));
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    tokio::fs::write(&tmp, bytes).await.map_err(io)?;
    tokio::fs::rename(&tmp, &path).await.map_err(io)?;
    Ok(path)
}
