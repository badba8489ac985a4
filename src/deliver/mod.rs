//! Delivery: email over SMTP or into a file outbox, SMS into a file outbox.
//!
//! Every message is identified by its send-log public id: the file outbox writes
//! `<id>.eml` atomically (a retry after a crash rewrites the same file, so its effect is
//! exactly once), and SMTP messages carry `Message-ID: <id@cartback>` so a duplicate
//! from the at-least-once window (see docs/delivery.md) is recognisable downstream.

mod email;
mod relay;
mod sms;
mod smtp_pool;
mod smtp_stream;

pub use email::{EmailTransport, OutgoingEmail, SmtpOptions, SmtpUrlError};
pub use relay::{Breaker, Route};
pub use sms::{OutgoingSms, SmsTransport, Twilio};
pub use smtp_pool::{Gate, Open};

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
    /// The provider refuses Cartback's credentials (SMTP 530/534/535/538, Twilio 20003 or
    /// HTTP 401): the operator's to put right, not the message's fault. Retried with backoff
    /// until `worker.send_give_up` without using up the message's attempts, so a rotated key
    /// fixed within that time loses nothing.
    #[error("credentials refused: {0}")]
    CredentialsRefused(String),
    /// The caller's gate stopped the message before its final `.` (another worker holds
    /// its claim now): nothing was delivered.
    #[error("withheld before the final dot")]
    Withheld,
}

/// Create `dir` (and its parents) readable by the owner only: messages hold addresses,
/// names and signed links, whatever the umask.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Write a file only its owner can read (0600), whatever the umask.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)?.write_all(bytes)
}

/// Write `name` into `dir` so that it appears whole or not at all (a temporary file, then a
/// rename), creating `dir` if needed.
///
/// One write at a time, in one blocking task: every create and rename takes the directory's
/// lock in the kernel, and dozens of jobs writing into one outbox at once spun on that lock
/// for a fifth of the worker's CPU time (measured with `perf` in `cargo bench --bench worker`).
async fn write_atomically(
    dir: &std::path::Path,
    name: &str,
    bytes: &[u8],
) -> Result<std::path::PathBuf, DeliveryError> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let (dir, name, bytes) = (dir.to_owned(), name.to_owned(), bytes.to_vec());
    let shown = dir.display().to_string();
    let write = move || -> std::io::Result<std::path::PathBuf> {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        private_dir(&dir)?;
        let tmp = dir.join(format!(".{name}.tmp"));
        let path = dir.join(&name);
        write_private(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    };
    match tokio::task::spawn_blocking(write).await {
        Ok(written) => written.map_err(|e| DeliveryError::Transient(format!("outbox {shown}: {e}"))),
        Err(e) => Err(DeliveryError::Transient(format!("outbox {shown}: {e}"))),
    }
}
