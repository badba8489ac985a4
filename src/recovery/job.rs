//! The recovery job: re-read the cart, decide, claim, send, record, schedule the next job.

use chrono::Utc;
use chrono_tz::Tz;
use rand::Rng;
use tracing::{info, warn};

use super::faults::{self, Point};
use crate::app::App;
use crate::campaign::schedule::step_time;
use crate::campaign::{Campaign, CampaignKind, Channel, ExitCondition, Step};
use crate::config::Shop;
use crate::deliver::{DeliveryError, OutgoingEmail, OutgoingSms};
use crate::domain::{
    CartItem, Currency, CustomerRef, Email, Locale, Money, Phone, from_millis, mask_email, mask_phone,
};
use crate::incentive::{self, ChosenOffer};
use crate::links::Purpose;
use crate::queue::{RecoveryJob, push, reschedule};
use crate::store::{CartRow, CartStatus, Claim, SendRow, SendStatus, StoreError};

/// Delivery attempts per message before it is marked failed.
pub const MAX_SEND_ATTEMPTS: i64 = 8;

/// How often a paused campaign's due message checks whether it was resumed.
pub const PAUSE_RECHECK_MS: i64 = 15_000;

/// Job failures that are not delivery outcomes (those are recorded, not raised).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Storage failed; the queue retries the job.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn fmt_local(ms: i64, tz: Tz) -> String {
    from_millis(ms).with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z").to_string()
}

fn cart_tz(cart: &CartRow, shop: &Shop) -> Tz {
    cart.timezone.as_deref().and_then(|t| t.parse().ok()).unwrap_or(shop.timezone)
}

/// Backoff before retry `attempt` (1-based): 30 s doubling, capped at 1 h, ±20 % jitter.
pub fn backoff_ms(attempt: i64) -> i64 {
    let base = 30_000_i64.saturating_mul(1_i64 << attempt.clamp(1, 20).saturating_sub(1)).min(3_600_000);
    let jitter = rand::rng().random_range(-(base / 5)..=base / 5);
    base + jitter
}

/// The first step at or after `from` whose `when` matches the cart, and the ids passed over.
fn next_applicable(campaign: &Campaign, from: usize, cart: &CartRow) -> (usize, Vec<String>) {
    let mut i = from;
    let mut skipped = Vec::new();
    while let Some(st) = campaign.steps.get(i) {
        let applies = st
            .when
            .as_ref()
            .is_none_or(|w| w.matches(cart.stage.as_deref(), cart.reason.as_deref(), cart.reason_detail.as_deref()));
        if applies {
            break;
        }
        skipped.push(st.id.value.clone());
        i += 1;
    }
    (i, skipped)
}

/// Whether the cart still wants this step sent (re-checked right before every send).
fn exit_reason(cart: &CartRow, campaign: &Campaign) -> Result<Option<&'static str>, StoreError> {
    Ok(match cart.status() {
        CartStatus::Abandoned => None,
        CartStatus::Emptied if !campaign.exit_when.value.contains(&ExitCondition::CartEmptied) => None,
        CartStatus::Recovered => Some("order placed"),
        CartStatus::Emptied => Some("cart emptied"),
        CartStatus::Unsubscribed => Some("unsubscribed"),
        CartStatus::Active => Some("customer active again"),
        CartStatus::Holdout | CartStatus::NotEntered | CartStatus::Completed => Some("not in a sequence"),
    })
}

fn audience_mismatch(campaign: &Campaign, cart: &CartRow, shop: &Shop) -> Option<String> {
    let a = &campaign.audience;
    let currency = cart.currency.as_deref().and_then(|c| Currency::parse(c).ok());
    let total = currency.zip(cart.total_minor).map(|(c, m)| Money::from_minor(m, c));
    for (bound, is_min) in [(&a.min_total, true), (&a.max_total, false)] {
        let Some(bound) = bound else { continue };
        let Some(total) = total else {
            return Some("cart has no total".into());
        };
        match bound.for_currency(total.currency(), shop.currency) {
            None => {
                return Some(format!("the audience has no amount bound in {}", total.currency()));
            }
            Some(b) if is_min && total.minor() < b.minor() => {
                return Some(format!("cart total {total} is below {b}"));
            }
            Some(b) if !is_min && total.minor() > b.minor() => {
                return Some(format!("cart total {total} is above {b}"));
            }
            _ => {}
        }
    }
    if let Some(channels) = &a.channels {
        let reachable = |ch: &Channel| match ch {
            Channel::Email => cart.email.is_some() && cart.accepts_email,
            Channel::Sms => cart.phone.is_some() && cart.accepts_sms,
        };
        if !channels.iter().any(reachable) {
            let names: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
            return Some(format!("customer is not reachable by {} (address and consent)", names.join(" or ")));
        }
    }
    if let Some(stages) = &a.stages
        && !cart.stage.as_ref().is_some_and(|s| stages.contains(s))
    {
        return Some(format!("stage {} is not in the audience", cart.stage.as_deref().unwrap_or("(none)")));
    }
    if let Some(reasons) = &a.reasons
        && !cart.reason.as_ref().is_some_and(|r| reasons.contains(r))
    {
        return Some(format!("reason {} is not in the audience", cart.reason.as_deref().unwrap_or("(none)")));
    }
    let orders = u32::try_from(cart.orders_count).unwrap_or(0);
    if a.min_orders.is_some_and(|n| orders < n) {
        return Some(format!("customer has {orders} orders, fewer than the audience's minimum"));
    }
    if a.max_orders.is_some_and(|n| orders > n) {
        return Some(format!("customer has {orders} orders, more than the audience's maximum"));
    }
    None
}

