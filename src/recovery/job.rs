//! The recovery job: load the cart, decide, act.
//!
//! Every path ends in a commit, never a drop: on SQLite a job's transaction is a turn in a
//! transaction shared with other jobs ([`crate::store::TxGroup`]), and a dropped turn rolls
//! back the whole group.

use tracing::{info, warn};

use super::decide::{self, Action, Ending, Facts, Need, Next, Plan, Verdict, cart_tz, fmt_local};
use super::faults::{self, Point};
use super::send::{self, Outcome};
use super::{JobError, StepRun, now_ms};
use crate::app::App;
use crate::campaign::Campaign;
use crate::config::Shop;
use crate::domain::{CartStatus, from_millis};
use crate::queue::{RecoveryJob, reschedule, schedule};
use crate::store::{CartRow, GroupTx, StoreError, Tx};

/// Run one recovery job.
pub async fn run(app: &App, job: RecoveryJob) -> Result<(), JobError> {
    let now = now_ms();
    let mut tx = app.jobs_tx.begin().await?;
    let Some(cart) = tx.cart_by_id(job.cart).await? else {
        tx.commit().await?;
        return Ok(());
    };
    if cart.seq != job.seq {
        tx.commit().await?;
        return Ok(()); // superseded by a newer job
    }
    let shop = app.shop(&cart.shop);
    if shop.is_none() {
        warn!(shop = %cart.shop, "shop is no longer configured; sequence stops");
    }
    let set = app.campaigns();
    let mut facts = Facts { now, shop, campaigns: &set, paused: None, sent_since: None };
    let Plan { mut cart, lines, action } = loop {
        match decide::decide(&cart, &facts) {
            Verdict::Plan(plan) => break *plan,
            Verdict::Need(Need::Paused(name)) => facts.paused = Some(tx.campaign_paused(&name).await?),
            Verdict::Need(Need::SentSince { customer, since }) => {
                facts.sent_since = Some(tx.sent_to_customer_since(&customer, since).await?);
            }
        }
    };
    for (what, detail) in &lines {
        tx.log(cart.id, now, what, detail).await?;
    }
    match (action, shop) {
        (Action::Later(at), _) => reschedule(&mut tx, &mut cart, at).await?,
        (Action::Finish(campaign), Some(shop)) => finish(&mut tx, shop, campaign, &mut cart, now).await?,
        (Action::Send { campaign, step, due }, Some(shop)) => {
            let abandoned_at = cart.abandoned_at.unwrap_or(cart.last_activity_at);
            let tz = cart_tz(&cart, shop);
            let step_ctx = StepRun { app, shop, campaign, job, index: step, due, tz, abandoned_at };
            return run_step(&step_ctx, tx, cart).await;
        }
        (Action::Stop | Action::Finish(_) | Action::Send { .. }, _) => tx.save_cart(&cart).await?,
    }
    tx.commit().await?;
    Ok(())
}

/// Send every channel of a due step, then schedule what follows. `tx` holds the decided cart
/// (`cart`), which commits with the first claim: one durable commit before the provider is
/// called, not two.
async fn run_step(s: &StepRun<'_>, mut tx: GroupTx, cart: CartRow) -> Result<(), JobError> {
    tx.save_cart(&cart).await?;
    let step = s.step();
    let mut decided = Some((tx, cart));
    let mut retry_at: Option<i64> = None;
    let mut open = None;
    let channels = &step.channels.value;
    for (i, channel) in channels.iter().enumerate() {
        // The last result commits with the scheduling of the next step (unless a fallback may
        // still have to go out: the cart must not stay locked across a provider call).
        let keep = i + 1 == channels.len() && step.fallback.is_none();
        let (mut outcome, kept) = send::channel(s, *channel, decided.take(), keep).await?;
        open = kept;
        if let (Outcome::FailedForGood, Some(fallback)) = (&outcome, &step.fallback) {
            info!(step = %step.id.value, from = channel.as_str(), to = fallback.value.as_str(), "falling back");
            outcome = send::channel(s, fallback.value, None, false).await?.0;
        }
        if let Outcome::RetryAt(t) = outcome {
            retry_at = Some(retry_at.map_or(t, |r| r.min(t)));
        }
    }
    if let Some((tx, _)) = decided {
        tx.commit().await?;
    }
    let merged = open.is_some();
    let tx = match open {
        Some(tx) => tx,
        None => s.app.jobs_tx.begin().await?,
    };
    next(s, tx, retry_at).await?;
    if merged {
        faults::reach(Point::Completed, "").await;
    }
    Ok(())
}

