//! Incentive tiers and codes.
//!
//! [`decide`] is the whole policy, pure and property-tested: a customer who received an
//! incentive within the campaign's `cooldown` gets none; otherwise the first tier whose
//! conditions all hold wins. Conditions look at the cart total, the customer's orders and
//! lifetime spend, whether this is a first order, incentives received within
//! `incentives.history`, and the discount-hunter rule. Amounts are compared only in the
//! cart's own currency (see [`crate::campaign::Amount`]); every percentage and fixed amount is
//! capped by the campaign's `max_discount` (margin cap).

use rand::Rng;

use crate::campaign::{Amount, Incentives, Tier};
use crate::domain::{Currency, Money};

/// What the selection looks at.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// Cart total.
    pub total: Money,
    /// Orders the customer placed before.
    pub orders_count: u32,
    /// Lifetime spend, in the cart's currency, when the shop reports it.
    pub total_spent: Option<Money>,
    /// The shop's currency (for bare-number thresholds).
    pub shop_currency: Currency,
    /// The customer's incentive history.
    pub history: History,
}

/// A customer's incentive past, as the store reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct History {
    /// When they last received a code (Unix ms).
    pub last_issued_at: Option<i64>,
    /// Codes received within `incentives.history`.
    pub received: u32,
    /// Recoveries within `incentives.history`.
    pub recoveries: u32,
    /// … of which through an incentive code.
    pub recoveries_with_code: u32,
}

/// Default look-back of `max_received` and `discount_hunter`.
pub const DEFAULT_HISTORY_DAYS: i64 = 365;

impl Facts {
    /// Facts for a customer with no history (previews, simulations).
    pub fn new(total: Money, orders_count: u32, shop_currency: Currency) -> Self {
        Self { total, orders_count, total_spent: None, shop_currency, history: History::default() }
    }
}

/// A chosen offer, ready for templates and the shop.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChosenOffer {
    /// Tier name.
    pub tier: String,
    /// Percent off, in permille.
    pub percent_off_permille: Option<u16>,
    /// Discount cap, minor units (the tier's and the campaign's, whichever is lower).
    pub max_discount_minor: Option<i64>,
    /// Fixed amount off, minor units (capped by the campaign's `max_discount`).
    pub amount_off_minor: Option<i64>,
    /// Free shipping.
    pub free_shipping: bool,
    /// The code applies from this order value, minor units.
    #[serde(default)]
    pub min_order_minor: Option<i64>,
    /// How much the cart lacks to reach `min_order_minor`.
    #[serde(default)]
    pub gap_minor: Option<i64>,
    /// A better tier the customer reaches by adding `gap_minor` of that offer to the cart.
    #[serde(default)]
    pub next: Option<Box<ChosenOffer>>,
    /// One line for people and logs: `10% off`, `5.00 EUR off`, `free shipping`.
    pub summary: String,
}

impl ChosenOffer {
    /// The discount this offer gives on an order of `total_minor` (free shipping counts 0: its
    /// cost is the shop's shipping price, which Cartback does not know).
    pub fn discount_for(&self, total_minor: i64) -> i64 {
        if self.min_order_minor.is_some_and(|m| total_minor < m) {
            return 0;
        }
        let total = total_minor.max(0);
        if let Some(p) = self.percent_off_permille {
            let d = total.saturating_mul(i64::from(p)) / 1000;
            return self.max_discount_minor.map_or(d, |cap| d.min(cap));
        }
        self.amount_off_minor.map_or(0, |a| a.min(total))
    }
}

/// What [`decide`] concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// This offer.
    Offer(ChosenOffer),
    /// A tier matched that deliberately offers nothing.
    Nothing {
        /// Its name.
        tier: String,
    },
    /// The customer received one within the cooldown (Unix ms of that one).
    Cooldown {
        /// When they last received one.
        last_issued_at: i64,
    },
    /// No tier applies (or the matching one has no value in the cart's currency).
    NoTier,
}

fn amount_in(a: &Option<Amount>, cur: Currency, shop: Currency) -> Option<Option<Money>> {
    a.as_ref().map(|a| a.for_currency(cur, shop))
}

/// Whether a discount hunter: at least `min_recoveries` recoveries within the history, every
/// one of them through a code.
pub fn is_discount_hunter(inc: &Incentives, h: &History) -> bool {
    inc.discount_hunter
        .as_ref()
        .is_some_and(|r| h.recoveries >= r.min_recoveries.max(1) && h.recoveries_with_code == h.recoveries)
}

fn holds(inc: &Incentives, t: &Tier, f: &Facts) -> bool {
    why_not(inc, t, f).is_none()
}