/// Deterministic holdout: the same customer is always in or out of a campaign's control group.
pub fn in_holdout(customer: &str, campaign: &str, permille: u16) -> bool {
    use sha2::{Digest, Sha256};
    if permille == 0 {
        return false;
    }
    let h = Sha256::digest(format!("{campaign}\0{customer}").as_bytes());
    let bucket = u16::from_be_bytes([h[0], h[1]]) % 1000;
    bucket < permille
}

/// The shop allows the first reminder email without marketing consent (a transactional
/// message about the customer's own cart); never a later step, never SMS.
fn transactional_ok(shop: &Shop, campaign: &Campaign, step: &Step, channel: Channel) -> bool {
    shop.transactional_first_reminder
        && channel == Channel::Email
        && campaign.steps.first().is_some_and(|s| s.id.value == step.id.value)
}

/// Run one recovery job.
pub async fn run(app: &App, job: RecoveryJob) -> Result<(), JobError> {
    let now = now_ms();
    let mut tx = app.jobs_tx.begin().await?;
    let Some(mut cart) = tx.cart_by_id(job.cart).await? else {
        // Ended by commit, not by drop: a dropped turn rolls back the jobs grouped with it.
        tx.commit().await?;
        return Ok(());
    };
    if cart.seq != job.seq {
        tx.commit().await?;
        return Ok(()); // superseded by a newer job
    }
    let Some(shop) = app.shop(&cart.shop) else {
        warn!(shop = %cart.shop, "shop is no longer configured; sequence stops");
        cart.next_run_at = None;
        tx.save_cart(&cart).await?;
        tx.log(cart.id, now, "stopped", "shop is no longer configured").await?;
        tx.commit().await?;
        return Ok(());
    };
    let set = app.campaigns();
    let tz = cart_tz(&cart, shop);
    let mut status = cart.status();
    let campaign: &Campaign = match cart.campaign.as_deref() {
        Some(name) => match set.get(name) {
            Some(c) => c,
            None => {
                // Removed or renamed by a reload: wait for it to come back rather than drop the sequence.
                let at = now + 15 * 60_000;
                if cart.next_run_at.is_none_or(|t| t < now) {
                    tx.log(
                        cart.id,
                        now,
                        "deferred",
                        &format!("campaign {name:?} is not loaded; checking again every 15 minutes"),
                    )
                    .await?;
                }
                reschedule(&mut tx, &mut cart, at).await?;
                tx.commit().await?;
                return Ok(());
            }
        },
        None if matches!(status, CartStatus::Active | CartStatus::Abandoned) => {
            let kind =
                if cart.kind == CampaignKind::UnpaidOrder { CampaignKind::UnpaidOrder } else { CampaignKind::Cart };
            let candidates = set.for_shop_kind(shop.id.as_str(), &shop.campaign, kind);
            let first_idle = candidates.iter().map(|c| c.abandon_after.get().num_milliseconds()).min().unwrap_or(0);
            let idle_at = cart.last_activity_at + first_idle;
            if status == CartStatus::Active && now < idle_at {
                reschedule(&mut tx, &mut cart, idle_at).await?;
                tx.commit().await?;
                return Ok(());
            }
            let mut reasons = Vec::new();
            let chosen = candidates.into_iter().find(|c| match audience_mismatch(c, &cart, shop) {
                Some(why) => {
                    reasons.push(format!("campaign {}: {why}", c.name.value));
                    false
                }
                None => true,
            });
            match chosen {
                Some(c) => c,
                None => {
                    cart.set_status(CartStatus::NotEntered);
                    cart.next_run_at = None;
                    tx.save_cart(&cart).await?;
                    tx.log(cart.id, now, "not_entered", &reasons.join("; ")).await?;
                    tx.commit().await?;
                    return Ok(());
                }
            }
        }
        None => {
            // Exited, holdout or not entered: nothing to decide.
            cart.next_run_at = None;
            tx.save_cart(&cart).await?;
            tx.commit().await?;
            return Ok(());
        }
    };

    if status == CartStatus::Active {
        let idle_at = cart.last_activity_at + campaign.abandon_after.get().num_milliseconds();
        if now < idle_at {
            reschedule(&mut tx, &mut cart, idle_at).await?;
            tx.commit().await?;
            return Ok(());
        }
        cart.set_status(CartStatus::Abandoned);
        cart.abandoned_at = Some(idle_at);
        status = CartStatus::Abandoned;
        tx.log(
            cart.id,
            now,
            "abandoned",
            &format!("no activity for {} (since {})", campaign.abandon_after, fmt_local(cart.last_activity_at, tz)),
        )
        .await?;
    }

    if status == CartStatus::Abandoned && cart.campaign.is_none() {
        let name = campaign.name.value.clone();
        cart.campaign = Some(name.clone());
        let who = cart.customer_ref.as_ref().map_or_else(|| cart.public_id.clone(), CustomerRef::key);
        if in_holdout(&who, &name, campaign.holdout.0) {
            cart.arm = Some("holdout".into());
            cart.set_status(CartStatus::Holdout);
            cart.next_run_at = None;
            tx.save_cart(&cart).await?;
            tx.log(
                cart.id,
                now,
                "holdout",
                &format!("campaign {name}: in the control group; no messages, counted for lift"),
            )
            .await?;
            tx.commit().await?;
            return Ok(());
        }
        cart.arm = Some("treatment".into());
        tx.log(
            cart.id,
            now,
            "entered",
            &format!("campaign {name} (time zone {tz}, from {})", cart.timezone_source.as_deref().unwrap_or("?")),
        )
        .await?;
    }

    if exit_reason(&cart, campaign)?.is_some() {
        // Nothing to send (exited, holdout, …): this job was the last one.
        cart.next_run_at = None;
        tx.save_cart(&cart).await?;
        tx.commit().await?;
        return Ok(());
    }

    let (step_index, skipped) = next_applicable(campaign, usize::try_from(cart.next_step).unwrap_or(usize::MAX), &cart);
    for id in skipped {
        tx.log(cart.id, now, "skipped", &format!("step {id}: its `when` does not match this cart's stage/reason"))
            .await?;
    }
    cart.next_step = i64::try_from(step_index).unwrap_or(i64::MAX);
    let Some(step) = campaign.steps.get(step_index) else {
        finish(&mut tx, shop, campaign, &mut cart, now).await?;
        tx.commit().await?;
        return Ok(());
    };
    let abandoned_at = cart.abandoned_at.unwrap_or(cart.last_activity_at);
    let (due, what, line) = plan_step(campaign, step, abandoned_at, tz);
    if now < due {
        if cart.next_run_at != Some(due) {
            tx.log(cart.id, now, what, &line).await?;
        }
        reschedule(&mut tx, &mut cart, due).await?;
        tx.commit().await?;
        return Ok(());
    }

    // Paused by an operator: the message waits, it is never dropped.
    if tx.campaign_paused(&campaign.name.value).await? {
        if cart.next_run_at.is_none_or(|t| t <= due) {
            tx.log(
                cart.id,
                now,
                "deferred",
                &format!("step {}: campaign {} is paused by an operator", step.id.value, campaign.name.value),
            )
            .await?;
        }
        reschedule(&mut tx, &mut cart, now + PAUSE_RECHECK_MS).await?;
        tx.commit().await?;
        return Ok(());
    }

    // Frequency cap: per customer, across channels and campaigns; over-cap sends wait.
    if let (Some(cap), Some(who)) = (&campaign.frequency_cap, cart.customer_ref.clone()) {
        let per = cap.per.get().num_milliseconds();
        let sent = tx.sent_to_customer_since(&who, now - per).await?;
        let max = usize::try_from(cap.max).unwrap_or(usize::MAX);
        if sent.len() >= max {
            let frees_at = sent[sent.len() - max] + per + 1;
            let plan = step_time(from_millis(frees_at), tz, None, campaign.send_window.as_ref());
            let at = plan.at.timestamp_millis();
            tx.log(
                cart.id,
                now,
                "deferred",
                &format!(
                    "step {}: frequency cap {} per {} reached; next allowed {}",
                    step.id.value,
                    cap.max,
                    cap.per,
                    fmt_local(at, tz)
                ),
            )
            .await?;
            reschedule(&mut tx, &mut cart, at).await?;
            tx.commit().await?;
            return Ok(());
        }
    }
    // What this job decided (abandonment, campaign entry) commits with the first claim: one
    // durable commit before the provider is called, not two.
    tx.save_cart(&cart).await?;
    let mut decided = Some((tx, cart));

    let mut retry_at: Option<i64> = None;
    let mut open = None;
    let channels = &step.channels.value;
    for (i, channel) in channels.iter().enumerate() {
        // The last result commits with the scheduling of the next step (unless a fallback
        // may still have to go out: the cart must not stay locked across a provider call).
        let keep = i + 1 == channels.len() && step.fallback.is_none();
        let (mut outcome, kept) =
            send_channel(app, shop, campaign, job, step, *channel, due, tz, decided.take(), keep).await?;
        open = kept;
        if let (Outcome::FailedForGood, Some(fallback)) = (&outcome, &step.fallback) {
            info!(step = %step.id.value, from = channel.as_str(), to = fallback.value.as_str(), "falling back");
            outcome = send_channel(app, shop, campaign, job, step, fallback.value, due, tz, None, false).await?.0;
        }
        match outcome {
            Outcome::Done | Outcome::FailedForGood | Outcome::Exited => {}
            Outcome::RetryAt(t) => retry_at = Some(retry_at.map_or(t, |r: i64| r.min(t))),
        }
    }
    if let Some((tx, _)) = decided {
        tx.commit().await?;
    }
    let merged = open.is_some();
    let tx = match open {
        Some(tx) => tx,
        None => app.jobs_tx.begin().await?,
    };
    after_step(tx, job, retry_at, shop, campaign, step_index, abandoned_at, tz).await?;
    if merged {
        faults::reach(Point::Completed, "").await;
    }
    Ok(())
}

