//! Incentive tiers and codes.
//!
//! The first tier whose conditions all hold wins. Amounts are compared only in the cart's
//! own currency (see [`crate::campaign::Amount`]). A customer who received an incentive
//! within the campaign's `cooldown` gets none.

use rand::Rng;

use crate::campaign::{Incentives, Tier};
use crate::domain::{Currency, Money};

/// What the selection looks at.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// Cart total.
    pub total: Money,
    /// Orders the customer placed before.
    pub orders_count: u32,
    /// The shop's currency (for bare-number thresholds).
    pub shop_currency: Currency,
}

/// A chosen offer, ready for templates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChosenOffer {
    /// Tier name.
    pub tier: String,
    /// Percent off, in permille.
    pub percent_off_permille: Option<u16>,
    /// Discount cap, minor units.
    pub max_discount_minor: Option<i64>,
    /// Fixed amount off, minor units.
    pub amount_off_minor: Option<i64>,
    /// Free shipping.
    pub free_shipping: bool,
    /// One line for people: `10% off`, `5.00 EUR off`, `free shipping`.
    pub summary: String,
}

fn holds(t: &Tier, f: &Facts) -> bool {
    let w = &t.when;
    let cur = f.total.currency();
    let bound = |a: &Option<crate::campaign::Amount>| a.as_ref().map(|a| a.for_currency(cur, f.shop_currency));
    let min_ok = match bound(&w.min_total) {
        None => true,
        Some(None) => false, // no threshold in this currency: the tier cannot be judged, so it does not apply
        Some(Some(m)) => f.total.minor() >= m.minor(),
    };
    let max_ok = match bound(&w.max_total) {
        None => true,
        Some(None) => false,
        Some(Some(m)) => f.total.minor() <= m.minor(),
    };
    min_ok
        && max_ok
        && w.min_orders.is_none_or(|n| f.orders_count >= n)
        && w.max_orders.is_none_or(|n| f.orders_count <= n)
}

/// The first matching tier's offer, if any (with its amounts in the cart's currency).
pub fn choose(inc: &Incentives, f: &Facts) -> Option<ChosenOffer> {
    inc.tiers.iter().find(|t| holds(t, f)).and_then(|t| offer_of(t, f.total.currency(), f.shop_currency))
}

/// What `tier` offers in `cur` (`None` for a fixed amount with no value in that currency).
pub fn offer_of(t: &Tier, cur: Currency, shop_currency: Currency) -> Option<ChosenOffer> {
    let o = &t.offer;
    let amount = |a: &Option<crate::campaign::Amount>| a.as_ref().and_then(|a| a.for_currency(cur, shop_currency));
    let max_discount = amount(&o.max_discount);
    let amount_off = amount(&o.amount_off);
    if o.amount_off.is_some() && amount_off.is_none() {
        return None; // a fixed amount with no value in this currency cannot be offered
    }
    let summary = if let Some(p) = o.percent_off {
        let pct = if p.0 % 10 == 0 { format!("{}%", p.0 / 10) } else { format!("{}.{}%", p.0 / 10, p.0 % 10) };
        match max_discount {
            Some(m) => format!("{pct} off (up to {m})"),
            None => format!("{pct} off"),
        }
    } else if let Some(a) = amount_off {
        format!("{a} off")
    } else {
        "free shipping".to_owned()
    };
    Some(ChosenOffer {
        tier: t.name.value.clone(),
        percent_off_permille: o.percent_off.map(|p| p.0),
        max_discount_minor: max_discount.map(Money::minor),
        amount_off_minor: amount_off.map(Money::minor),
        free_shipping: o.free_shipping,
        summary,
    })
}

/// A single-use code: prefix + 10 characters from an alphabet without look-alikes (≈50 bits).
pub fn new_code(prefix: Option<&str>) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let body: String = (0..10).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("{}-{body}", prefix.unwrap_or("CB"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::Campaign;

    fn campaign() -> Campaign {
        let text = std::fs::read_to_string("campaigns/default.yaml").expect("default campaign");
        crate::campaign::parse_campaign(std::path::Path::new("default.yaml"), &text, &|_, _| true).expect("valid")
    }

    fn facts(total: &str, currency: &str, orders: u32) -> Facts {
        let c = Currency::parse(currency).expect("currency");
        Facts {
            total: Money::parse(total, c).expect("amount"),
            orders_count: orders,
            shop_currency: Currency::parse("EUR").expect("EUR"),
        }
    }

    #[test]
    fn first_match_wins() {
        let c = campaign();
        let inc = c.incentives.as_ref().expect("incentives");
        assert_eq!(choose(inc, &facts("250", "EUR", 5)).map(|o| o.tier), Some("vip".into()));
        assert_eq!(choose(inc, &facts("250", "EUR", 0)).map(|o| o.tier), Some("high_value".into()));
        assert_eq!(choose(inc, &facts("50", "EUR", 0)).map(|o| o.tier), Some("first_order".into()));
        let d = choose(inc, &facts("50", "EUR", 2)).expect("default");
        assert_eq!((d.tier.as_str(), d.amount_off_minor, d.summary.as_str()), ("default", Some(500), "5.00 EUR off"));
        let vip = choose(inc, &facts("250", "EUR", 5)).expect("vip");
        assert_eq!(vip.summary, "15% off (up to 60.00 EUR)");
    }

    #[test]
    fn other_currencies_never_meet_bare_thresholds() {
        let c = campaign();
        let inc = c.incentives.as_ref().expect("incentives");
        // 25,000 JPY is not "200" of anything: vip/high_value do not apply; first_order does (no amount).
        assert_eq!(choose(inc, &facts("25000", "JPY", 0)).map(|o| o.tier), Some("first_order".into()));
        // The default tier offers 5 in the shop's currency only: no offer in JPY.
        assert_eq!(choose(inc, &facts("25000", "JPY", 3)), None);
    }

    #[test]
    fn codes_are_unique_and_readable() {
        let a = new_code(Some("SHOP"));
        assert!(a.starts_with("SHOP-") && a.len() == 15, "{a}");
        let set: std::collections::HashSet<String> = (0..1000).map(|_| new_code(None)).collect();
        assert_eq!(set.len(), 1000);
    }
}
