//! A hook for crash tests: stop the worker at a named point of a send so a test can
//! `SIGKILL` or `SIGSTOP` it exactly there.
//!
//! `CRASH_TEST_POINT=after_claim|after_body|before_dot|after_accept|after_complete` makes the first send that
//! reaches that point log `fault point reached` (to stderr, whatever the log filter) and wait
//! `CRASH_TEST_HOLD` (humantime, default: forever) before going on. Unset, a point costs
//! one comparison.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A point in the life of one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// The claim is committed; nothing was handed to a provider.
    Claimed,
    /// Over SMTP: the body is with the relay, the hand-over is not recorded yet.
    BodySent,
    /// The hand-over is committed; over SMTP the body is with the relay and the final `.`
    /// is not sent yet.
    HandedOver,
    /// The provider accepted the message; the result is not recorded yet.
    Accepted,
    /// The result is committed; the job has not finished.
    Completed,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Self::Claimed => "after_claim",
            Self::BodySent => "after_body",
            Self::HandedOver => "before_dot",
            Self::Accepted => "after_accept",
            Self::Completed => "after_complete",
        }
    }
}

struct Armed {
    point: String,
    hold: Option<Duration>,
    fired: AtomicBool,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let point = std::env::var("CRASH_TEST_POINT").ok()?;
            let hold = std::env::var("CRASH_TEST_HOLD").ok().and_then(|h| humantime::parse_duration(&h).ok());
            Some(Armed { point, hold, fired: AtomicBool::new(false) })
        })
        .as_ref()
}

/// Stop here if this point is armed and has not fired yet.
pub async fn reach(point: Point, send: &str) {
    let Some(a) = armed() else { return };
    if a.point != point.name() || a.fired.swap(true, Ordering::SeqCst) {
        return;
    }
    eprintln!("fault point reached: {} send={send}", point.name());
    match a.hold {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending::<()>().await,
    }
}