/// Schedule what follows a step (a retry, the next step, or the end) and commit `tx`, which
/// may already hold the step's last result.
#[allow(clippy::too_many_arguments)]
async fn after_step(
    mut tx: crate::store::GroupTx,
    job: RecoveryJob,
    retry_at: Option<i64>,
    shop: &Shop,
    campaign: &Campaign,
    step_index: usize,
    abandoned_at: i64,
    tz: Tz,
) -> Result<(), JobError> {
    if retry_at.is_none() && advance_unread(&mut tx, job, campaign, step_index, abandoned_at, tz).await? {
        tx.commit().await?;
        return Ok(());
    }
    let Some(mut cart) = tx.cart_by_id(job.cart).await? else {
        tx.commit().await?; // keeps a result recorded in this transaction
        return Ok(());
    };
    if cart.seq != job.seq {
        tx.commit().await?;
        return Ok(());
    }
    if let Some(at) = retry_at {
        reschedule(&mut tx, &mut cart, at).await?;
        tx.commit().await?;
        return Ok(());
    }
    if exit_reason(&cart, campaign)?.is_some() {
        cart.next_run_at = None;
        tx.save_cart(&cart).await?;
        tx.commit().await?;
        return Ok(());
    }
    let (next_index, skipped) = next_applicable(campaign, step_index + 1, &cart);
    for id in skipped {
        tx.log(cart.id, now_ms(), "skipped", &format!("step {id}: its `when` does not match this cart's stage/reason"))
            .await?;
    }
    cart.next_step = i64::try_from(next_index).unwrap_or(i64::MAX);
    match campaign.steps.get(next_index) {
        Some(next) => {
            let (at, what, line) = plan_step(campaign, next, abandoned_at, tz);
            tx.log(cart.id, now_ms(), what, &line).await?;
            reschedule(&mut tx, &mut cart, at.max(now_ms())).await?;
            // reschedule wrote next_run_at = at; keep the planned time for "changed?" checks.
        }
        None => finish(&mut tx, shop, campaign, &mut cart, now_ms()).await?,
    }
    tx.commit().await?;
    Ok(())
}

