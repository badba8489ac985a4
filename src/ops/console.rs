//! What the operator console shows beyond the overview: campaigns with their switches, carts
//! found by an operator's search, and the day-by-day series behind the charts.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::OpsError;
use crate::app::App;
use crate::domain::{Email, Phone};
use crate::store::CartRow;

/// A loaded campaign as the console lists it.
#[derive(Debug, Serialize)]
pub struct CampaignLine {
    /// Name.
    pub name: String,
    /// `cart` or `unpaid_order`.
    pub kind: String,
    /// Whether an operator paused it.
    pub paused: bool,
    /// Holdout share, e.g. `10%`.
    pub holdout: String,
    /// `(step id, after, channels)` in order.
    pub steps: Vec<(String, String, String)>,
}

/// Every loaded campaign, by name, with whether it is paused.
pub async fn campaigns(app: &App) -> Result<Vec<CampaignLine>, OpsError> {
    let set = app.campaigns();
    let mut tx = app.db.begin().await?;
    let mut out = Vec::new();
    for c in set.campaigns() {
        let paused = tx.campaign_paused(&c.name.value).await?;
        let steps = c
            .steps
            .iter()
            .map(|s| {
                let channels: Vec<&str> = s.all_channels().map(|ch| ch.as_str()).collect();
                (s.id.value.clone(), s.after.value.to_string(), channels.join(", "))
            })
            .collect();
        out.push(CampaignLine {
            name: c.name.value.clone(),
            kind: c.kind.as_str().to_owned(),
            paused,
            holdout: format!("{}%", f64::from(c.holdout.0) / 10.0),
            steps,
        });
    }
    tx.commit().await?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// How an operator's search text is read: a cart id always, and an email address or a phone
/// number when it parses as one (in the form Cartback stores them).
#[derive(Debug, PartialEq, Eq)]
pub struct CartQuery {
    /// The text as a shop's cart id.
    pub cart: String,
    /// Canonical email, when the text is one.
    pub email: Option<String>,
    /// E.164 number, when the text is one.
    pub phone: Option<String>,
}

impl CartQuery {
    /// Read `q`; `None` when it is blank or too long to be any of them.
    pub fn parse(q: &str) -> Option<Self> {
        let q = q.trim();
        if q.is_empty() || q.len() > 320 {
            return None;
        }
        Some(Self {
            cart: q.to_owned(),
            email: Email::parse(q).ok().map(|e| e.canonical()),
            phone: Phone::parse(q).ok().map(|p| p.as_str().to_owned()),
        })
    }
}

/// Carts matching an operator's search, most recently active first (at most `limit`).
pub async fn search_carts(app: &App, q: &CartQuery, limit: i64) -> Result<Vec<CartRow>, OpsError> {
    let mut tx = app.db.begin().await?;
    let rows = tx.search_carts(&q.cart, q.email.as_deref(), q.phone.as_deref(), limit).await?;
    tx.commit().await?;
    Ok(rows)
}

/// One UTC day of the charts.
#[derive(Debug, Default, Serialize)]
pub struct Day {
    /// The day.
    pub date: Option<NaiveDate>,
    /// Messages by `(channel, outcome)`.
    pub sends: BTreeMap<(String, String), i64>,
    /// Treatment carts recovered.
    pub recovered: i64,
    /// Their revenue, per currency, in minor units.
    pub revenue: BTreeMap<String, i64>,
    /// Revenue less the discounts of Cartback's codes, per currency, in minor units.
    pub net: BTreeMap<String, i64>,
}

/// The last `days` UTC days (today included), oldest first, for one campaign and step when given.
pub async fn series(
    app: &App,
    now: DateTime<Utc>,
    days: i64,
    campaign: Option<&str>,
    step: Option<&str>,
) -> Result<Vec<Day>, OpsError> {
    const DAY_MS: i64 = 86_400_000;
    let days = days.clamp(1, 366);
    let today = now.timestamp_millis().div_euclid(DAY_MS);
    let first = today - days + 1;
    let mut tx = app.db.begin().await?;
    let sends = tx.daily_sends(first * DAY_MS, campaign, step).await?;
    let recoveries = tx.daily_recoveries(first * DAY_MS, campaign, step).await?;
    tx.commit().await?;
    Ok(fill_days(first, today, &sends, &recoveries))
}

/// One [`Day`] per day from `first` to `last` (days since the epoch), empty where nothing happened.
fn fill_days(
    first: i64,
    last: i64,
    sends: &[crate::store::console::DailySendRow],
    recoveries: &[crate::store::console::DailyRecoveryRow],
) -> Vec<Day> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let mut out: Vec<Day> = (first..=last)
        .map(|d| Day { date: epoch.checked_add_days(chrono::Days::new(d.max(0).unsigned_abs())), ..Day::default() })
        .collect();
    let len = out.len();
    let slot = |day: i64| usize::try_from(day - first).ok().filter(|i| *i < len);
    for (day, channel, status, n) in sends {
        if let Some(i) = slot(*day) {
            *out[i].sends.entry((channel.clone(), status.clone())).or_default() += n;
        }
    }
    for (day, currency, carts, revenue, discount) in recoveries {
        if let Some(i) = slot(*day) {
            let currency = currency.clone().unwrap_or_default();
            out[i].recovered += carts;
            *out[i].revenue.entry(currency.clone()).or_default() += revenue;
            *out[i].net.entry(currency).or_default() += revenue - discount;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_reads_emails_and_numbers_as_cartback_stores_them() {
        let q = CartQuery::parse("  Anna@Example.DE ").expect("query");
        assert_eq!(q.email.as_deref(), Some("anna@example.de"));
        assert_eq!(q.phone, None);
        let q = CartQuery::parse("+49 151 2345 6789").expect("query");
        assert_eq!(q.phone.as_deref(), Some("+4915123456789"));
        assert_eq!(q.email, None);
        let q = CartQuery::parse("c_1001").expect("query");
        assert_eq!((q.cart.as_str(), q.email, q.phone), ("c_1001", None, None));
        assert_eq!(CartQuery::parse("   "), None);
    }

    #[test]
    fn days_without_activity_are_drawn_empty_and_net_revenue_subtracts_discounts() {
        let sends =
            vec![(20_000, "email".to_owned(), "sent".to_owned(), 3), (20_002, "sms".into(), "failed".into(), 1)];
        let recoveries =
            vec![(20_002, Some("EUR".to_owned()), 2, 10_000, 1_500), (19_000, Some("EUR".into()), 9, 9, 0)];
        let days = fill_days(20_000, 20_002, &sends, &recoveries);
        assert_eq!(days.len(), 3);
        assert_eq!(days[0].date, NaiveDate::from_ymd_opt(2024, 10, 4));
        assert_eq!(days[0].sends.get(&("email".into(), "sent".into())), Some(&3));
        assert!(days[1].sends.is_empty() && days[1].recovered == 0);
        assert_eq!(days[2].recovered, 2, "a recovery before the window is not counted");
        assert_eq!(days[2].revenue.get("EUR"), Some(&10_000));
        assert_eq!(days[2].net.get("EUR"), Some(&8_500));
    }
}
