//! Recovery: what a due cart needs now, and doing it.
//!
//! A job ([`job`]) re-reads its cart, asks [`decide`] what the cart needs (a pure function of
//! the cart, its campaign and a few facts), and carries it out: a later job, the end of the
//! sequence, or a step. A step's messages go out one channel at a time ([`send`]): claim the
//! send, render it ([`message`], with an incentive code from [`incentive`] when the step has
//! one), hand it to the transport, record the result; then the next step is scheduled.

mod decide;
mod faults;
mod incentive;
mod job;
mod message;
mod resend;
mod send;
pub mod simulate;

use chrono::Utc;
use rand::Rng;

pub use decide::{Action, Ending, Facts, Need, Next, Plan, Verdict, decide, in_holdout};
pub use job::run;
pub use resend::{Settled, mark_delivered, resend};

use crate::store::StoreError;

/// Delivery attempts per message before it is marked failed.
pub const MAX_SEND_ATTEMPTS: i64 = 8;

/// How often a paused campaign's due message checks whether it was resumed.
pub const PAUSE_RECHECK_MS: i64 = 15_000;

/// A step being sent: what every channel of it shares.
pub(crate) struct StepRun<'a> {
    pub app: &'a crate::app::App,
    pub shop: &'a crate::config::Shop,
    pub campaign: &'a crate::campaign::Campaign,
    pub job: crate::queue::RecoveryJob,
    /// Index of the step in the campaign.
    pub index: usize,
    /// When it fell due (Unix ms).
    pub due: i64,
    /// The customer's zone.
    pub tz: chrono_tz::Tz,
    /// When the cart was abandoned (Unix ms), which every step's time counts from.
    pub abandoned_at: i64,
}

impl StepRun<'_> {
    /// The step.
    pub fn step(&self) -> &crate::campaign::Step {
        &self.campaign.steps[self.index]
    }
}

/// Job failures that are not delivery outcomes (those are recorded, not raised).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Storage failed; the queue retries the job.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// This worker stalled until its claim's lease ran out before the hand-over, so it did not
    /// hand the message over; the queue retries the job, which takes the claim over.
    #[error("the claim's lease ran out before the hand-over (this worker stalled); nothing was sent")]
    LeaseRanOut,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Backoff before retry `attempt` (1-based): 30 s doubling, capped at 1 h, ±20 % jitter.
pub fn backoff_ms(attempt: i64) -> i64 {
    let base = 30_000_i64.saturating_mul(1_i64 << attempt.clamp(1, 20).saturating_sub(1)).min(3_600_000);
    let jitter = rand::rng().random_range(-(base / 5)..=base / 5);
    base + jitter
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_grows_within_bounds() {
        for attempt in 1..=12 {
            let base = (30_000_i64 << (attempt - 1)).min(3_600_000);
            for _ in 0..50 {
                let b = backoff_ms(attempt);
                assert!(b >= base - base / 5 && b <= base + base / 5, "attempt {attempt}: {b}");
            }
        }
        // And they grow: any delay of attempt n+1 is longer than any of attempt n, until both
        // sit at the 1 h cap (doubling beats ±20 % jitter: 0.8 × 2 > 1.2).
        for attempt in 1..=6 {
            for _ in 0..200 {
                let (now, next) = (backoff_ms(attempt), backoff_ms(attempt + 1));
                assert!(next > now, "attempt {attempt}: {now} then {next}");
            }
        }
    }
}