/// When `step` falls due (Unix ms) for a cart abandoned at `abandoned_at`, and its timeline
/// line (`scheduled` or `deferred`, and why).
fn plan_step(campaign: &Campaign, step: &Step, abandoned_at: i64, tz: Tz) -> (i64, &'static str, String) {
    let earliest = from_millis(abandoned_at + step.after.value.get().num_milliseconds());
    let plan = step_time(earliest, tz, step.at_local.map(|t| t.0), campaign.send_window.as_ref());
    let at = plan.at.timestamp_millis();
    let mut line = format!("step {} due {} (UTC {})", step.id.value, fmt_local(at, tz), plan.at.format("%H:%M:%S"));
    for n in &plan.notes {
        line.push_str("; ");
        line.push_str(n);
    }
    let what = if plan.notes.iter().any(|n| n.starts_with("deferred")) { "deferred" } else { "scheduled" };
    (at, what, line)
}

/// The common case of [`after_step`] without reading the cart again: no step left depends on
/// the cart (`when`), no order can expire, and the cart is as its job left it (still
/// abandoned, same `seq`). Then the next step is scheduled, or the sequence is complete, by
/// one guarded update. `false`: nothing was written; read the cart and decide.
async fn advance_unread(
    tx: &mut crate::store::GroupTx,
    job: RecoveryJob,
    campaign: &Campaign,
    step_index: usize,
    abandoned_at: i64,
    tz: Tz,
) -> Result<bool, JobError> {
    let rest = campaign.steps.get(step_index + 1..).unwrap_or_default();
    if campaign.expire_after.is_some() || rest.iter().any(|s| s.when.is_some()) {
        return Ok(false);
    }
    let next_step = i64::try_from(step_index + 1).unwrap_or(i64::MAX);
    let now = now_ms();
    let Some(next) = rest.first() else {
        if !tx.advance_cart(job.cart, job.seq, CartStatus::Completed, next_step, job.seq, None).await? {
            return Ok(false);
        }
        tx.log(job.cart, now, "completed", "every step has been dealt with").await?;
        return Ok(true);
    };
    let (at, what, line) = plan_step(campaign, next, abandoned_at, tz);
    let at = at.max(now);
    let seq = job.seq + 1;
    if !tx.advance_cart(job.cart, job.seq, CartStatus::Abandoned, next_step, seq, Some(at)).await? {
        return Ok(false);
    }
    tx.log(job.cart, now, what, &line).await?;
    push(tx, RecoveryJob { cart: job.cart, seq, due_ms: None }, from_millis(at)).await?;
    Ok(true)
}

/// After the last step: an unpaid order still unpaid at `expire_after` is expired (the shop
/// gets a signed `order.expire` so it cancels the order and releases the stock); every other
/// sequence is complete.
async fn finish(
    tx: &mut crate::store::Tx,
    shop: &Shop,
    campaign: &Campaign,
    cart: &mut CartRow,
    now: i64,
) -> Result<(), StoreError> {
    let tz = cart_tz(cart, shop);
    let expiry = campaign.expire_after.as_ref().filter(|_| cart.kind == CampaignKind::UnpaidOrder);
    let Some(expire_after) = expiry else {
        cart.set_status(CartStatus::Completed);
        cart.next_run_at = None;
        tx.save_cart(cart).await?;
        return tx.log(cart.id, now, "completed", "every step has been dealt with").await;
    };
    // The order's time: the `order.unpaid` event.
    let expire_at = cart.last_activity_at + expire_after.value.get().num_milliseconds();
    if now < expire_at {
        if cart.next_run_at != Some(expire_at) {
            tx.log(cart.id, now, "scheduled", &format!("order expires {} unless it is paid", fmt_local(expire_at, tz)))
                .await?;
        }
        return reschedule(tx, cart, expire_at).await;
    }
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
            "reason": format!("not paid within {}", expire_after.value),
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
    tx.log(
        cart.id,
        now,
        "expired",
        &format!("order {} not paid within {}; {note}", order.as_deref().unwrap_or("(no id)"), expire_after.value),
    )
    .await
}

enum Outcome {
    Done,
    /// A permanent failure (the step's fallback channel may take over).
    FailedForGood,
    Exited,
    RetryAt(i64),
}

