//! Operator actions and views, shared by the CLI and the `/ops` API.

use std::collections::BTreeMap;

pub mod console;
pub mod outbound;
pub mod privacy;
pub mod reasons;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::app::App;
use crate::domain::{Currency, Money, from_millis};
use crate::incentive::ChosenOffer;
use crate::queue::tables::{JobFilter, JobRecord as JobRow};
use crate::queue::{QUEUE, RECOVERY};
use crate::store::{CartRow, LogEntry, SendRow, StoreError};

/// Why an operator action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// No such job or cart (→ 404, exit 1).
    #[error("{0}")]
    NotFound(String),
    /// The action does not fit the current state (→ 409, exit 1).
    #[error("{0}")]
    Conflict(String),
    /// A signed request was sent again with a `webhook-id` already used (→ 409, nothing done).
    #[error("{0}")]
    Replayed(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::recovery::JobError> for OpsError {
    fn from(e: crate::recovery::JobError) -> Self {
        match e {
            crate::recovery::JobError::Store(e) => Self::Store(e),
            e @ crate::recovery::JobError::LeaseRanOut => Self::Conflict(format!("{e}; try again")),
        }
    }
}

/// List jobs.
pub async fn jobs(app: &App, filter: &JobFilter) -> Result<Vec<JobRow>, OpsError> {
    let mut tx = app.db.begin().await?;
    let rows = crate::queue::tables::list_jobs(&mut tx, RECOVERY, filter).await?;
    tx.commit().await?;
    Ok(rows)
}

/// One job with its cart's timeline.
#[derive(Debug, Serialize)]
pub struct JobView {
    /// The job.
    pub job: JobRow,
    /// The step the job would handle (the cart's next step in its campaign).
    pub step: Option<String>,
    /// Whether a newer job replaced this one (then it does nothing when it runs).
    pub superseded: bool,
    /// The cart's last timeline entries.
    pub timeline: Vec<LogEntry>,
}

/// One job by id.
pub async fn job(app: &App, id: &str) -> Result<JobView, OpsError> {
    let mut tx = app.db.begin().await?;
    let job = crate::queue::tables::job(&mut tx, RECOVERY, id)
        .await?
        .ok_or_else(|| OpsError::NotFound(format!("no job {id:?}")))?;
    let timeline = match job.cart_id {
        Some(c) => {
            let mut t = tx.cart_log(c).await?;
            let keep = t.len().saturating_sub(20);
            t.drain(..keep);
            t
        }
        None => Vec::new(),
    };
    tx.commit().await?;
    let set = app.campaigns();
    let step = job
        .campaign
        .as_deref()
        .and_then(|c| set.get(c))
        .zip(job.next_step)
        .and_then(|(c, i)| c.steps.get(usize::try_from(i).ok()?).map(|s| s.id.value.clone()));
    let superseded = job.seq.is_some() && job.seq != job.cart_seq;
    Ok(JobView { job, step, superseded, timeline })
}

/// The job `id`, if its state allows the action; a job a worker holds is never touched.
async fn job_in_state(
    tx: &mut crate::store::Tx,
    id: &str,
    allowed: &[&str],
    action: &str,
    allowed_desc: &str,
) -> Result<JobRow, OpsError> {
    let job = crate::queue::tables::job(tx, RECOVERY, id)
        .await?
        .ok_or_else(|| OpsError::NotFound(format!("no job {id:?}")))?;
    match job.state.as_str() {
        s if allowed.contains(&s) => Ok(job),
        "running" => Err(OpsError::Conflict(format!(
            "job {id} is held by worker {}; it is not {action} while a worker holds it",
            job.lock_by.as_deref().unwrap_or("?")
        ))),
        other => Err(OpsError::Conflict(format!("job {id} is {other}; only {allowed_desc} jobs can be {action}"))),
    }
}

/// A message left in doubt: handed to a relay that may or may not have kept it.
#[derive(Debug, Serialize)]
pub struct Unconfirmed {
    /// The send's public id (its `Message-ID` is `<id@cartback>`).
    pub id: String,
    /// Shop.
    pub shop: String,
    /// The shop's cart id.
    pub cart: String,
    /// Step id.
    pub step: String,
    /// `email` or `sms`.
    pub channel: String,
    /// When it was handed over.
    pub handed_at: Option<DateTime<Utc>>,
    /// Seconds since it was handed over (or found in doubt).
    pub age_seconds: Option<i64>,
    /// Where it went and why it is in doubt.
    pub reason: Option<String>,
}

/// Messages in doubt, oldest first.
pub async fn unconfirmed(app: &App, limit: i64) -> Result<Vec<Unconfirmed>, OpsError> {
    let mut tx = app.db.begin().await?;
    let rows = tx.unconfirmed_sends(limit).await?;
    tx.commit().await?;
    let now = Utc::now().timestamp_millis();
    Ok(rows
        .into_iter()
        .map(|(id, shop, cart, step, channel, handed_at, completed_at, reason)| Unconfirmed {
            id,
            shop,
            cart,
            step,
            channel,
            handed_at: handed_at.map(from_millis),
            age_seconds: handed_at.or(completed_at).map(|t| (now - t) / 1000),
            reason,
        })
        .collect())
}

/// What an operator's resend or settlement of an unconfirmed message came to, as a sentence.
fn settled(id: &str, s: crate::recovery::Settled) -> Result<String, OpsError> {
    use crate::recovery::Settled;
    match s {
        Settled::Resent(receipt) => Ok(format!("send {id} was sent again ({receipt})")),
        Settled::MarkedDelivered => Ok(format!("send {id} is recorded as delivered")),
        Settled::Failed(why) => Err(OpsError::Conflict(format!("send {id} is still unconfirmed: {why}"))),
        Settled::NotFound => Err(OpsError::NotFound(format!("no send {id:?}"))),
        Settled::NotInDoubt(status) => Err(OpsError::Conflict(format!(
            "send {id} is {}; only unconfirmed sends can be resent or marked delivered",
            status.as_str()
        ))),
        Settled::Refused(why) => Err(OpsError::Conflict(format!("send {id} is still unconfirmed: {why}"))),
    }
}

/// Send an unconfirmed message again, now (same `Message-ID`).
pub async fn resend(app: &App, id: &str) -> Result<String, OpsError> {
    let done = crate::recovery::resend(app, id).await?;
    settled(id, done)
}

/// Record an unconfirmed message as delivered.
pub async fn mark_delivered(app: &App, id: &str) -> Result<String, OpsError> {
    let done = crate::recovery::mark_delivered(app, id).await?;
    settled(id, done)
}

/// Put a failed, dead or cancelled job back in the queue, due now.
pub async fn retry_job(app: &App, id: &str) -> Result<String, OpsError> {
    let mut tx = app.db.begin().await?;
    let job =
        job_in_state(&mut tx, id, &["failed", "dead", "cancelled"], "retried", "failed, dead or cancelled").await?;
    if !crate::queue::tables::requeue(&mut tx, QUEUE, id, &job.status).await? {
        return Err(OpsError::Conflict(format!("job {id} changed while retrying; look again")));
    }
    let now = Utc::now().timestamp_millis();
    let mut note = format!("job {id} is queued again, due now");
    if let Some(cart_id) = job.cart_id
        && let Some(mut cart) = tx.cart_by_id(cart_id).await?
    {
        if Some(cart.seq) == job.seq {
            cart.next_run_at = Some(now);
            tx.save_cart(&cart).await?;
            tx.log(cart.id, now, "operator", &format!("job {id} retried")).await?;
        } else {
            note.push_str("; note: a newer job replaced it, so it will do nothing");
        }
    }
    tx.commit().await?;
    Ok(note)
}

/// Cancel a job no worker holds; its cart's sequence pauses until the job is retried.
pub async fn cancel_job(app: &App, id: &str) -> Result<String, OpsError> {
    let mut tx = app.db.begin().await?;
    let job = job_in_state(&mut tx, id, &["pending", "scheduled", "failed"], "cancelled", "waiting or failed").await?;
    if !crate::queue::tables::cancel(&mut tx, id).await? {
        return Err(OpsError::Conflict(format!("a worker took job {id} meanwhile; it was not cancelled")));
    }
    let now = Utc::now().timestamp_millis();
    if let Some(cart_id) = job.cart_id
        && let Some(mut cart) = tx.cart_by_id(cart_id).await?
        && Some(cart.seq) == job.seq
    {
        cart.next_run_at = None;
        tx.save_cart(&cart).await?;
        tx.log(cart.id, now, "operator", &format!("job {id} cancelled; the sequence waits until the job is retried"))
            .await?;
    }
    tx.commit().await?;
    Ok(format!("job {id} cancelled"))
}

/// Everything about one cart.
#[derive(Debug, Serialize)]
pub struct CartView {
    /// The cart row.
    #[serde(serialize_with = "cart_json")]
    pub cart: CartRow,
    /// Its timeline, oldest first.
    pub timeline: Vec<LogEntry>,
    /// Its messages.
    pub sends: Vec<SendWithClicks>,
}

/// A message and its clicks.
#[derive(Debug, Serialize)]
pub struct SendWithClicks {
    /// The send-log row.
    #[serde(flatten)]
    pub send: SendRow,
    /// Restore-link clicks.
    pub clicks: i64,
}

fn cart_json<S: serde::Serializer>(c: &CartRow, s: S) -> Result<S::Ok, S::Error> {
    let t = |ms: Option<i64>| ms.map(|m| from_millis(m).to_rfc3339());
    serde_json::json!({
        "shop": c.shop, "id": c.external_id, "status": c.status, "campaign": c.campaign, "arm": c.arm,
        "currency": c.currency, "total_minor": c.total_minor, "customer_ref": c.customer_ref,
        "email": c.email.as_deref().map(crate::domain::mask_email), "phone": c.phone.as_deref().map(crate::domain::mask_phone),
        "timezone": c.timezone, "timezone_source": c.timezone_source, "locale": c.locale,
        "accepts_email": c.accepts_email, "accepts_sms": c.accepts_sms,
        "last_activity_at": t(Some(c.last_activity_at)), "abandoned_at": t(c.abandoned_at), "next_step": c.next_step,
        "next_run_at": t(c.next_run_at), "exit_reason": c.exit_reason, "recovered_at": t(c.recovered_at),
        "order_id": c.order_id, "order_total_minor": c.order_total_minor,
    })
    .serialize(s)
}

/// One cart by the shop's id (with `shop` when the id exists in several shops).
pub async fn cart(app: &App, id: &str, shop: Option<&str>) -> Result<CartView, OpsError> {
    let mut tx = app.db.begin().await?;
    let mut carts = tx.carts_by_external(id).await?;
    if let Some(s) = shop {
        carts.retain(|c| c.shop == s);
    }
    let cart = match carts.len() {
        0 => {
            return Err(OpsError::NotFound(format!(
                "no cart {id:?}{}",
                shop.map(|s| format!(" in shop {s}")).unwrap_or_default()
            )));
        }
        1 => carts.remove(0),
        _ => {
            let shops: Vec<&str> = carts.iter().map(|c| c.shop.as_str()).collect();
            return Err(OpsError::Conflict(format!(
                "cart {id:?} exists in shops {}; name one with --shop",
                shops.join(", ")
            )));
        }
    };
    let timeline = tx.cart_log(cart.id).await?;
    let mut sends = Vec::new();
    for s in tx.sends_of_cart(cart.id).await? {
        let clicks = tx.clicks_of_send(s.id).await?;
        sends.push(SendWithClicks { send: s, clicks });
    }
    tx.commit().await?;
    Ok(CartView { cart, timeline, sends })
}

/// Pause or resume a campaign: paused campaigns defer their sends, they never drop them.
pub async fn set_paused(app: &App, name: &str, paused: bool) -> Result<String, OpsError> {
    if app.campaigns().get(name).is_none() {
        return Err(OpsError::NotFound(format!("no campaign {name:?} is loaded")));
    }
    let mut tx = app.db.begin().await?;
    tx.set_campaign_paused(name, paused, Utc::now().timestamp_millis()).await?;
    tx.commit().await?;
    Ok(if paused {
        format!("campaign {name} paused: due messages wait and go out after `cartback campaign resume {name}`")
    } else {
        format!("campaign {name} resumed: waiting messages go out within 15 seconds")
    })
}

/// The funnel of one campaign.
#[derive(Debug, Default, Serialize)]
pub struct CampaignStats {
    /// Campaign name.
    pub campaign: String,
    /// Carts that entered (treatment + holdout).
    pub entered: i64,
    /// Carts in the treatment arm.
    pub treatment: i64,
    /// Carts in the holdout arm.
    pub holdout: i64,
    /// Treatment carts recovered.
    pub recovered: i64,
    /// Holdout carts recovered.
    pub holdout_recovered: i64,
    /// Recovered revenue of treatment carts, per currency (decimal).
    pub revenue: BTreeMap<String, String>,
    /// Discount given through Cartback's codes on recovered treatment carts, per currency
    /// (decimal): the shop's `discount_total` where the order reports it, else what the offer
    /// gives on that order. Only codes actually used on the order count.
    pub incentive_cost: BTreeMap<String, String>,
    /// Recoveries that used a free-shipping code (their cost is the shop's shipping price).
    pub free_shipping_recoveries: i64,
    /// Recovered revenue net of incentive cost, per currency (decimal).
    pub net_revenue: BTreeMap<String, String>,
    /// Per incentive tier.
    pub tiers: Vec<TierStats>,
    /// Recoveries by the last step whose link was clicked before the order.
    pub attributed_steps: Vec<AttributedStep>,
    /// Treatment minus holdout recovery rate, with a 95 % confidence interval.
    pub lift: Option<Lift>,
    /// Per step and channel.
    pub steps: Vec<StepStats>,
}

/// One incentive tier of a campaign.
#[derive(Debug, Default, Serialize)]
pub struct TierStats {
    /// Tier name.
    pub tier: String,
    /// Codes issued.
    pub issued: i64,
    /// Codes used on an order.
    pub redeemed: i64,
    /// Revenue of the orders that used them, per currency (decimal).
    pub revenue: BTreeMap<String, String>,
    /// Their discount, per currency (decimal).
    pub cost: BTreeMap<String, String>,
}

/// Recoveries credited to a step: its link was the last clicked before the order.
#[derive(Debug, Default, Serialize)]
pub struct AttributedStep {
    /// Step id, or `(no click)` for orders placed without clicking any message.
    pub step: String,
    /// Recovered carts.
    pub recovered: i64,
    /// Their revenue, per currency (decimal).
    pub revenue: BTreeMap<String, String>,
}

/// Recovery-rate difference between arms.
#[derive(Debug, Serialize)]
pub struct Lift {
    /// Treatment recovery rate.
    pub treatment_rate: f64,
    /// Holdout recovery rate.
    pub holdout_rate: f64,
    /// The difference.
    pub difference: f64,
    /// 95 % interval (normal approximation).
    pub ci95: (f64, f64),
}

/// One step × channel.
#[derive(Debug, Default, Serialize)]
pub struct StepStats {
    /// Step id.
    pub step: String,
    /// Channel.
    pub channel: String,
    /// Messages sent.
    pub sent: i64,
    /// Deliberately not sent.
    pub skipped: i64,
    /// Failed.
    pub failed: i64,
    /// Restore-link clicks.
    pub clicks: i64,
}

/// The funnel.
#[derive(Debug, Serialize)]
pub struct Stats {
    /// Carts created since.
    pub since: DateTime<Utc>,
    /// Per campaign.
    pub campaigns: Vec<CampaignStats>,
    /// Carts that entered no campaign.
    pub not_entered: i64,
}

fn decimal(minor: i64, currency: &str) -> String {
    Currency::parse(currency).map_or_else(|_| minor.to_string(), |c| Money::from_minor(minor, c).decimal())
}

/// Lift of treatment over holdout, or `None` when an arm is empty.
pub fn lift(treated: i64, treated_recovered: i64, holdout: i64, holdout_recovered: i64) -> Option<Lift> {
    if treated == 0 || holdout == 0 {
        return None;
    }
    let (nt, nc) = (treated as f64, holdout as f64);
    let (pt, pc) = (treated_recovered as f64 / nt, holdout_recovered as f64 / nc);
    let se = (pt * (1.0 - pt) / nt + pc * (1.0 - pc) / nc).sqrt();
    let d = pt - pc;
    Some(Lift { treatment_rate: pt, holdout_rate: pc, difference: d, ci95: (d - 1.96 * se, d + 1.96 * se) })
}

type Sums = BTreeMap<String, i64>;

/// Minor-unit sums per currency as decimal strings, zero sums left out.
pub(crate) fn decimals(m: &Sums) -> BTreeMap<String, String> {
    m.iter().filter(|(_, v)| **v != 0).map(|(c, v)| (c.clone(), decimal(*v, c))).collect()
}

/// Fold codes issued and recoveries into the campaigns: per tier, per last clicked step, and
/// the campaign's incentive cost and net revenue.
fn attribute(
    by: &mut BTreeMap<String, CampaignStats>,
    issued: Vec<(Option<String>, String, i64, i64)>,
    recoveries: Vec<crate::store::ops::RecoveryRow>,
) {
    // (campaign, tier) → (issued, redeemed, revenue, cost); campaign → (cost, revenue) ; (campaign, step) → (n, revenue)
    let mut tiers: BTreeMap<(String, String), (i64, i64, Sums, Sums)> = BTreeMap::new();
    let mut cost: BTreeMap<String, (Sums, Sums)> = BTreeMap::new();
    let mut steps: BTreeMap<(String, String), (i64, Sums)> = BTreeMap::new();
    for (campaign, tier, n, redeemed) in issued {
        let Some(campaign) = campaign else { continue };
        let t = tiers.entry((campaign, tier)).or_default();
        t.0 += n;
        t.1 += redeemed;
    }
    for r in recoveries {
        let Some(campaign) = r.campaign else { continue };
        let currency = r.currency.unwrap_or_default();
        let c = cost.entry(campaign.clone()).or_default();
        *c.1.entry(currency.clone()).or_default() += r.revenue;
        if let Some(tier) = r.tier {
            *c.0.entry(currency.clone()).or_default() += r.discount;
            let t = tiers.entry((campaign.clone(), tier)).or_default();
            *t.2.entry(currency.clone()).or_default() += r.revenue;
            *t.3.entry(currency.clone()).or_default() += r.discount;
            let free = r
                .offer
                .as_deref()
                .and_then(|o| serde_json::from_str::<ChosenOffer>(o).ok())
                .is_some_and(|o| o.free_shipping);
            if free && let Some(e) = by.get_mut(&campaign) {
                e.free_shipping_recoveries += r.carts;
            }
        }
        let s = steps.entry((campaign, r.recovered_step.unwrap_or_else(|| "(no click)".into()))).or_default();
        s.0 += r.carts;
        *s.1.entry(currency).or_default() += r.revenue;
    }
    for ((campaign, tier), (issued, redeemed, revenue, c)) in tiers {
        if let Some(e) = by.get_mut(&campaign) {
            e.tiers.push(TierStats { tier, issued, redeemed, revenue: decimals(&revenue), cost: decimals(&c) });
        }
    }
    for (campaign, (c, revenue)) in cost {
        if let Some(e) = by.get_mut(&campaign) {
            e.incentive_cost = decimals(&c);
            let net: Sums = revenue.iter().map(|(k, v)| (k.clone(), v - c.get(k).copied().unwrap_or(0))).collect();
            e.net_revenue = decimals(&net);
        }
    }
    for ((campaign, step), (recovered, revenue)) in steps {
        if let Some(e) = by.get_mut(&campaign) {
            e.attributed_steps.push(AttributedStep { step, recovered, revenue: decimals(&revenue) });
        }
    }
}

/// The funnel per campaign and step for carts created since `since`.
pub async fn stats(app: &App, since: DateTime<Utc>, shop: Option<&str>) -> Result<Stats, OpsError> {
    let since_ms = since.timestamp_millis();
    let mut tx = app.db.begin().await?;
    let carts = tx.funnel_carts(since_ms, shop).await?;
    let sends = tx.funnel_sends(since_ms, shop).await?;
    let incentives = tx.funnel_incentives(since_ms, shop).await?;
    let recoveries = tx.funnel_recoveries(since_ms, shop).await?;
    tx.commit().await?;
    let mut by: BTreeMap<String, CampaignStats> = BTreeMap::new();
    let mut revenue: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut not_entered = 0;
    for (campaign, arm, _status, currency, n, recovered, rev) in carts {
        let Some(campaign) = campaign else {
            not_entered += n;
            continue;
        };
        let e = by
            .entry(campaign.clone())
            .or_insert_with(|| CampaignStats { campaign: campaign.clone(), ..Default::default() });
        match arm.as_deref() {
            Some("holdout") => {
                e.holdout += n;
                e.holdout_recovered += recovered;
            }
            _ => {
                e.treatment += n;
                e.recovered += recovered;
                *revenue.entry((campaign, currency.unwrap_or_default())).or_default() += rev.unwrap_or(0);
            }
        }
        e.entered += n;
    }
    for ((campaign, currency), minor) in revenue {
        if let Some(e) = by.get_mut(&campaign)
            && minor > 0
        {
            e.revenue.insert(currency.clone(), decimal(minor, &currency));
        }
    }
    attribute(&mut by, incentives, recoveries);
    for (campaign, step, channel, status, n, clicks) in sends {
        let Some(e) = campaign.and_then(|c| by.get_mut(&c)) else { continue };
        let idx = match e.steps.iter().position(|s| s.step == step && s.channel == channel) {
            Some(i) => i,
            None => {
                e.steps.push(StepStats { step: step.clone(), channel: channel.clone(), ..Default::default() });
                e.steps.len() - 1
            }
        };
        let s = &mut e.steps[idx];
        match status.as_str() {
            "sent" => s.sent += n,
            "skipped" => s.skipped += n,
            "failed" => s.failed += n,
            _ => {}
        }
        s.clicks += clicks;
    }
    let set = app.campaigns();
    let mut campaigns: Vec<CampaignStats> = by.into_values().collect();
    for c in &mut campaigns {
        c.lift = lift(c.treatment, c.recovered, c.holdout, c.holdout_recovered);
        let order: Vec<String> =
            set.get(&c.campaign).map(|k| k.steps.iter().map(|s| s.id.value.clone()).collect()).unwrap_or_default();
        c.steps.sort_by_key(|s| {
            (order.iter().position(|o| *o == s.step).unwrap_or(usize::MAX), s.step.clone(), s.channel.clone())
        });
        c.attributed_steps
            .sort_by_key(|s| (order.iter().position(|o| *o == s.step).unwrap_or(usize::MAX), s.step.clone()));
        let tiers: Vec<String> = set
            .get(&c.campaign)
            .and_then(|k| k.incentives.as_ref())
            .map(|i| i.tiers.iter().map(|t| t.name.value.clone()).collect())
            .unwrap_or_default();
        c.tiers.sort_by_key(|t| (tiers.iter().position(|n| *n == t.tier).unwrap_or(usize::MAX), t.tier.clone()));
    }
    Ok(Stats { since, campaigns, not_entered })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lift_has_an_interval_around_the_difference() {
        let l = lift(1000, 150, 100, 10).expect("both arms");
        assert!((l.difference - 0.05).abs() < 1e-9);
        assert!(l.ci95.0 < 0.05 && l.ci95.1 > 0.05 && l.ci95.0 < 0.0, "{:?}", l.ci95);
        assert!(lift(10, 1, 0, 0).is_none());
    }
}
