//! Issuing a step's incentive code: the tier [`crate::incentive::decide`] picks from the
//! cart and the customer's history, recorded with the claim and announced to the shop in the
//! same transaction.

use super::StepRun;
use crate::campaign::Incentives;
use crate::domain::{Currency, CustomerRef, Money, from_millis};
use crate::incentive::{self, ChosenOffer, Decision};
use crate::store::{CartRow, NewIncentive, StoreError, Tx};

/// A code issued for a step: the offer, the code, and when it expires (Unix ms).
#[derive(Debug, Clone)]
pub(super) struct Issued {
    pub offer: ChosenOffer,
    pub code: String,
    pub expires_at: i64,
}

/// The step's code for `cart`: the one issued before (a retried step gets the same code,
/// never a second one), a new one, or none (the timeline says why).
pub(super) async fn issue(
    tx: &mut Tx,
    s: &StepRun<'_>,
    cart: &CartRow,
    now: i64,
) -> Result<Option<Issued>, StoreError> {
    let step = s.step().id.value.as_str();
    if let Some((_, code, offer, expires_at)) = tx.incentive_for(cart.id, step).await? {
        return Ok(serde_json::from_str::<ChosenOffer>(&offer).ok().map(|offer| Issued { offer, code, expires_at }));
    }
    let Some(inc) = &s.campaign.incentives else {
        return Ok(None);
    };
    // Orders imported or seen since the cart was last updated count too.
    let mut cart = cart.clone();
    tx.enrich_history(&mut cart).await?;
    let Some(facts) = facts(tx, s, inc, &cart, now).await? else {
        return Ok(None);
    };
    let offer = match incentive::decide(inc, &facts, now) {
        Decision::Offer(o) => o,
        other => {
            tx.log(cart.id, now, "incentive", &format!("{step}: {}", why_none(inc, &facts, &other, now))).await?;
            return Ok(None);
        }
    };
    let issued = Issued {
        code: incentive::new_code(inc.code_prefix.as_deref(), inc.code_format.as_deref()),
        expires_at: now + inc.code_ttl.get().num_milliseconds(),
        offer,
    };
    record(tx, s, &cart, &issued, facts.total.currency(), now).await?;
    Ok(Some(issued))
}

/// What the tier rules judge: the cart's total and the customer's history. `None` for a cart
/// without a total.
async fn facts(
    tx: &mut Tx,
    s: &StepRun<'_>,
    inc: &Incentives,
    cart: &CartRow,
    now: i64,
) -> Result<Option<incentive::Facts>, StoreError> {
    let currency = cart.currency.as_deref().and_then(|c| Currency::parse(c).ok());
    let Some(total) = currency.zip(cart.total_minor).map(|(c, m)| Money::from_minor(m, c)) else {
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
    Ok(Some(incentive::Facts {
        total,
        orders_count: u32::try_from(cart.orders_count).unwrap_or(0),
        total_spent: cart.total_spent_minor.map(|m| Money::from_minor(m, total.currency())),
        shop_currency: s.shop.currency,
        history,
    }))
}

/// Why no code was issued, for the timeline.
fn why_none(inc: &Incentives, facts: &incentive::Facts, decision: &Decision, now: i64) -> String {
    match decision {
        Decision::Cooldown { last_issued_at } => {
            let cooldown = inc.cooldown.map(|c| c.to_string()).unwrap_or_default();
            let when = from_millis(*last_issued_at).format("%Y-%m-%d");
            format!("none (received one on {when}, within the {cooldown} cooldown)")
        }
        Decision::Nothing { tier } => {
            let hunter = if incentive::is_discount_hunter(inc, &facts.history) {
                format!(" (discount hunter: {} recoveries, all through a code)", facts.history.recoveries)
            } else {
                String::new()
            };
            format!("tier {tier} offers nothing{hunter}")
        }
        Decision::NoTier | Decision::Offer(_) => format!("none ({})", incentive::explain(inc, facts, now).join("; ")),
    }
}

/// Store the code and tell the shop in the same transaction, so it can create the discount.
async fn record(
    tx: &mut Tx,
    s: &StepRun<'_>,
    cart: &CartRow,
    issued: &Issued,
    currency: Currency,
    now: i64,
) -> Result<(), StoreError> {
    let step = s.step().id.value.as_str();
    let Issued { offer, code, expires_at } = issued;
    let offer_json = serde_json::to_string(offer).unwrap_or_default();
    let new = NewIncentive {
        cart_id: cart.id,
        step,
        customer_ref: cart.customer_ref.as_ref(),
        tier: &offer.tier,
        code,
        offer_json: &offer_json,
        issued_at: now,
        expires_at: *expires_at,
    };
    tx.insert_incentive(&new).await?;
    let money = |m: Option<i64>| m.map(|m| Money::from_minor(m, currency).decimal());
    let payload = serde_json::json!({
        "code": code,
        "offer": {
            "tier": offer.tier,
            "percent_off": offer.percent_off_permille.map(|p| f64::from(p) / 10.0),
            "max_discount": money(offer.max_discount_minor),
            "amount_off": money(offer.amount_off_minor),
            "free_shipping": offer.free_shipping,
            "min_order": money(offer.min_order_minor),
            "currency": currency.code(),
            "single_use": true,
        },
        "expires_at": from_millis(*expires_at).to_rfc3339(),
        "cart_id": cart.external_id,
        "campaign": s.campaign.name.value,
        "step": step,
        // The shop's own customer id (not an email or phone key) and address, to bind the code.
        "customer": { "id": cart.customer_ref.as_ref().and_then(CustomerRef::account_id), "email": cart.email },
    });
    let announced = crate::outbound::enqueue(tx, s.shop, "incentive.issued", payload, now).await?;
    let note = if announced { "; incentive.issued queued for the shop" } else { "" };
    tx.log(cart.id, now, "incentive", &format!("{step}: tier {} → {}{note}", offer.tier, offer.summary)).await
}