#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "send", skip_all, fields(step = %step.id.value, channel = channel.as_str()))]
async fn send_channel(
    app: &App,
    shop: &Shop,
    campaign: &Campaign,
    job: RecoveryJob,
    step: &Step,
    channel: Channel,
    due: i64,
    tz: Tz,
    decided: Option<(crate::store::GroupTx, CartRow)>,
    keep_open: bool,
) -> Result<(Outcome, Option<crate::store::GroupTx>), JobError> {
    let now = now_ms();
    let step_id = step.id.value.as_str();
    let label = format!("{step_id}/{}", channel.as_str());
    // The job's own transaction comes with the cart it holds locked and has just saved.
    let (mut tx, cart) = match decided {
        Some(open) => open,
        None => {
            let mut tx = app.jobs_tx.begin().await?;
            let Some(cart) = tx.cart_by_id(job.cart).await? else {
                tx.commit().await?;
                return Ok((Outcome::Exited, None));
            };
            (tx, cart)
        }
    };
    if cart.seq != job.seq {
        tx.commit().await?;
        return Ok((Outcome::Exited, None));
    }
    if let Some(why) = exit_reason(&cart, campaign)? {
        tx.log(cart.id, now, "exit", &format!("{label} not sent: {why}")).await?;
        tx.commit().await?;
        return Ok((Outcome::Exited, None));
    }
    // Address, consent, suppression — checked at send time, so later changes are honoured.
    let lease = i64::try_from(app.settings.worker.claim_lease.as_millis()).unwrap_or(60_000);
    let (address, consent) = match channel {
        Channel::Email => (cart.email.clone(), cart.accepts_email),
        Channel::Sms => (cart.phone.clone(), cart.accepts_sms),
    };
    let claim = match &address {
        None => Err(format!("no {} address", if channel == Channel::Email { "email" } else { "phone" })),
        Some(_) if !consent && !transactional_ok(shop, campaign, step, channel) => {
            Err(format!("no {} marketing consent", channel.as_str()))
        }
        // The suppression list is checked with the claim (one statement).
        Some(a) => {
            let customer = cart.customer_ref.as_ref();
            Ok(tx.claim_send_to(&cart.shop, a, cart.id, step_id, channel.as_str(), due, customer, now, lease).await?)
        }
    };
    let send = match claim {
        Ok(Claim::Claimed(row)) => row,
        Ok(Claim::Done(row)) => {
            tx.commit().await?;
            // A permanent failure recorded by an earlier run still lets the fallback channel go.
            let failed = row.status() == SendStatus::Failed;
            return Ok((if failed { Outcome::FailedForGood } else { Outcome::Done }, None));
        }
        Ok(Claim::Held(_, until)) => {
            tx.commit().await?;
            return Ok((Outcome::RetryAt(until), None));
        }
        Ok(Claim::Suppressed(reason)) => {
            skip_send(app, tx, &cart, step_id, channel, due, now, &label, &format!("suppressed ({reason})")).await?;
            return Ok((Outcome::Done, None));
        }
        Err(why) => {
            skip_send(app, tx, &cart, step_id, channel, due, now, &label, &why).await?;
            return Ok((Outcome::Done, None));
        }
    };
    let incentive = match &step.incentive {
        Some(_) => issue_incentive(&mut tx, shop, campaign, &cart, step_id, now).await?,
        None => None,
    };
    tx.commit().await?;
    faults::reach(Point::Claimed, &send.public_id).await;

    let idempotent = match channel {
        Channel::Email => app.email.idempotent(),
        Channel::Sms => app.sms.idempotent(),
    };
    // A claim taken over from a worker that died after handing the message to a provider
    // that cannot deduplicate: it was probably delivered. Not sending it again is the
    // at-most-once choice for this one message (docs/delivery.md); operators may prefer
    // at-least-once (`email.resend_unconfirmed`).
    let resend = channel == Channel::Email && app.settings.email.resend_unconfirmed;
    if send.handed_at.is_some() && !idempotent && !resend {
        let why = "the worker stopped after handing this message to the provider and before recording its answer; \
                   it was probably delivered, so it is not sent a second time";
        let mut tx = app.jobs_tx.begin().await?;
        if tx.complete_send(send.id, send.attempts, SendStatus::Unconfirmed, Some(why), None, now).await? {
            app.metrics.send(channel.as_str(), "unconfirmed");
            tx.log(cart.id, now, "unconfirmed", &format!("{label}: {why}")).await?;
            warn!(step = step_id, channel = channel.as_str(), "in-doubt send not repeated");
        }
        tx.commit().await?;
        return Ok((Outcome::Done, None));
    }

    let started = std::time::Instant::now();
    let result = match prepare(app, shop, campaign, &cart, step, channel, &send, incentive.as_ref(), tz) {
        Err(e) => Err(e),
        Ok(message) => {
            if !idempotent {
                // The fence: only the current holder of the claim may hand the message over. A
                // worker that stalled past its lease (SIGSTOP, a long GC-like pause, a frozen
                // VM) finds its claim taken over and sends nothing.
                let mut tx = app.jobs_tx.begin().await?;
                let ours = tx.hand_over(send.id, send.attempts, now_ms()).await?;
                tx.commit().await?;
                if !ours {
                    warn!(
                        step = step_id,
                        channel = channel.as_str(),
                        "claim was taken over while this worker stalled; not sending"
                    );
                    return Ok((Outcome::Done, None));
                }
            }
            let r = message.send(app).await;
            if r.is_ok() {
                faults::reach(Point::Accepted, &send.public_id).await;
            }
            r
        }
    };
    app.metrics
        .provider_latency
        .get_or_create(&crate::metrics::ChannelLabels { channel: channel.as_str().to_owned() })
        .observe(started.elapsed().as_secs_f64());
    let mut tx = app.jobs_tx.begin().await?;
    let done = now_ms();
    let give_up_at = due + i64::try_from(app.settings.worker.send_give_up.as_millis()).unwrap_or(i64::MAX / 4);
    let (outcome, recorded) = match result {
        Ok(message_ref) => {
            let ours =
                tx.complete_send(send.id, send.attempts, SendStatus::Sent, None, Some(&message_ref), done).await?;
            let to = address
                .as_deref()
                .map(|a| if channel == Channel::Email { mask_email(a) } else { mask_phone(a) })
                .unwrap_or_default();
            let late = done - due;
            if ours {
                app.metrics.send(channel.as_str(), "sent");
                app.metrics.lateness.observe(late as f64 / 1000.0);
                let via = if message_ref.via_secondary() { " via the secondary relay" } else { "" };
                tx.log(
                    cart.id,
                    done,
                    "sent",
                    &format!("{label} to {to}{via} ({:.1}s after due)", late as f64 / 1000.0),
                )
                .await?;
                info!(step = step_id, channel = channel.as_str(), to = %to, lateness_ms = late, "sent");
            }
            (Outcome::Done, ours)
        }
        Err(DeliveryError::Unsubscribed(e)) => {
            // The provider says the recipient opted out: fail this message and suppress the address.
            let ours = tx.complete_send(send.id, send.attempts, SendStatus::Failed, Some(&e), None, done).await?;
            if ours {
                app.metrics.send(channel.as_str(), "failed");
                if let Some(a) = &address {
                    tx.suppress(&cart.shop, channel.as_str(), a, "unsubscribed at the provider", done).await?;
                }
                tx.log(cart.id, done, "failed", &format!("{label}: {e}; the number is now suppressed")).await?;
            }
            (Outcome::FailedForGood, ours)
        }
        Err(DeliveryError::Permanent(e)) => {
            let ours = tx.complete_send(send.id, send.attempts, SendStatus::Failed, Some(&e), None, done).await?;
            if ours {
                app.metrics.send(channel.as_str(), "failed");
                tx.log(cart.id, done, "failed", &format!("{label}: {e}")).await?;
                warn!(step = step_id, channel = channel.as_str(), error = %e, "permanent delivery failure");
            }
            (Outcome::FailedForGood, ours)
        }
        Err(
            err @ (DeliveryError::Transient(_) | DeliveryError::Throttled(..) | DeliveryError::CredentialsRefused(_)),
        ) if let Some(why) = give_up(&err, send.attempts, done, give_up_at, app.settings.worker.send_give_up) => {
            let ours = tx.complete_send(send.id, send.attempts, SendStatus::Failed, Some(&why), None, done).await?;
            if ours {
                app.metrics.send(channel.as_str(), "failed");
                tx.log(cart.id, done, "failed", &format!("{label}: {why}")).await?;
            }
            (Outcome::Done, ours)
        }
        Err(
            err @ (DeliveryError::Transient(_) | DeliveryError::Throttled(..) | DeliveryError::CredentialsRefused(_)),
        ) => {
            let hint = match &err {
                DeliveryError::Throttled(_, Some(d)) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4),
                _ => 0,
            };
            let e = err.to_string();
            let ours = tx.release_claim(send.id, send.attempts, &e).await?;
            let at = (done + backoff_ms(send.attempts).max(hint)).min(give_up_at.max(done + 1_000));
            if ours {
                app.metrics.send(channel.as_str(), "retry");
                tx.log(
                    cart.id,
                    done,
                    "retry",
                    &format!("{label}: {e}; attempt {} failed, retrying at {}", send.attempts, fmt_local(at, tz)),
                )
                .await?;
            }
            (Outcome::RetryAt(at), ours)
        }
    };
    if !recorded {
        // Another worker holds or finished this send (this one stalled past its lease).
        tx.commit().await?;
        warn!(step = step_id, channel = channel.as_str(), "send was taken over while in flight; result not recorded");
        return Ok((Outcome::Done, None));
    }
    if keep_open {
        return Ok((outcome, Some(tx)));
    }
    tx.commit().await?;
    faults::reach(Point::Completed, &send.public_id).await;
    Ok((outcome, None))
}