/// The first condition of `t` that the facts do not meet, in words; `None` when all hold.
pub fn why_not(inc: &Incentives, t: &Tier, f: &Facts) -> Option<String> {
    let w = &t.when;
    let cur = f.total.currency();
    // Lifetime spend in another currency than the cart's is unknown here.
    let spent = f.total_spent.filter(|s| s.currency() == cur).or_else(|| {
        (f.orders_count == 0).then(|| Money::from_minor(0, cur)) // nobody spent anything before a first order
    });
    // A bound with no value in this currency cannot be judged, so the tier does not apply.
    let bound = |name: &str, b: &Option<Amount>, v: Option<Money>, at_least: bool| -> Option<String> {
        match amount_in(b, cur, f.shop_currency) {
            None => None,
            Some(None) => Some(format!("{name} has no value in {cur}")),
            Some(Some(m)) => match v {
                None => Some(format!("{name}: the customer's lifetime spend in {cur} is unknown")),
                Some(v) if at_least && v.minor() < m.minor() => Some(format!("{name}: {v} is below {m}")),
                Some(v) if !at_least && v.minor() > m.minor() => Some(format!("{name}: {v} is above {m}")),
                Some(_) => None,
            },
        }
    };
    let count = |name: &str, want: Option<u32>, have: u32, at_least: bool| -> Option<String> {
        match want {
            Some(n) if at_least && have < n => Some(format!("{name}: {have} is fewer than {n}")),
            Some(n) if !at_least && have > n => Some(format!("{name}: {have} is more than {n}")),
            _ => None,
        }
    };
    let hunter = is_discount_hunter(inc, &f.history);
    bound("min_total", &w.min_total, Some(f.total), true)
        .or_else(|| bound("max_total", &w.max_total, Some(f.total), false))
        .or_else(|| count("min_orders", w.min_orders, f.orders_count, true))
        .or_else(|| count("max_orders", w.max_orders, f.orders_count, false))
        .or_else(|| bound("min_spent", &w.min_spent, spent, true))
        .or_else(|| bound("max_spent", &w.max_spent, spent, false))
        .or_else(|| match w.first_order {
            Some(true) if f.orders_count > 0 => {
                Some(format!("first_order: the customer has {} order(s)", f.orders_count))
            }
            Some(false) if f.orders_count == 0 => Some("first_order: false, but the customer never ordered".into()),
            _ => None,
        })
        .or_else(|| count("max_received", w.max_received, f.history.received, false))
        .or_else(|| match w.discount_hunter {
            Some(want) if want != hunter => Some(format!(
                "discount_hunter: {want}, but the customer is {}a discount hunter ({} of {} recoveries through a code)",
                if hunter { "" } else { "not " },
                f.history.recoveries_with_code,
                f.history.recoveries
            )),
            _ => None,
        })
}

/// Why [`decide`] decides as it does, one line per tier considered: for marketers
/// (`campaign simulate`, `campaign preview`) and the cart timeline.
pub fn explain(inc: &Incentives, f: &Facts, now_ms: i64) -> Vec<String> {
    if let (Some(cooldown), Some(last)) = (&inc.cooldown, f.history.last_issued_at)
        && now_ms - last < cooldown.get().num_milliseconds()
    {
        return vec![format!("none: the customer received an incentive within the {cooldown} cooldown")];
    }
    let mut out = Vec::new();
    for t in &inc.tiers {
        match why_not(inc, t, f) {
            Some(why) => out.push(format!("tier {}: no ({why})", t.name.value)),
            None => {
                let verdict = match decide(inc, f, now_ms) {
                    Decision::Offer(o) => format!("tier {}: yes → {}", t.name.value, o.summary),
                    Decision::Nothing { .. } => format!("tier {}: yes → nothing, by design", t.name.value),
                    _ => format!("tier {}: yes, but its amount has no value in {}", t.name.value, f.total.currency()),
                };
                out.push(verdict);
                return out;
            }
        }
    }
    out.push("no tier matches: no incentive".into());
    out
}

/// The whole incentive policy for one cart at time `now_ms`.
pub fn decide(inc: &Incentives, f: &Facts, now_ms: i64) -> Decision {
    if let (Some(cooldown), Some(last)) = (&inc.cooldown, f.history.last_issued_at)
        && now_ms - last < cooldown.get().num_milliseconds()
    {
        return Decision::Cooldown { last_issued_at: last };
    }
    let Some(index) = inc.tiers.iter().position(|t| holds(inc, t, f)) else {
        return Decision::NoTier;
    };
    let tier = &inc.tiers[index];
    if tier.offer.nothing {
        return Decision::Nothing { tier: tier.name.value.clone() };
    }
    let Some(mut offer) = offer_of_capped(inc, tier, f.total.currency(), f.shop_currency) else {
        return Decision::NoTier;
    };
    offer.gap_minor = offer.min_order_minor.map(|m| m - f.total.minor()).filter(|g| *g > 0);
    offer.next = upsell(inc, &inc.tiers[..index], f).map(Box::new);
    Decision::Offer(offer)
}

