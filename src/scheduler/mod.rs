//! The job queue (apalis) and the recovery state machine that runs on it.
//!
//! One pending job per live cart: a job carries `(cart, seq)`; whoever schedules the next
//! job bumps the cart's `seq` in the same transaction, so an older job finds a different
//! `seq` and does nothing. Nothing is ever cancelled in the queue.

pub mod accept;
mod faults;
pub mod group;
pub mod outbound;
pub mod queue;
mod recovery;

pub use queue::{LATER, QUEUE, RECOVERY, RecoveryJob, run_worker};
