//! What operators read and change: queue jobs joined with their carts, campaign switches,
//! and the raw numbers behind the funnel.
//!
//! apalis 1.0 has no API to list, retry or cancel jobs; these statements act on its tables
//! directly and never touch a job a worker holds (`Queued`/`Running` with a lock).

use super::{StoreError, Tx, on_tx, on_tx_sql};

/// One queue job as operators see it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct JobRow {
    /// The queue's job id (ULID).
    pub id: String,
    /// pending | scheduled | running | done | failed | dead | cancelled
    pub state: String,
    /// The queue's own status word.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// When it is due (Unix seconds).
    pub run_at: i64,
    /// The worker holding it.
    pub lock_by: Option<String>,
    /// When it was locked (Unix seconds).
    pub lock_at: Option<i64>,
    /// When it finished (Unix seconds).
    pub done_at: Option<i64>,
    /// The last result or error, as the queue stored it.
    pub last_result: Option<String>,
    /// Cart row id from the payload.
    pub cart_id: Option<i64>,
    /// Cart seq from the payload.
    pub seq: Option<i64>,
    /// Shop of the cart.
    pub shop: Option<String>,
    /// The shop's cart id.
    pub cart: Option<String>,
    /// Campaign the cart entered.
    pub campaign: Option<String>,
    /// The cart's current seq (a job with another seq is superseded and does nothing).
    pub cart_seq: Option<i64>,
    /// The cart's next step index.
    pub next_step: Option<i64>,
    /// The cart's status.
    pub cart_status: Option<String>,
}

/// Filters for [`Tx::list_jobs`].
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// One state.
    pub state: Option<String>,
    /// One shop.
    pub shop: Option<String>,
    /// One campaign.
    pub campaign: Option<String>,
    /// One cart (the shop's id).
    pub cart: Option<String>,
    /// At most this many, newest due time first.
    pub limit: i64,
}

const SQLITE_JOBS: &str = "SELECT * FROM (
  SELECT j.id, j.status, CAST(j.attempts AS INTEGER) AS attempts, CAST(j.max_attempts AS INTEGER) AS max_attempts,
    j.run_at, j.lock_by, j.lock_at, j.done_at, j.last_result,
    CASE WHEN j.status = 'Pending' AND j.run_at > strftime('%s', 'now') THEN 'scheduled'
         WHEN j.status = 'Pending' THEN 'pending'
         WHEN j.status IN ('Queued', 'Running') THEN 'running'
         WHEN j.status = 'Done' THEN 'done'
         WHEN j.status = 'Failed' AND j.attempts < j.max_attempts THEN 'failed'
         WHEN j.status = 'Killed' AND j.last_result LIKE '%cancelled by operator%' THEN 'cancelled'
         ELSE 'dead' END AS state,
    CAST(json_extract(CAST(j.job AS TEXT), '$.cart') AS INTEGER) AS cart_id,
    CAST(json_extract(CAST(j.job AS TEXT), '$.seq') AS INTEGER) AS seq,
    c.shop, c.external_id AS cart, c.campaign, c.seq AS cart_seq, c.next_step, c.status AS cart_status
  FROM Jobs j LEFT JOIN carts c ON c.id = CAST(json_extract(CAST(j.job AS TEXT), '$.cart') AS INTEGER)
  WHERE j.job_type IN ($1, $8)) AS x
WHERE ($2 IS NULL OR state = $2) AND ($3 IS NULL OR shop = $3) AND ($4 IS NULL OR campaign = $4)
  AND ($5 IS NULL OR cart = $5) AND ($6 IS NULL OR id = $6)
ORDER BY run_at DESC, id DESC LIMIT $7";

const PG_JOBS: &str = "SELECT * FROM (
  SELECT j.id, j.status, j.attempts::BIGINT AS attempts, j.max_attempts::BIGINT AS max_attempts,
    EXTRACT(EPOCH FROM j.run_at)::BIGINT AS run_at, j.lock_by, EXTRACT(EPOCH FROM j.lock_at)::BIGINT AS lock_at,
    EXTRACT(EPOCH FROM j.done_at)::BIGINT AS done_at, j.last_result::TEXT AS last_result,
    CASE WHEN j.status = 'Pending' AND j.run_at > now() THEN 'scheduled'
         WHEN j.status = 'Pending' THEN 'pending'
         WHEN j.status IN ('Queued', 'Running') THEN 'running'
         WHEN j.status = 'Done' THEN 'done'
         WHEN j.status = 'Failed' AND j.attempts < j.max_attempts THEN 'failed'
         WHEN j.status = 'Killed' AND j.last_result::TEXT LIKE '%cancelled by operator%' THEN 'cancelled'
         ELSE 'dead' END AS state,
    (convert_from(j.job, 'UTF8')::jsonb ->> 'cart')::BIGINT AS cart_id,
    (convert_from(j.job, 'UTF8')::jsonb ->> 'seq')::BIGINT AS seq,
    c.shop, c.external_id AS cart, c.campaign, c.seq AS cart_seq, c.next_step, c.status AS cart_status
  FROM apalis.jobs j LEFT JOIN carts c ON c.id = (convert_from(j.job, 'UTF8')::jsonb ->> 'cart')::BIGINT
  WHERE j.job_type IN ($1, $8)) AS x