/// Why a message that failed for now (`err`, on attempt `attempts`, at `done`) is given up,
/// or `None` to retry it. Every such failure is given up `worker.send_give_up`
/// (`give_up_after`) after the message was due (`give_up_at`); a transient or throttled one
/// also after [`MAX_SEND_ATTEMPTS`]. Refused credentials are the operator's to fix, not the
/// message's fault: they use up no attempts, only time.
fn give_up(
    err: &DeliveryError,
    attempts: i64,
    done: i64,
    give_up_at: i64,
    give_up_after: std::time::Duration,
) -> Option<String> {
    let counts = !matches!(err, DeliveryError::CredentialsRefused(_));
    if counts && attempts >= MAX_SEND_ATTEMPTS {
        return Some(format!("gave up after {attempts} attempts: {err}"));
    }
    (done >= give_up_at).then(|| {
        format!(
            "gave up {} after it was due (worker.send_give_up), after {attempts} attempts: {err}",
            humantime::format_duration(give_up_after)
        )
    })
}

/// Record a deliberate non-send of `label` (`step/channel`) and commit.
#[allow(clippy::too_many_arguments)]
async fn skip_send(
    app: &App,
    mut tx: crate::store::GroupTx,
    cart: &CartRow,
    step_id: &str,
    channel: Channel,
    due: i64,
    now: i64,
    label: &str,
    why: &str,
) -> Result<(), JobError> {
    app.metrics.send(channel.as_str(), "skipped");
    tx.record_skip(cart.id, step_id, channel.as_str(), due, now, why).await?;
    tx.log(cart.id, now, "skipped", &format!("{label}: {why}")).await?;
    tx.commit().await?;
    Ok(())
}

