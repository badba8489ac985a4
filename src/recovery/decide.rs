//! What a due cart needs now: pure functions of the cart, its campaign and a few facts, tested
//! without a database. [`super::job`] reads the cart, asks [`decide`], fetches a fact when the
//! decision needs one ([`Verdict::Need`]), and carries out the [`Plan`].

use chrono_tz::Tz;

use super::PAUSE_RECHECK_MS;
use crate::campaign::schedule::step_time;
use crate::campaign::{Campaign, CampaignSet, Channel, ExitCondition, Step};
use crate::config::Shop;
use crate::domain::{CampaignKind, CartStatus, Currency, CustomerRef, Money, from_millis};
use crate::store::CartRow;

/// How long a cart whose campaign is not loaded (removed or renamed by a reload) waits before
/// it looks again; the sequence is never dropped for it.
pub const CAMPAIGN_RECHECK_MS: i64 = 15 * 60_000;

/// What [`decide`] knows besides the cart. `paused` and `sent_since` are fetched only when a
/// decision depends on them: [`Verdict::Need`] asks for them.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// Now, Unix ms.
    pub now: i64,
    /// The cart's shop, if it is still configured.
    pub shop: Option<&'a Shop>,
    /// The campaigns in force.
    pub campaigns: &'a CampaignSet,
    /// Whether the cart's campaign is paused by an operator.
    pub paused: Option<bool>,
    /// When messages were sent to the cart's customer since [`Need::SentSince`]'s `since`
    /// (Unix ms, oldest first), for the frequency cap.
    pub sent_since: Option<Vec<i64>>,
}

/// A fact a decision depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Whether campaign `name` is paused.
    Paused(String),
    /// When messages were sent to `customer` since `since` (Unix ms).
    SentSince {
        /// Whose messages.
        customer: CustomerRef,
        /// From when.
        since: i64,
    },
}

/// The answer of [`decide`].
#[derive(Debug)]
pub enum Verdict<'a> {
    /// Fetch this fact and ask again.
    Need(Need),
    /// Do this.
    Plan(Box<Plan<'a>>),
}

/// A decision: the cart as it leaves it, the timeline lines it writes, and what happens next.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The cart with what was decided (status, campaign, arm, abandonment, next step).
    pub cart: CartRow,
    /// Timeline lines, in order: `(what, detail)`.
    pub lines: Vec<(&'static str, String)>,
    /// What follows.
    pub action: Action<'a>,
}

/// What follows a decision.
#[derive(Debug)]
pub enum Action<'a> {
    /// The sequence ends here, without a further job (`next_run_at` is cleared).
    Stop,
    /// Run again at this time (Unix ms): not idle yet, the step not due, the campaign paused,
    /// the frequency cap reached, or the campaign not loaded.
    Later(i64),
    /// Every step has been dealt with: complete (or expire an unpaid order).
    Finish(&'a Campaign),
    /// Send step `step` of `campaign`, due at `due`.
    Send {
        /// The campaign.
        campaign: &'a Campaign,
        /// Index of the step.
        step: usize,
        /// When it fell due (Unix ms).
        due: i64,
    },
}

impl PartialEq for Action<'_> {
    /// Campaigns compare by name (names are unique in a set).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Stop, Self::Stop) => true,
            (Self::Later(a), Self::Later(b)) => a == b,
            (Self::Finish(a), Self::Finish(b)) => a.name.value == b.name.value,
            (Self::Send { campaign: a, step: i, due: x }, Self::Send { campaign: b, step: j, due: y }) => {
                a.name.value == b.name.value && i == j && x == y
            }
            _ => false,
        }
    }
}

/// The customer's zone, else the shop's.
pub fn cart_tz(cart: &CartRow, shop: &Shop) -> Tz {
    cart.timezone.as_deref().and_then(|t| t.parse().ok()).unwrap_or(shop.timezone)
}

/// `ms` in `tz`, for timeline lines.
pub fn fmt_local(ms: i64, tz: Tz) -> String {
    from_millis(ms).with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z").to_string()
}

