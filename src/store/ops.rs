//! What operators read and change: campaign switches, and the raw numbers behind the funnel.
//! (The queue's own jobs are listed and changed by `queue::tables`.)

use super::{StoreError, Tx, on_tx};

/// Raw funnel rows: `(campaign, arm, status, currency, carts, recovered, revenue_minor)`.
pub type CartFunnelRow = (Option<String>, Option<String>, String, Option<String>, i64, i64, Option<i64>);

impl Tx {
    /// Carts with the shop's id `external_id`, in any shop.
    pub async fn carts_by_external(&mut self, external_id: &str) -> Result<Vec<super::CartRow>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, super::CartRow>(
            "SELECT * FROM carts WHERE external_id = $1 ORDER BY id"
        )
        .bind(external_id)
        .fetch_all(&mut *c)
        .await?))
    }

    /// Whether a campaign is paused by an operator. The paused campaigns are read once per
    /// transaction (they are few; the transaction's own pauses and resumes are seen).
    pub async fn campaign_paused(&mut self, name: &str) -> Result<bool, StoreError> {
        if self.paused.is_none() {
            let names =
                on_tx!(self, |c| sqlx::query_scalar::<_, String>("SELECT name FROM campaign_state WHERE paused")
                    .fetch_all(&mut *c)
                    .await?);
            self.paused = Some(names);
        }
        Ok(self.paused.as_ref().is_some_and(|p| p.iter().any(|n| n == name)))
    }

    /// Pause or resume a campaign.
    pub async fn set_campaign_paused(&mut self, name: &str, paused: bool, now_ms: i64) -> Result<(), StoreError> {
        self.paused = None;
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO campaign_state (name, paused, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at"
        )
        .bind(name)
        .bind(paused)
        .bind(now_ms)
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Carts of `shop` (or all shops) created since `since_ms`, grouped for the funnel.
    pub async fn funnel_carts(&mut self, since_ms: i64, shop: Option<&str>) -> Result<Vec<CartFunnelRow>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, CartFunnelRow>(
            "SELECT campaign, arm, status, currency, COUNT(*) AS carts,
                    CAST(SUM(CASE WHEN recovered_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS recovered,
                    CAST(SUM(CASE WHEN recovered_at IS NOT NULL THEN order_total_minor ELSE 0 END) AS BIGINT) AS revenue
             FROM carts WHERE created_at >= $1 AND (CAST($2 AS TEXT) IS NULL OR shop = $2)
             GROUP BY campaign, arm, status, currency"
        )
        .bind(since_ms)
        .bind(shop)
        .fetch_all(&mut *c)
        .await?))
    }

    /// `(campaign, step, channel, status, sends, clicks)` for carts created since `since_ms`.
    pub async fn funnel_sends(
        &mut self,
        since_ms: i64,
        shop: Option<&str>,
    ) -> Result<Vec<(Option<String>, String, String, String, i64, i64)>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, (Option<String>, String, String, String, i64, i64)>(
            "SELECT c.campaign, s.step, s.channel, s.status, COUNT(*) AS sends,
                    CAST(SUM((SELECT COUNT(*) FROM clicks k WHERE k.send_id = s.id)) AS BIGINT) AS clicks
             FROM sends s JOIN carts c ON c.id = s.cart_id
             WHERE c.created_at >= $1 AND (CAST($2 AS TEXT) IS NULL OR c.shop = $2)
             GROUP BY c.campaign, s.step, s.channel, s.status"
        )
        .bind(since_ms)
        .bind(shop)
        .fetch_all(&mut *c)
        .await?))
    }

    /// Codes issued per `(campaign, tier)`: `(campaign, tier, issued, redeemed)`.
    pub async fn funnel_incentives(
        &mut self,
        since_ms: i64,
        shop: Option<&str>,
    ) -> Result<Vec<(Option<String>, String, i64, i64)>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, (Option<String>, String, i64, i64)>(
            "SELECT c.campaign, i.tier, COUNT(*),
                    CAST(SUM(CASE WHEN i.redeemed_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT)
             FROM incentives i JOIN carts c ON c.id = i.cart_id
             WHERE c.created_at >= $1 AND (CAST($2 AS TEXT) IS NULL OR c.shop = $2)
             GROUP BY c.campaign, i.tier"
        )
        .bind(since_ms)
        .bind(shop)
        .fetch_all(&mut *c)
        .await?))
    }

    /// Recovered treatment carts by what recovered them.
    pub async fn funnel_recoveries(
        &mut self,
        since_ms: i64,
        shop: Option<&str>,
    ) -> Result<Vec<RecoveryRow>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, RecoveryRow>(
            "SELECT c.campaign, c.currency, c.recovered_step, i.tier, i.offer, COUNT(*) AS carts,
                    CAST(SUM(COALESCE(c.order_total_minor, 0)) AS BIGINT) AS revenue,
                    CAST(SUM(COALESCE(c.discount_minor, 0)) AS BIGINT) AS discount
             FROM carts c LEFT JOIN incentives i ON i.code = c.incentive_code_used
             WHERE c.recovered_at IS NOT NULL AND (c.arm IS NULL OR c.arm <> 'holdout')
               AND c.created_at >= $1 AND (CAST($2 AS TEXT) IS NULL OR c.shop = $2)
             GROUP BY c.campaign, c.currency, c.recovered_step, i.tier, i.offer"
        )
        .bind(since_ms)
        .bind(shop)
        .fetch_all(&mut *c)
        .await?))
    }
}