/// Schedule what follows the step (a retry, the next step, or the end) and commit `tx`, which
/// may already hold the step's last result.
async fn next(s: &StepRun<'_>, mut tx: GroupTx, retry_at: Option<i64>) -> Result<(), JobError> {
    if retry_at.is_none() && advance_unread(s, &mut tx).await? {
        tx.commit().await?;
        return Ok(());
    }
    let Some(mut cart) = tx.cart_by_id(s.job.cart).await? else {
        tx.commit().await?; // keeps a result recorded in this transaction
        return Ok(());
    };
    if cart.seq != s.job.seq {
        tx.commit().await?;
        return Ok(());
    }
    let now = now_ms();
    let (next, skipped) = decide::after_step(&cart, s.campaign, s.index, retry_at, s.tz, now);
    for id in skipped {
        tx.log(cart.id, now, "skipped", &format!("step {id}: its `when` does not match this cart's stage/reason"))
            .await?;
    }
    match next {
        Next::Retry(at) => reschedule(&mut tx, &mut cart, at).await?,
        Next::Exit => {
            cart.next_run_at = None;
            tx.save_cart(&cart).await?;
        }
        Next::Step { step, at, what, line } => {
            cart.next_step = i64::try_from(step).unwrap_or(i64::MAX);
            tx.log(cart.id, now, what, &line).await?;
            reschedule(&mut tx, &mut cart, at).await?;
        }
        Next::Finish => {
            cart.next_step = i64::try_from(s.campaign.steps.len()).unwrap_or(i64::MAX);
            finish(&mut tx, s.shop, s.campaign, &mut cart, now).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The common case of [`next`] without reading the cart again: no step left depends on the
/// cart (`when`), no order can expire, and the cart is as its job left it (still abandoned,
/// same `seq`). Then the next step is scheduled, or the sequence is complete, by one guarded
/// update. `false`: nothing was written; read the cart and decide.
async fn advance_unread(s: &StepRun<'_>, tx: &mut GroupTx) -> Result<bool, JobError> {
    let rest = s.campaign.steps.get(s.index + 1..).unwrap_or_default();
    if s.campaign.expire_after.is_some() || rest.iter().any(|st| st.when.is_some()) {
        return Ok(false);
    }
    let next_step = i64::try_from(s.index + 1).unwrap_or(i64::MAX);
    let now = now_ms();
    let Some(next) = rest.first() else {
        if !schedule::advance(tx, s.job, next_step, None).await? {
            return Ok(false);
        }
        tx.log(s.job.cart, now, "completed", "every step has been dealt with").await?;
        return Ok(true);
    };
    let (at, what, line) = decide::next_step_time(s.campaign, next, s.abandoned_at, s.tz, now);
    if !schedule::advance(tx, s.job, next_step, Some(at)).await? {
        return Ok(false);
    }
    tx.log(s.job.cart, now, what, &line).await?;
    Ok(true)
}

/// After the last step: an unpaid order still unpaid at `expire_after` is expired (the shop
/// gets a signed `order.expire` so it cancels the order and releases the stock); every other
/// sequence is complete.
async fn finish(tx: &mut Tx, shop: &Shop, campaign: &Campaign, cart: &mut CartRow, now: i64) -> Result<(), StoreError> {
    match decide::ending(cart, campaign, now) {
        Ending::Complete => {
            cart.set_status(CartStatus::Completed);
            cart.next_run_at = None;
            tx.save_cart(cart).await?;
            tx.log(cart.id, now, "completed", "every step has been dealt with").await
        }
        Ending::AwaitPayment(at) => {
            if cart.next_run_at != Some(at) {
                let line = format!("order expires {} unless it is paid", fmt_local(at, cart_tz(cart, shop)));
                tx.log(cart.id, now, "scheduled", &line).await?;
            }
            reschedule(tx, cart, at).await
        }
        Ending::Expire => expire(tx, shop, campaign, cart, now).await,
    }
}

/// Expire an unpaid order: tell the shop, end the sequence.
async fn expire(tx: &mut Tx, shop: &Shop, campaign: &Campaign, cart: &mut CartRow, now: i64) -> Result<(), StoreError> {
    let expire_after = campaign.expire_after.as_ref().map(|e| e.value.to_string()).unwrap_or_default();
    let order = cart.order_id.clone();
    let announced = crate::outbound::enqueue(
        tx,
        shop,
        "order.expire",
        serde_json::json!({
            "order_id": order,
            "cart_id": (!cart.external_id.starts_with("order:")).then_some(&cart.external_id),
            "campaign": campaign.name.value,
            "unpaid_since": from_millis(cart.last_activity_at).to_rfc3339(),
            "reason": format!("not paid within {expire_after}"),
        }),
        now,
    )
    .await?;
    cart.set_status(CartStatus::Completed);
    cart.exit_reason = Some("order_expired".into());
    cart.next_run_at = None;
    tx.save_cart(cart).await?;
    let note = if announced {
        "order.expire sent to the shop, which cancels the order and releases the stock"
    } else {
        "the shop has no events_url: it was not told (set shops.<id>.events_url)"
    };
    let order = order.as_deref().unwrap_or("(no id)");
    tx.log(cart.id, now, "expired", &format!("order {order} not paid within {expire_after}; {note}")).await
}