/// Decide what `cart` (read by its current job) needs now.
pub fn decide<'a>(cart: &CartRow, f: &Facts<'a>) -> Verdict<'a> {
    let mut d = Draft { cart: cart.clone(), lines: Vec::new(), now: f.now };
    let Some(shop) = f.shop else {
        d.cart.next_run_at = None;
        d.line("stopped", "shop is no longer configured".into());
        return d.plan(Action::Stop);
    };
    let tz = cart_tz(cart, shop);
    let campaign = match choose_campaign(&mut d, shop, f.campaigns) {
        Ok(c) => c,
        Err(action) => return d.plan(action),
    };
    if let Err(action) = enter(&mut d, campaign, tz) {
        return d.plan(action);
    }
    if exit_reason(&d.cart, campaign).is_some() {
        // Exited, holdout, …: this job was the last one.
        d.cart.next_run_at = None;
        return d.plan(Action::Stop);
    }
    let (index, skipped) = next_applicable(campaign, usize::try_from(d.cart.next_step).unwrap_or(usize::MAX), &d.cart);
    for id in skipped {
        d.line("skipped", format!("step {id}: its `when` does not match this cart's stage/reason"));
    }
    d.cart.next_step = i64::try_from(index).unwrap_or(i64::MAX);
    let Some(step) = campaign.steps.get(index) else {
        return d.plan(Action::Finish(campaign));
    };
    let abandoned_at = d.cart.abandoned_at.unwrap_or(d.cart.last_activity_at);
    let (due, what, line) = plan_step(campaign, step, abandoned_at, tz);
    if f.now < due {
        if d.cart.next_run_at != Some(due) {
            d.line(what, line);
        }
        return d.plan(Action::Later(due));
    }
    match held_back(&mut d, f, campaign, step, due, tz) {
        Ok(Some(action)) => d.plan(action),
        Ok(None) => d.plan(Action::Send { campaign, step: index, due }),
        Err(need) => Verdict::Need(need),
    }
}

/// The cart and lines of a decision in progress.
struct Draft {
    cart: CartRow,
    lines: Vec<(&'static str, String)>,
    now: i64,
}

impl Draft {
    fn line(&mut self, what: &'static str, detail: String) {
        self.lines.push((what, detail));
    }

    fn plan<'a>(self, action: Action<'a>) -> Verdict<'a> {
        Verdict::Plan(Box::new(Plan { cart: self.cart, lines: self.lines, action }))
    }
}

/// The cart's campaign: the one it entered, or for a cart that entered none yet the first of
/// its shop's campaigns whose audience it matches. `Err`: what to do instead.
fn choose_campaign<'a>(d: &mut Draft, shop: &Shop, set: &'a CampaignSet) -> Result<&'a Campaign, Action<'a>> {
    let status = d.cart.status();
    match d.cart.campaign.clone() {
        Some(name) => set.get(&name).ok_or_else(|| {
            // Removed or renamed by a reload: wait for it to come back rather than drop the sequence.
            if d.cart.next_run_at.is_none_or(|t| t < d.now) {
                d.line("deferred", format!("campaign {name:?} is not loaded; checking again every 15 minutes"));
            }
            Action::Later(d.now + CAMPAIGN_RECHECK_MS)
        }),
        None if matches!(status, CartStatus::Active | CartStatus::Abandoned) => {
            let candidates = set.for_shop_kind(shop.id.as_str(), &shop.campaign, d.cart.kind);
            let first_idle = candidates.iter().map(|c| c.abandon_after.get().num_milliseconds()).min().unwrap_or(0);
            let idle_at = d.cart.last_activity_at + first_idle;
            if status == CartStatus::Active && d.now < idle_at {
                return Err(Action::Later(idle_at));
            }
            let mut reasons = Vec::new();
            for c in candidates {
                match audience_mismatch(c, &d.cart, shop) {
                    Some(why) => reasons.push(format!("campaign {}: {why}", c.name.value)),
                    None => return Ok(c),
                }
            }
            d.cart.set_status(CartStatus::NotEntered);
            d.cart.next_run_at = None;
            d.line("not_entered", reasons.join("; "));
            Err(Action::Stop)
        }
        // Exited, holdout or not entered: nothing to decide.
        None => {
            d.cart.next_run_at = None;
            Err(Action::Stop)
        }
    }
}