async fn issue_incentive(
    tx: &mut crate::store::Tx,
    shop: &Shop,
    campaign: &Campaign,
    cart: &CartRow,
    step: &str,
    now: i64,
) -> Result<Option<(ChosenOffer, String, i64)>, StoreError> {
    // Idempotent: a retried step gets the code it was given, never a second one.
    if let Some((_, code, offer, expires)) = tx.incentive_for(cart.id, step).await? {
        return Ok(serde_json::from_str::<ChosenOffer>(&offer).ok().map(|o| (o, code, expires)));
    }
    let Some(inc) = &campaign.incentives else {
        return Ok(None);
    };
    // Orders imported or seen since the cart was last updated count too.
    let mut cart = cart.clone();
    tx.enrich_history(&mut cart).await?;
    let cart = &cart;
    let Some(total) = cart
        .currency
        .as_deref()
        .and_then(|c| Currency::parse(c).ok())
        .zip(cart.total_minor)
        .map(|(c, m)| Money::from_minor(m, c))
    else {
        return Ok(None);
    };
    let lookback = inc.history.map_or(incentive::DEFAULT_HISTORY_DAYS * 86_400_000, |h| h.get().num_milliseconds());
    let history = match &cart.customer_ref {
        Some(who) => {
            let h = tx.incentive_history(who, now - lookback).await?;
            let n = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
            incentive::History {
                last_issued_at: h.last_issued_at,
                received: n(h.received),
                recoveries: n(h.recoveries),
                recoveries_with_code: n(h.recoveries_with_code),
            }
        }
        None => incentive::History::default(),
    };
    let facts = incentive::Facts {
        total,
        orders_count: u32::try_from(cart.orders_count).unwrap_or(0),
        total_spent: cart.total_spent_minor.map(|m| Money::from_minor(m, total.currency())),
        shop_currency: shop.currency,
        history,
    };
    let offer = match incentive::decide(inc, &facts, now) {
        incentive::Decision::Offer(o) => o,
        incentive::Decision::Cooldown { last_issued_at } => {
            let cooldown = inc.cooldown.map(|c| c.to_string()).unwrap_or_default();
            let when = crate::domain::from_millis(last_issued_at).format("%Y-%m-%d");
            tx.log(
                cart.id,
                now,
                "incentive",
                &format!("{step}: none (received one on {when}, within the {cooldown} cooldown)"),
            )
            .await?;
            return Ok(None);
        }
        incentive::Decision::Nothing { tier } => {
            let hunter = if incentive::is_discount_hunter(inc, &facts.history) {
                format!(" (discount hunter: {} recoveries, all through a code)", facts.history.recoveries)
            } else {
                String::new()
            };
            tx.log(cart.id, now, "incentive", &format!("{step}: tier {tier} offers nothing{hunter}")).await?;
            return Ok(None);
        }
        incentive::Decision::NoTier => {
            let why = incentive::explain(inc, &facts, now).join("; ");
            tx.log(cart.id, now, "incentive", &format!("{step}: none ({why})")).await?;
            return Ok(None);
        }
    };
    let code = incentive::new_code(inc.code_prefix.as_deref(), inc.code_format.as_deref());
    let expires = now + inc.code_ttl.get().num_milliseconds();
    let offer_json = serde_json::to_string(&offer).unwrap_or_default();
    tx.insert_incentive(cart.id, step, cart.customer_ref.as_ref(), &offer.tier, &code, &offer_json, now, expires)
        .await?;
    // The shop learns of the code in the same transaction, so it can create the discount.
    let announced = crate::outbound::enqueue(
        tx,
        shop,
        "incentive.issued",
        serde_json::json!({
            "code": code,
            "offer": {
                "tier": offer.tier,
                "percent_off": offer.percent_off_permille.map(|p| f64::from(p) / 10.0),
                "max_discount": offer.max_discount_minor.map(|m| Money::from_minor(m, total.currency()).decimal()),
                "amount_off": offer.amount_off_minor.map(|m| Money::from_minor(m, total.currency()).decimal()),
                "free_shipping": offer.free_shipping,
                "min_order": offer.min_order_minor.map(|m| Money::from_minor(m, total.currency()).decimal()),
                "currency": total.currency().code(),
                "single_use": true,
            },
            "expires_at": crate::domain::from_millis(expires).to_rfc3339(),
            "cart_id": cart.external_id,
            "campaign": campaign.name.value,
            "step": step,
            // The shop's own customer id (not our email:/phone: keys) and address, to bind the code.
            "customer": { "id": cart.customer_ref.as_ref().and_then(CustomerRef::account_id), "email": cart.email },
        }),
        now,
    )
    .await?;
    let note = if announced { "; incentive.issued queued for the shop" } else { "" };
    tx.log(cart.id, now, "incentive", &format!("{step}: tier {} → {}{note}", offer.tier, offer.summary)).await?;
    Ok(Some((offer, code, expires)))
}

#[allow(clippy::too_many_arguments)]
/// A rendered message ready for its transport.
enum Prepared {
    Email(Box<OutgoingEmail>),
    Sms(OutgoingSms),
}

