//! Recovery: what a due cart needs now, and doing it — re-read the cart, decide, claim,
//! render, deliver, record, schedule the next job.

mod faults;
mod job;
pub mod simulate;

pub use job::{JobError, MAX_SEND_ATTEMPTS, PAUSE_RECHECK_MS, backoff_ms, in_holdout, run};