/// An active cart idle long enough is abandoned; an abandoned cart that entered no campaign
/// enters `campaign`, or its holdout. `Err`: what to do instead.
fn enter<'a>(d: &mut Draft, campaign: &'a Campaign, tz: Tz) -> Result<(), Action<'a>> {
    if d.cart.status() == CartStatus::Active {
        let idle_at = d.cart.last_activity_at + campaign.abandon_after.get().num_milliseconds();
        if d.now < idle_at {
            return Err(Action::Later(idle_at));
        }
        d.cart.set_status(CartStatus::Abandoned);
        d.cart.abandoned_at = Some(idle_at);
        let since = fmt_local(d.cart.last_activity_at, tz);
        d.line("abandoned", format!("no activity for {} (since {since})", campaign.abandon_after));
    }
    if d.cart.status() != CartStatus::Abandoned || d.cart.campaign.is_some() {
        return Ok(());
    }
    let name = campaign.name.value.clone();
    d.cart.campaign = Some(name.clone());
    // The holdout hashes the stored customer key (or the cart's public id): assignments made
    // by earlier versions stay as they were.
    let who = d.cart.customer_ref.as_ref().map_or_else(|| d.cart.public_id.clone(), CustomerRef::key);
    if in_holdout(&who, &name, campaign.holdout.0) {
        d.cart.arm = Some("holdout".into());
        d.cart.set_status(CartStatus::Holdout);
        d.cart.next_run_at = None;
        d.line("holdout", format!("campaign {name}: in the control group; no messages, counted for lift"));
        return Err(Action::Stop);
    }
    d.cart.arm = Some("treatment".into());
    let source = d.cart.timezone_source.as_deref().unwrap_or("?");
    d.line("entered", format!("campaign {name} (time zone {tz}, from {source})"));
    Ok(())
}

/// A due step that must wait: its campaign is paused, or the customer's frequency cap is
/// reached. `Ok(None)`: send it now. `Err`: the fact the answer depends on.
fn held_back<'a>(
    d: &mut Draft,
    f: &Facts<'a>,
    campaign: &'a Campaign,
    step: &Step,
    due: i64,
    tz: Tz,
) -> Result<Option<Action<'a>>, Need> {
    // Paused by an operator: the message waits, it is never dropped.
    let paused = f.paused.ok_or_else(|| Need::Paused(campaign.name.value.clone()))?;
    if paused {
        if d.cart.next_run_at.is_none_or(|t| t <= due) {
            d.line(
                "deferred",
                format!("step {}: campaign {} is paused by an operator", step.id.value, campaign.name.value),
            );
        }
        return Ok(Some(Action::Later(f.now + PAUSE_RECHECK_MS)));
    }
    // Frequency cap: per customer, across channels and campaigns; over-cap sends wait.
    let (Some(cap), Some(who)) = (&campaign.frequency_cap, &d.cart.customer_ref) else { return Ok(None) };
    let per = cap.per.get().num_milliseconds();
    let sent = f.sent_since.as_ref().ok_or_else(|| Need::SentSince { customer: who.clone(), since: f.now - per })?;
    let max = usize::try_from(cap.max).unwrap_or(usize::MAX);
    if max == 0 || sent.len() < max {
        return Ok(None);
    }
    let frees_at = sent[sent.len() - max] + per + 1;
    let at = step_time(from_millis(frees_at), tz, None, campaign.send_window.as_ref()).at.timestamp_millis();
    let line = format!(
        "step {}: frequency cap {} per {} reached; next allowed {}",
        step.id.value,
        cap.max,
        cap.per,
        fmt_local(at, tz)
    );
    d.line("deferred", line);
    Ok(Some(Action::Later(at)))
}

