//! What a campaign would do for one abandonment: each step's send time, and why it moved.

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use crate::campaign::schedule::step_time;
use crate::campaign::{Campaign, Channel};
use crate::domain::{Currency, Money};
use crate::incentive::{self, Facts};

/// One step of a simulated sequence.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SimulatedStep {
    /// Step id.
    pub step: String,
    /// Channels.
    pub channels: Vec<Channel>,
    /// `abandoned_at + after`.
    pub earliest_utc: DateTime<Utc>,
    /// When it would go out.
    pub send_utc: DateTime<Utc>,
    /// The same instant in the customer's zone.
    pub send_local: String,
    /// One line per adjustment: window and cap deferrals, DST shifts.
    pub notes: Vec<String>,
    /// For incentive steps with a sample cart: the tier and offer.
    pub incentive: Option<String>,
    /// … and why: one line per tier considered.
    pub incentive_why: Vec<String>,
}

/// A sample cart for tier selection.
#[derive(Debug, Clone, Copy)]
pub struct SampleCart {
    /// Cart total.
    pub total: Money,
    /// Customer's earlier orders.
    pub orders_count: u32,
    /// Customer's lifetime spend, when known.
    pub total_spent: Option<Money>,
}

/// Simulate the sequence of `campaign` for a cart abandoned at `abandoned_at` in `tz`.
/// The frequency cap counts this sequence's own sends.
pub fn simulate(
    campaign: &Campaign,
    abandoned_at: DateTime<Utc>,
    tz: Tz,
    cart: Option<SampleCart>,
    shop_currency: Currency,
) -> Vec<SimulatedStep> {
    let mut sent: Vec<DateTime<Utc>> = Vec::new();
    let mut out = Vec::new();
    let offset_at_abandonment = tz.offset_from_utc_datetime(&abandoned_at.naive_utc()).fix();
    for step in &campaign.steps {
        let earliest = abandoned_at + step.after.value.get();
        let plan = step_time(earliest, tz, step.at_local.map(|t| t.0), campaign.send_window.as_ref());
        let mut at = plan.at;
        let mut notes = plan.notes;
        if let Some(cap) = &campaign.frequency_cap {
            let per = cap.per.get();
            let max = usize::try_from(cap.max).unwrap_or(usize::MAX);
            loop {
                let recent: Vec<_> = sent.iter().filter(|s| **s > at - per && **s <= at).copied().collect();
                if recent.len() < max {
                    break;
                }
                let frees = recent[recent.len() - max] + per + chrono::Duration::milliseconds(1);
                let replan = step_time(frees, tz, None, campaign.send_window.as_ref());
                notes.push(format!(
                    "deferred: frequency cap {} per {} reached; next allowed {}",
                    cap.max,
                    cap.per,
                    replan.at.with_timezone(&tz).format("%a %Y-%m-%d %H:%M %Z")
                ));
                notes.extend(replan.notes);
                at = replan.at;
            }
        }
        let offset_at_send = tz.offset_from_utc_datetime(&at.naive_utc()).fix();
        if offset_at_send != offset_at_abandonment {
            notes.push(format!(
                "clocks changed since abandonment ({offset_at_abandonment} → {offset_at_send}): delays are exact hours, so the local time shifts by the change"
            ));
        }
        sent.push(at);
        let (incentive, incentive_why) = match (&step.incentive, &campaign.incentives, cart) {
            (Some(_), Some(inc), Some(c)) => {
                let facts = Facts { total_spent: c.total_spent, ..Facts::new(c.total, c.orders_count, shop_currency) };
                let chosen = incentive::choose(inc, &facts).map_or_else(
                    || "no tier matches this cart".to_owned(),
                    |o| format!("tier {}: {}", o.tier, o.summary),
                );
                (Some(chosen), incentive::explain(inc, &facts, 0))
            }
            _ => (None, Vec::new()),
        };
        out.push(SimulatedStep {
            step: step.id.value.clone(),
            channels: step.channels.value.clone(),
            earliest_utc: earliest,
            send_utc: at,
            send_local: at.with_timezone(&tz).format("%a %Y-%m-%d %H:%M:%S %Z").to_string(),
            notes,
            incentive,
            incentive_why,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_campaign() -> Campaign {
        let text = std::fs::read_to_string("campaigns/default.yaml").expect("default campaign");
        crate::campaign::parse_campaign(std::path::Path::new("default.yaml"), &text, &|_, _| true).expect("valid")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("rfc3339").with_timezone(&Utc)
    }

    #[test]
    fn late_evening_abandonment_in_berlin_defers_the_reminder_to_the_morning() {
        // 20:30 CET abandonment; reminder +1h = 21:30 local, outside 09:00–21:00 → 09:00 next day.
        let steps = simulate(
            &default_campaign(),
            utc("2026-11-20T19:30:00Z"),
            chrono_tz::Europe::Berlin,
            None,
            Currency::parse("EUR").expect("EUR"),
        );
        assert_eq!(steps[0].send_utc, utc("2026-11-21T08:00:00Z"));
        assert!(steps[0].notes.iter().any(|n| n.starts_with("deferred")), "{:?}", steps[0].notes);
        // FAQ +24h = 20:30 local next day: inside the window.
        assert_eq!(steps[1].send_utc, utc("2026-11-21T19:30:00Z"));
        // Incentive +72h at 10:00 local.
        assert_eq!(steps[2].send_utc, utc("2026-11-24T09:00:00Z"));
        // Never before the step's delay.
        assert!(steps.iter().all(|s| s.send_utc >= s.earliest_utc));
    }

    #[test]
    fn frequency_cap_defers_a_message_over_the_cap() {
        let mut c = default_campaign();
        c.send_window = None;
        c.frequency_cap =
            Some(crate::campaign::FrequencyCap { max: 1, per: crate::campaign::Span::parse("48h").expect("span") });
        let steps =
            simulate(&c, utc("2026-06-01T10:00:00Z"), chrono_tz::UTC, None, Currency::parse("EUR").expect("EUR"));
        // reminder at +1h; faq at +24h is within 48h of it → deferred to reminder + 48h.
        assert_eq!(steps[1].send_utc, utc("2026-06-03T11:00:00.001Z"));
        assert!(steps[1].notes.iter().any(|n| n.contains("frequency cap")));
    }

    #[test]
    fn shows_the_tier_for_a_sample_cart() {
        let eur = Currency::parse("EUR").expect("EUR");
        let cart = SampleCart { total: Money::parse("250", eur).expect("amount"), orders_count: 4, total_spent: None };
        let steps = simulate(&default_campaign(), utc("2026-06-01T10:00:00Z"), chrono_tz::UTC, Some(cart), eur);
        assert_eq!(steps[2].incentive.as_deref(), Some("tier vip: 15% off (up to 60.00 EUR)"));
    }
}