WHERE ($2::TEXT IS NULL OR state = $2) AND ($3::TEXT IS NULL OR shop = $3) AND ($4::TEXT IS NULL OR campaign = $4)
  AND ($5::TEXT IS NULL OR cart = $5) AND ($6::TEXT IS NULL OR id = $6)
ORDER BY run_at DESC, id DESC LIMIT $7";

/// Raw funnel rows: `(campaign, arm, status, currency, carts, recovered, revenue_minor)`.
pub type CartFunnelRow = (Option<String>, Option<String>, String, Option<String>, i64, i64, Option<i64>);

impl Tx {
    /// Jobs of `queue` and of `waiting` (its far-future jobs) matching `f`.
    pub async fn list_jobs(
        &mut self,
        (queue, waiting): (&str, &str),
        f: &JobFilter,
    ) -> Result<Vec<JobRow>, StoreError> {
        self.jobs_query((queue, waiting), f, None).await
    }

    /// One job of `queue` or `waiting` by id.
    pub async fn job(&mut self, (queue, waiting): (&str, &str), id: &str) -> Result<Option<JobRow>, StoreError> {
        let one = JobFilter { limit: 1, ..JobFilter::default() };
        Ok(self.jobs_query((queue, waiting), &one, Some(id)).await?.into_iter().next())
    }

    async fn jobs_query(
        &mut self,
        (queue, waiting): (&str, &str),
        f: &JobFilter,
        id: Option<&str>,
    ) -> Result<Vec<JobRow>, StoreError> {
        Ok(on_tx_sql!(self, sql = (SQLITE_JOBS, PG_JOBS), |c| sqlx::query_as::<_, JobRow>(sql)
            .bind(queue)
            .bind(&f.state)
            .bind(&f.shop)
            .bind(&f.campaign)
            .bind(&f.cart)
            .bind(id)
            .bind(f.limit.clamp(1, 10_000))
            .bind(waiting)
            .fetch_all(&mut *c)
            .await?))
    }

    /// Put a failed, dead or cancelled job back in `queue`, due now. `false` if it changed meanwhile.
    pub async fn requeue_job(&mut self, queue: &str, id: &str, from_status: &str) -> Result<bool, StoreError> {
        let n = on_tx_sql!(
            self,
            sql = (
                "UPDATE Jobs SET status = 'Pending', attempts = 0, run_at = strftime('%s', 'now'), lock_by = NULL,
             lock_at = NULL, done_at = NULL, last_result = NULL, job_type = $3
             WHERE id = $1 AND status = $2 AND status IN ('Failed', 'Killed')",
                "UPDATE apalis.jobs SET status = 'Pending', attempts = 0, run_at = now(), lock_by = NULL,
             lock_at = NULL, done_at = NULL, last_result = NULL, job_type = $3
             WHERE id = $1 AND status = $2 AND status IN ('Failed', 'Killed')"
            ),
            |c| sqlx::query(sql).bind(id).bind(from_status).bind(queue).execute(&mut *c).await?.rows_affected()
        );
        Ok(n == 1)
    }

    /// Cancel a job no worker holds. `false` if a worker took it meanwhile.
    pub async fn cancel_job(&mut self, id: &str) -> Result<bool, StoreError> {
        let n = on_tx_sql!(self, sql = (
            "UPDATE Jobs SET status = 'Killed', done_at = strftime('%s', 'now'), last_result = '{\"Err\":\"cancelled by operator\"}'
             WHERE id = $1 AND status IN ('Pending', 'Failed') AND lock_by IS NULL",
            "UPDATE apalis.jobs SET status = 'Killed', done_at = now(), last_result = '{\"Err\":\"cancelled by operator\"}'::jsonb
             WHERE id = $1 AND status IN ('Pending', 'Failed') AND lock_by IS NULL"
        ), |c| sqlx::query(sql).bind(id).execute(&mut *c).await?.rows_affected());
        Ok(n == 1)
    }

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
