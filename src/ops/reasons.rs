//! Where carts are lost and which reasons recover: the abandonment-reason view of the funnel.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::OpsError;
use crate::app::App;

/// One reason.
#[derive(Debug, Default, Serialize)]
pub struct ReasonStats {
    /// `payment / payment_failed / card_declined`, `shipping_cost`, or `(none given)`.
    pub reason: String,
    /// Abandoned carts.
    pub carts: i64,
    /// … recovered.
    pub recovered: i64,
    /// `recovered / carts`.
    pub recovery_rate: f64,
    /// Recovered revenue per currency (decimal).
    pub revenue: BTreeMap<String, String>,
    /// Value of the carts not recovered, per currency (decimal): what this reason costs.
    pub lost: BTreeMap<String, String>,
}

/// Both views.
#[derive(Debug, Serialize)]
pub struct Reasons {
    /// Carts created since.
    pub since: DateTime<Utc>,
    /// As the shop reported them in events (`stage`, `reason`, `reason_detail`), most lost first.
    pub reported_by_shop: Vec<ReasonStats>,
    /// As customers answered "what stopped you?", most lost first.
    pub reported_by_customers: Vec<ReasonStats>,
}

type Acc = (i64, i64, BTreeMap<String, i64>, BTreeMap<String, i64>);

fn finish(acc: BTreeMap<String, Acc>) -> Vec<ReasonStats> {
    let mut out: Vec<(i64, ReasonStats)> = acc
        .into_iter()
        .map(|(reason, (carts, recovered, revenue, lost))| {
            let total_lost: i64 = lost.values().sum();
            let rate = if carts > 0 { recovered as f64 / carts as f64 } else { 0.0 };
            (
                total_lost,
                ReasonStats {
                    reason,
                    carts,
                    recovered,
                    recovery_rate: rate,
                    revenue: super::decimals(&revenue),
                    lost: super::decimals(&lost),
                },
            )
        })
        .collect();
    // Most value lost first (summed across currencies only to order the list, never shown).
    out.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.carts.cmp(&a.1.carts)));
    out.into_iter().map(|(_, r)| r).collect()
}

/// Abandoned carts created since `since`, by reason.
pub async fn by_reason(app: &App, since: DateTime<Utc>, shop: Option<&str>) -> Result<Reasons, OpsError> {
    let mut tx = app.db.begin().await?;
    let rows = tx.funnel_reasons(since.timestamp_millis(), shop).await?;
    tx.commit().await?;
    let mut shop_view: BTreeMap<String, Acc> = BTreeMap::new();
    let mut customer_view: BTreeMap<String, Acc> = BTreeMap::new();
    for (stage, reason, detail, reported, currency, carts, recovered, revenue, lost) in rows {
        let by_shop = match (&stage, &reason) {
            (None, None) => "(none given)".to_owned(),
            _ => [stage.as_deref(), reason.as_deref(), detail.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" / "),
        };
        let by_customer = reported.unwrap_or_else(|| "(no answer)".into());
        let cur = currency.unwrap_or_default();
        for (view, key) in [(&mut shop_view, by_shop), (&mut customer_view, by_customer)] {
            let e = view.entry(key).or_default();
            e.0 += carts;
            e.1 += recovered;
            *e.2.entry(cur.clone()).or_default() += revenue;
            *e.3.entry(cur.clone()).or_default() += lost;
        }
    }
    Ok(Reasons { since, reported_by_shop: finish(shop_view), reported_by_customers: finish(customer_view) })
}
