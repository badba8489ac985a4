//! What the operator console reads beyond the funnel: carts found by an operator's search, and
//! the day-by-day series behind its charts. Days are UTC days since the Unix epoch.

use super::{CartRow, StoreError, Tx, on_tx};

/// Messages finished on one UTC day: `(day, channel, status, messages)`.
pub type DailySendRow = (i64, String, String, i64);

/// Treatment carts recovered on one UTC day, per currency: `(day, currency, carts, revenue,
/// discount through Cartback's codes)` in minor units.
pub type DailyRecoveryRow = (i64, Option<String>, i64, i64, i64);

const DAY_MS: i64 = 86_400_000;

impl Tx {
    /// Carts whose shop id is `cart`, or whose customer has the canonical `email` or the E.164
    /// `phone`, most recently active first.
    pub async fn search_carts(
        &mut self,
        cart: &str,
        email: Option<&str>,
        phone: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CartRow>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, CartRow>(
            "SELECT * FROM carts WHERE external_id = $1
               OR (CAST($2 AS TEXT) IS NOT NULL AND lower(email) = $2)
               OR (CAST($3 AS TEXT) IS NOT NULL AND phone = $3)
             ORDER BY last_activity_at DESC, id DESC LIMIT $4"
        )
        .bind(cart)
        .bind(email)
        .bind(phone)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?))
    }

    /// Messages finished since `since_ms` by day, channel and outcome, for one campaign and
    /// step when given.
    pub async fn daily_sends(
        &mut self,
        since_ms: i64,
        campaign: Option<&str>,
        step: Option<&str>,
    ) -> Result<Vec<DailySendRow>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, DailySendRow>(
            "SELECT CAST(s.completed_at / $4 AS BIGINT) AS day, s.channel, s.status, COUNT(*) AS n
             FROM sends s JOIN carts c ON c.id = s.cart_id
             WHERE s.completed_at >= $1 AND (CAST($2 AS TEXT) IS NULL OR c.campaign = $2)
               AND (CAST($3 AS TEXT) IS NULL OR s.step = $3)
             GROUP BY 1, 2, 3"
        )
        .bind(since_ms)
        .bind(campaign)
        .bind(step)
        .bind(DAY_MS)
        .fetch_all(&mut *c)
        .await?))
    }

    /// Treatment carts recovered since `since_ms` by day and currency, for one campaign and
    /// one credited step (the last one clicked before the order) when given.
    pub async fn daily_recoveries(
        &mut self,
        since_ms: i64,
        campaign: Option<&str>,
        step: Option<&str>,
    ) -> Result<Vec<DailyRecoveryRow>, StoreError> {
        Ok(on_tx!(self, |c| {
            sqlx::query_as::<_, DailyRecoveryRow>(
            "SELECT CAST(c.recovered_at / $4 AS BIGINT) AS day, c.currency, COUNT(*) AS carts,
                    CAST(SUM(COALESCE(c.order_total_minor, 0)) AS BIGINT) AS revenue,
                    CAST(SUM(CASE WHEN i.id IS NOT NULL THEN COALESCE(c.discount_minor, 0) ELSE 0 END) AS BIGINT) AS discount
             FROM carts c LEFT JOIN incentives i ON i.code = c.incentive_code_used
             WHERE c.recovered_at >= $1 AND c.campaign IS NOT NULL AND (c.arm IS NULL OR c.arm <> 'holdout')
               AND (CAST($2 AS TEXT) IS NULL OR c.campaign = $2)
               AND (CAST($3 AS TEXT) IS NULL OR c.recovered_step = $3)
             GROUP BY 1, 2"
        )
        .bind(since_ms)
        .bind(campaign)
        .bind(step)
        .bind(DAY_MS)
        .fetch_all(&mut *c)
        .await?
        }))
    }
}
