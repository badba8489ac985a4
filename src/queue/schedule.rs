//! The one rule every recovery job relies on: a cart has exactly one live job, the one that
//! carries the cart's current `seq`. Whoever schedules a job bumps the cart's `seq` in the same
//! transaction, so an older job finds another `seq` and does nothing. Nothing is ever
//! cancelled in the queue. These functions are the only writers of `seq`.

use super::{RecoveryJob, push};
use crate::store::{CartRow, CartStatus, StoreError, Tx};

/// Make sure a job runs for `cart` no later than `needed_at`: bump `seq` and push one if the
/// pending job (if any) runs later than that.
pub async fn ensure_job(tx: &mut Tx, cart: &mut CartRow, needed_at: i64) -> Result<(), StoreError> {
    if cart.next_run_at.is_none_or(|t| t > needed_at) {
        reschedule(tx, cart, needed_at).await?;
    }
    Ok(())
}

/// Replace whatever job is pending for `cart` by one at `at` (the old one becomes a no-op).
pub async fn reschedule(tx: &mut Tx, cart: &mut CartRow, at: i64) -> Result<(), StoreError> {
    cart.seq += 1;
    cart.next_run_at = Some(at);
    tx.save_cart(cart).await?;
    push(tx, RecoveryJob { cart: cart.id, seq: cart.seq, due_ms: None }, crate::domain::from_millis(at)).await
}

/// Move `job`'s cart on to step `next_step` without reading it, if nothing happened to it
/// since the job read it (still abandoned, still at `job.seq`): with `next_at`, the step is
/// due then and a job is pushed for it (the next `seq`); without, the sequence is complete.
/// `false`: the cart changed, nothing was written.
pub async fn advance(tx: &mut Tx, job: RecoveryJob, next_step: i64, next_at: Option<i64>) -> Result<bool, StoreError> {
    let Some(at) = next_at else {
        return tx.advance_cart(job.cart, job.seq, CartStatus::Completed, next_step, job.seq, None).await;
    };
    let seq = job.seq + 1;
    if !tx.advance_cart(job.cart, job.seq, CartStatus::Abandoned, next_step, seq, Some(at)).await? {
        return Ok(false);
    }
    push(tx, RecoveryJob { cart: job.cart, seq, due_ms: None }, crate::domain::from_millis(at)).await?;
    Ok(true)
}