impl Prepared {
    async fn send(&self, app: &App) -> Result<crate::domain::Receipt, DeliveryError> {
        match self {
            Self::Email(m) => app.email.send(m).await,
            Self::Sms(m) => app.sms.send(m).await,
        }
    }
}

/// Render the message of one channel, addressed and identified by its send id.
#[allow(clippy::too_many_arguments)]
fn prepare(
    app: &App,
    shop: &Shop,
    campaign: &Campaign,
    cart: &CartRow,
    step: &Step,
    channel: Channel,
    send: &SendRow,
    incentive: Option<&(ChosenOffer, String, i64)>,
    tz: Tz,
) -> Result<Prepared, DeliveryError> {
    let exp = Utc::now().timestamp() + i64::try_from(app.settings.link_ttl.as_secs()).unwrap_or(0);
    let restore_url = format!("{}/r/{}", app.public_base, app.keys.sign(Purpose::Restore, &send.public_id, exp));
    let unsubscribe_url =
        format!("{}/u/{}", app.public_base, app.keys.sign(Purpose::Unsubscribe, &send.public_id, exp));
    let feedback_url = format!("{}/f/{}", app.public_base, app.keys.sign(Purpose::Feedback, &send.public_id, exp));
    let locale = cart
        .locale
        .as_deref()
        .or(cart.cart_locale.as_deref())
        .and_then(|l| Locale::parse(l).ok())
        .unwrap_or_else(|| shop.locale.clone());
    let chain = locale.fallback_chain(&shop.locale);
    let items: Vec<CartItem> = serde_json::from_str(&cart.items).unwrap_or_default();
    let currency = cart.currency.clone().unwrap_or_else(|| shop.currency.code().to_owned());
    let view = crate::render::context::MessageContext {
        shop_name: &shop.name,
        shop_url: shop.url.as_deref(),
        first_name: cart.first_name.as_deref(),
        total_minor: cart.total_minor.unwrap_or(0),
        currency: &currency,
        items: &items,
        restore_url: &restore_url,
        unsubscribe_url: &unsubscribe_url,
        feedback_url: &feedback_url,
        incentive: incentive.map(|(o, code, expires)| crate::render::context::IncentiveView {
            offer: o,
            code,
            expires_at_ms: *expires,
        }),
        timezone: tz,
        locale: locale.as_str(),
        step: &step.id.value,
        stage: cart.stage.as_deref(),
        reason: cart.reason.as_deref(),
        reason_detail: cart.reason_detail.as_deref(),
        order_id: cart.order_id.as_deref().filter(|_| cart.kind == CampaignKind::UnpaidOrder),
        order_expires_at_ms: campaign
            .expire_after
            .as_ref()
            .filter(|_| cart.kind == CampaignKind::UnpaidOrder)
            .map(|e| cart.last_activity_at + e.value.get().num_milliseconds()),
    };
    let ctx = view.to_json();
    let template = step.template.value.as_str();
    match channel {
        Channel::Email => {
            let to = cart
                .email
                .as_deref()
                .and_then(|e| Email::parse(e).ok())
                .ok_or_else(|| DeliveryError::Permanent("invalid email address".into()))?;
            let mail =
                app.renderer.email(&chain, template, &ctx).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
            Ok(Prepared::Email(Box::new(OutgoingEmail::compose(
                send.public_id.clone(),
                shop,
                to,
                mail,
                unsubscribe_url,
            ))))
        }
        Channel::Sms => {
            let to = cart
                .phone
                .as_deref()
                .and_then(|p| Phone::parse(p).ok())
                .ok_or_else(|| DeliveryError::Permanent("invalid phone number".into()))?;
            let sms = app
                .renderer
                .sms_message(&chain, template, &ctx, shop.opt_out())
                .and_then(|m| m.within(campaign.max_sms_segments()))
                .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
            Ok(Prepared::Sms(OutgoingSms {
                id: send.public_id.clone(),
                from: app.settings.sms.from.clone(),
                to,
                body: sms.text,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_use_up_time_not_attempts() {
        let six_hours = std::time::Duration::from_secs(6 * 3600);
        let (due, give_up_at) = (0, 6 * 3_600_000);
        let refused = DeliveryError::CredentialsRefused("535 auth failed".into());
        let transient = DeliveryError::Transient("421 busy".into());
        assert_eq!(give_up(&refused, MAX_SEND_ATTEMPTS * 3, due + 60_000, give_up_at, six_hours), None);
        let late = give_up(&refused, 2, give_up_at, give_up_at, six_hours).expect("given up at send_give_up");
        assert!(late.contains("worker.send_give_up") && late.contains("535"), "{late}");
        assert_eq!(give_up(&transient, MAX_SEND_ATTEMPTS - 1, due + 60_000, give_up_at, six_hours), None);
        let spent = give_up(&transient, MAX_SEND_ATTEMPTS, due + 60_000, give_up_at, six_hours).expect("attempts");
        assert!(spent.starts_with(&format!("gave up after {MAX_SEND_ATTEMPTS} attempts")), "{spent}");
    }

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

    #[test]
    fn holdout_is_deterministic_and_roughly_proportional() {
        let n = (0..10_000).filter(|i| in_holdout(&format!("email:c{i}@x.de"), "default", 50)).count();
        assert!((350..=650).contains(&n), "5% of 10,000 ≈ 500, got {n}");
        assert_eq!(in_holdout("email:a@x.de", "default", 50), in_holdout("email:a@x.de", "default", 50));
        assert!(!in_holdout("email:a@x.de", "default", 0));
        assert!(in_holdout("email:a@x.de", "default", 1000));
    }
}