/// Recovered treatment carts grouped by campaign, currency, last clicked step and the tier of
/// the code used (if any).
#[derive(Debug, Clone, sqlx::FromRow)]
#[allow(missing_docs)]
pub struct RecoveryRow {
    pub campaign: Option<String>,
    pub currency: Option<String>,
    pub recovered_step: Option<String>,
    pub tier: Option<String>,
    pub offer: Option<String>,
    pub carts: i64,
    pub revenue: i64,
    pub discount: i64,
}

/// A cart with a job due soon: `(shop, cart, campaign, next_step, next_run_at, timezone, status)`.
pub type UpcomingRow = (String, String, Option<String>, i64, i64, Option<String>, String);

/// A failed message: `(shop, cart, step, channel, reason, completed_at)`.
pub type FailedSendRow = (String, String, String, String, Option<String>, Option<i64>);

impl Tx {
    /// Carts whose next job falls between `from_ms` and `to_ms`, soonest first.
    pub async fn upcoming(&mut self, from_ms: i64, to_ms: i64, limit: i64) -> Result<Vec<UpcomingRow>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, UpcomingRow>(
            "SELECT shop, external_id, campaign, next_step, next_run_at, timezone, status FROM carts
             WHERE next_run_at BETWEEN $1 AND $2 AND status IN ('active', 'abandoned') ORDER BY next_run_at LIMIT $3"
        )
        .bind(from_ms)
        .bind(to_ms)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?))
    }

    /// The most recent failed messages.
    pub async fn failed_sends(&mut self, limit: i64) -> Result<Vec<FailedSendRow>, StoreError> {
        Ok(on_tx!(self, |c| {
            sqlx::query_as::<_, FailedSendRow>(
            "SELECT c.shop, c.external_id, s.step, s.channel, s.reason, s.completed_at FROM sends s
             JOIN carts c ON c.id = s.cart_id WHERE s.status IN ('failed', 'unconfirmed') ORDER BY s.completed_at DESC LIMIT $1"
        )
        .bind(limit)
        .fetch_all(&mut *c)
        .await?
        }))
    }
}

/// A message left in doubt: `(public id, shop, cart, step, channel, handed_at, completed_at, reason)`.
pub type UnconfirmedRow = (String, String, String, String, String, Option<i64>, Option<i64>, Option<String>);

impl Tx {
    /// Messages marked `unconfirmed`, oldest first.
    pub async fn unconfirmed_sends(&mut self, limit: i64) -> Result<Vec<UnconfirmedRow>, StoreError> {
        Ok(on_tx!(self, |c| {
            sqlx::query_as::<_, UnconfirmedRow>(
                "SELECT s.public_id, c.shop, c.external_id, s.step, s.channel, s.handed_at, s.completed_at, s.reason
                 FROM sends s JOIN carts c ON c.id = s.cart_id WHERE s.status = 'unconfirmed'
                 ORDER BY s.completed_at LIMIT $1",
            )
            .bind(limit)
            .fetch_all(&mut *c)
            .await?
        }))
    }
}

/// Abandoned carts grouped by why: `(stage, reason, reason_detail, reported_reason, currency,
/// carts, recovered, recovered revenue, value not recovered)`.
pub type ReasonRow =
    (Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, i64, i64, i64, i64);

impl Tx {
    /// Abandoned carts (created since `since_ms`) by stage, reason and reported reason.
    pub async fn funnel_reasons(&mut self, since_ms: i64, shop: Option<&str>) -> Result<Vec<ReasonRow>, StoreError> {
        Ok(on_tx!(self, |c| {
            sqlx::query_as::<_, ReasonRow>(
            "SELECT stage, reason, reason_detail, reported_reason, currency, COUNT(*),
                    CAST(SUM(CASE WHEN recovered_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT),
                    CAST(SUM(CASE WHEN recovered_at IS NOT NULL THEN COALESCE(order_total_minor, 0) ELSE 0 END) AS BIGINT),
                    CAST(SUM(CASE WHEN recovered_at IS NULL THEN COALESCE(total_minor, 0) ELSE 0 END) AS BIGINT)
             FROM carts
             WHERE abandoned_at IS NOT NULL AND created_at >= $1 AND (CAST($2 AS TEXT) IS NULL OR shop = $2)
             GROUP BY stage, reason, reason_detail, reported_reason, currency"
        )
        .bind(since_ms)
        .bind(shop)
        .fetch_all(&mut *c)
        .await?
        }))
    }
}