/// The first better tier (earlier in the list) the customer would reach by adding to the
/// cart: every condition but the cart total holds at its `min_total`.
fn upsell(inc: &Incentives, better: &[Tier], f: &Facts) -> Option<ChosenOffer> {
    better.iter().find_map(|t| {
        if t.offer.nothing {
            return None;
        }
        let threshold = amount_in(&t.when.min_total, f.total.currency(), f.shop_currency)??;
        let gap = threshold.minor() - f.total.minor();
        if gap <= 0 || !holds(inc, t, &Facts { total: threshold, ..*f }) {
            return None;
        }
        let mut o = offer_of_capped(inc, t, f.total.currency(), f.shop_currency)?;
        o.gap_minor = Some(gap);
        Some(o)
    })
}

fn offer_of_capped(inc: &Incentives, t: &Tier, cur: Currency, shop: Currency) -> Option<ChosenOffer> {
    let mut o = offer_of(t, cur, shop)?;
    if let Some(cap) = inc.max_discount.as_ref().and_then(|a| a.for_currency(cur, shop)) {
        let cap = cap.minor();
        if o.percent_off_permille.is_some() {
            o.max_discount_minor = Some(o.max_discount_minor.map_or(cap, |m| m.min(cap)));
        }
        if let Some(a) = o.amount_off_minor {
            o.amount_off_minor = Some(a.min(cap));
        }
        o.summary = summary(&o, cur);
    }
    Some(o)
}

fn summary(o: &ChosenOffer, cur: Currency) -> String {
    let m = |minor: i64| Money::from_minor(minor, cur);
    if let Some(p) = o.percent_off_permille {
        let pct = if p % 10 == 0 { format!("{}%", p / 10) } else { format!("{}.{}%", p / 10, p % 10) };
        match o.max_discount_minor {
            Some(cap) => format!("{pct} off (up to {})", m(cap)),
            None => format!("{pct} off"),
        }
    } else if let Some(a) = o.amount_off_minor {
        format!("{} off", m(a))
    } else {
        "free shipping".to_owned()
    }
}

/// The first matching tier's offer for a customer with no history (previews, simulations).
pub fn choose(inc: &Incentives, f: &Facts) -> Option<ChosenOffer> {
    match decide(inc, f, 0) {
        Decision::Offer(o) => Some(o),
        _ => None,
    }
}

/// What `tier` offers in `cur`, before the campaign's cap (`None` for a fixed amount or a
/// minimum order with no value in that currency, and for `nothing`).
pub fn offer_of(t: &Tier, cur: Currency, shop_currency: Currency) -> Option<ChosenOffer> {
    let o = &t.offer;
    if o.nothing {
        return None;
    }
    let amount = |a: &Option<Amount>| a.as_ref().and_then(|a| a.for_currency(cur, shop_currency));
    let amount_off = amount(&o.amount_off);
    let min_order = amount(&o.min_order);
    if (o.amount_off.is_some() && amount_off.is_none()) || (o.min_order.is_some() && min_order.is_none()) {
        return None; // an amount with no value in this currency cannot be offered
    }
    let mut chosen = ChosenOffer {
        tier: t.name.value.clone(),
        percent_off_permille: o.percent_off.map(|p| p.0),
        max_discount_minor: amount(&o.max_discount).map(Money::minor),
        amount_off_minor: amount_off.map(Money::minor),
        free_shipping: o.free_shipping,
        min_order_minor: min_order.map(Money::minor),
        gap_minor: None,
        next: None,
        summary: String::new(),
    };
    chosen.summary = summary(&chosen, cur);
    Some(chosen)
}

/// A single-use code: `format` with each `#` replaced by a random character from an alphabet
/// without look-alikes (32 symbols, 5 bits each), or `prefix-` + 10 such characters (50 bits).
pub fn new_code(prefix: Option<&str>, format: Option<&str>) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let mut pick = || ALPHABET[rng.random_range(0..ALPHABET.len())] as char;
    match format {
        // Upper case throughout: orders' codes are matched case-insensitively.
        Some(f) => f.chars().map(|c| if c == '#' { pick() } else { c.to_ascii_uppercase() }).collect(),
        None => {
            let body: String = (0..10).map(|_| pick()).collect();
            format!("{}-{body}", prefix.unwrap_or("CB").to_ascii_uppercase())
        }
    }
}

#[cfg(test)]
mod tests;