/// Whether the cart has left its sequence (re-checked right before every send).
pub fn exit_reason(cart: &CartRow, campaign: &Campaign) -> Option<&'static str> {
    match cart.status() {
        CartStatus::Abandoned => None,
        CartStatus::Emptied if !campaign.exit_when.value.contains(&ExitCondition::CartEmptied) => None,
        CartStatus::Recovered => Some("order placed"),
        CartStatus::Emptied => Some("cart emptied"),
        CartStatus::Unsubscribed => Some("unsubscribed"),
        CartStatus::Active => Some("customer active again"),
        CartStatus::Holdout | CartStatus::NotEntered | CartStatus::Completed => Some("not in a sequence"),
    }
}

/// The first step at or after `from` whose `when` matches the cart, and the ids passed over.
pub fn next_applicable(campaign: &Campaign, from: usize, cart: &CartRow) -> (usize, Vec<String>) {
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

/// When `step` falls due (Unix ms) for a cart abandoned at `abandoned_at`, and its timeline
/// line (`scheduled` or `deferred`, and why).
pub fn plan_step(campaign: &Campaign, step: &Step, abandoned_at: i64, tz: Tz) -> (i64, &'static str, String) {
    let earliest = abandoned_at + step.after.value.get().num_milliseconds();
    plan_step_from(campaign, step, earliest, tz, String::new())
}

/// [`plan_step`] from the instant `earliest` (Unix ms), with `why` (if any) after the step's
/// name on the timeline line.
fn plan_step_from(campaign: &Campaign, step: &Step, earliest: i64, tz: Tz, why: String) -> (i64, &'static str, String) {
    let plan = step_time(from_millis(earliest), tz, step.at_local.map(|t| t.0), campaign.send_window.as_ref());
    let at = plan.at.timestamp_millis();
    let mut line =
        format!("step {}{why} due {} (UTC {})", step.id.value, fmt_local(at, tz), plan.at.format("%H:%M:%S"));
    for n in &plan.notes {
        line.push_str("; ");
        line.push_str(n);
    }
    let what = if plan.notes.iter().any(|n| n.starts_with("deferred")) { "deferred" } else { "scheduled" };
    (at, what, line)
}

/// Why the cart is outside the campaign's audience, if it is.
pub fn audience_mismatch(campaign: &Campaign, cart: &CartRow, shop: &Shop) -> Option<String> {
    let a = &campaign.audience;
    let currency = cart.currency.as_deref().and_then(|c| Currency::parse(c).ok());
    let total = currency.zip(cart.total_minor).map(|(c, m)| Money::from_minor(m, c));
    for (bound, is_min) in [(&a.min_total, true), (&a.max_total, false)] {
        let Some(bound) = bound else { continue };
        let Some(total) = total else {
            return Some("cart has no total".into());
        };
        match bound.for_currency(total.currency(), shop.currency) {
            None => return Some(format!("the audience has no amount bound in {}", total.currency())),
            Some(b) if is_min && total.minor() < b.minor() => return Some(format!("cart total {total} is below {b}")),
            Some(b) if !is_min && total.minor() > b.minor() => return Some(format!("cart total {total} is above {b}")),
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
    facts_mismatch(campaign, cart)
}

/// The audience's stage, reason and order-count rules.
fn facts_mismatch(campaign: &Campaign, cart: &CartRow) -> Option<String> {
    let a = &campaign.audience;
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

/// Whether the shop lets the first reminder email go out without marketing consent (a
/// transactional message about the customer's own cart); never a later step, never SMS.
pub fn transactional_ok(shop: &Shop, campaign: &Campaign, step: &Step, channel: Channel) -> bool {
    shop.transactional_first_reminder
        && channel == Channel::Email
        && campaign.steps.first().is_some_and(|s| s.id.value == step.id.value)
}

/// The address a channel of a step goes to, or why it is not used (no address, no consent).
/// Suppressions are checked with the claim ([`crate::store::Claim::Suppressed`]).
pub fn address_for<'c>(
    cart: &'c CartRow,
    shop: &Shop,
    campaign: &Campaign,
    step: &Step,
    channel: Channel,
) -> Result<&'c str, String> {
    let (address, consent) = match channel {
        Channel::Email => (cart.email.as_deref(), cart.accepts_email),
        Channel::Sms => (cart.phone.as_deref(), cart.accepts_sms),
    };
    match address {
        None => Err(format!("no {} address", if channel == Channel::Email { "email" } else { "phone" })),
        Some(_) if !consent && !transactional_ok(shop, campaign, step, channel) => {
            Err(format!("no {} marketing consent", channel.as_str()))
        }
        Some(a) => Ok(a),
    }
}

/// What follows a step whose messages were all dealt with.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A message failed for now: the step runs again at this time (Unix ms).
    Retry(i64),
    /// The cart left its sequence meanwhile.
    Exit,
    /// Step `step` falls due at `at` (Unix ms, never before now), with its timeline line.
    Step {
        /// Index of the next step.
        step: usize,
        /// When it falls due.
        at: i64,
        /// `scheduled` or `deferred`.
        what: &'static str,
        /// The timeline line.
        line: String,
    },
    /// No step is left.
    Finish,
}

/// What follows step `done` of `campaign` for `cart` (read again after the step), given the
/// earliest retry its messages asked for; and the steps passed over because their `when`
/// does not match.
pub fn after_step(
    cart: &CartRow,
    campaign: &Campaign,
    done: usize,
    retry_at: Option<i64>,
    tz: Tz,
    now: i64,
) -> (Next, Vec<String>) {
    if let Some(at) = retry_at {
        return (Next::Retry(at), Vec::new());
    }
    if exit_reason(cart, campaign).is_some() {
        return (Next::Exit, Vec::new());
    }
    let (step, skipped) = next_applicable(campaign, done + 1, cart);
    let Some(next) = campaign.steps.get(step) else { return (Next::Finish, skipped) };
    let abandoned_at = cart.abandoned_at.unwrap_or(cart.last_activity_at);
    let (at, what, line) = next_step_time(campaign, next, abandoned_at, tz, now);
    (Next::Step { step, at, what, line }, skipped)
}

/// A step moved by at most this much to keep its gap is not called re-spaced (ms).
const QUIET_SHIFT_MS: i64 = 60_000;

/// When `next` goes after the step before it finished at `now`: its own time, or, when that
/// has passed or comes sooner than the campaign's `min_gap`, `min_gap` after `now` (within the
/// send window), so a sequence held up (a relay outage, a step's retries running late) never
/// reaches the customer in one burst. The timeline line says which and why.
pub fn next_step_time(
    campaign: &Campaign,
    next: &Step,
    abandoned_at: i64,
    tz: Tz,
    now: i64,
) -> (i64, &'static str, String) {
    let (at, what, line) = plan_step(campaign, next, abandoned_at, tz);
    let gap = campaign.min_gap_ms();
    if at >= now + gap {
        return (at, what, line);
    }
    if now + gap - at <= QUIET_SHIFT_MS {
        // The step before went out a little late (a poll, a slow relay): this one follows by
        // as much, without a line of its own on the timeline.
        return plan_step_from(campaign, next, now + gap, tz, String::new());
    }
    let why = format!(
        " re-spaced: it was due {}, too close to the step that finished {}; min_gap is {}, so it is",
        fmt_local(at, tz),
        fmt_local(now, tz),
        humantime::format_duration(std::time::Duration::from_millis(gap.max(0).unsigned_abs()))
    );
    let (at, _, line) = plan_step_from(campaign, next, now + gap, tz, why);
    (at, "deferred", line)
}

/// How a sequence ends after its last step.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// Complete.
    Complete,
    /// An unpaid order that may still be paid: look again at its expiry (Unix ms).
    AwaitPayment(i64),
    /// An unpaid order still unpaid at its expiry: expire it (the shop is told).
    Expire,
}

/// How `cart`'s sequence in `campaign` ends now: an unpaid order waits for its
/// `expire_after` and then expires; every other sequence is complete.
pub fn ending(cart: &CartRow, campaign: &Campaign, now: i64) -> Ending {
    let expiry = campaign.expire_after.as_ref().filter(|_| cart.kind == CampaignKind::UnpaidOrder);
    let Some(expire_after) = expiry else { return Ending::Complete };
    // The order's time: the `order.unpaid` event.
    let expire_at = cart.last_activity_at + expire_after.value.get().num_milliseconds();
    if now < expire_at { Ending::AwaitPayment(expire_at) } else { Ending::Expire }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
