//! Incentive history, for the tier rules, and redemption of codes by orders.

use super::{StoreError, Tx, on_tx};
use crate::domain::CustomerRef;

/// What a customer's past says, for the tier rules (`cooldown`, `discount_hunter`, …).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IncentiveHistory {
    /// When they last received a code (Unix ms).
    pub last_issued_at: Option<i64>,
    /// Codes received since the lookback start.
    pub received: i64,
    /// Carts recovered since the lookback start.
    pub recoveries: i64,
    /// … of which with an incentive code on the order.
    pub recoveries_with_code: i64,
}

/// One issued code, as an order finds it.
#[derive(Debug, Clone, sqlx::FromRow)]
#[allow(missing_docs)]
pub struct IncentiveRow {
    pub id: i64,
    pub cart_id: i64,
    pub step: String,
    pub tier: String,
    pub code: String,
    pub offer: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub redeemed_at: Option<i64>,
    pub redeemed_order: Option<String>,
}

impl Tx {
    /// The incentive history of `customer_ref` since `since_ms`.
    pub async fn incentive_history(
        &mut self,
        customer_ref: &CustomerRef,
        since_ms: i64,
    ) -> Result<IncentiveHistory, StoreError> {
        let (last, received) = on_tx!(self, |c| sqlx::query_as::<_, (Option<i64>, i64)>(
            "SELECT MAX(issued_at), COALESCE(SUM(CASE WHEN issued_at >= $2 THEN 1 ELSE 0 END), 0)
             FROM incentives WHERE customer_ref = $1"
        )
        .bind(customer_ref.key())
        .bind(since_ms)
        .fetch_one(&mut *c)
        .await?);
        let (recoveries, with_code) = on_tx!(self, |c| sqlx::query_as::<_, (i64, i64)>(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN incentive_code_used IS NOT NULL THEN 1 ELSE 0 END), 0)
             FROM carts WHERE customer_ref = $1 AND status = 'recovered' AND recovered_at >= $2"
        )
        .bind(customer_ref.key())
        .bind(since_ms)
        .fetch_one(&mut *c)
        .await?);
        Ok(IncentiveHistory { last_issued_at: last, received, recoveries, recoveries_with_code: with_code })
    }

    /// The issued incentive with this code (codes are unique across shops' carts).
    pub async fn incentive_by_code(&mut self, code: &str) -> Result<Option<IncentiveRow>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, IncentiveRow>(
            "SELECT id, cart_id, step, tier, code, offer, issued_at, expires_at, redeemed_at, redeemed_order
             FROM incentives WHERE code = $1"
        )
        .bind(code)
        .fetch_optional(&mut *c)
        .await?))
    }

    /// Mark a code used by `order`; false if another order used it first (single use).
    pub async fn redeem_incentive(&mut self, id: i64, order: &str, at_ms: i64) -> Result<bool, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query(
            "UPDATE incentives SET redeemed_at = $2, redeemed_order = $3 WHERE id = $1 AND redeemed_at IS NULL"
        )
        .bind(id)
        .bind(at_ms)
        .bind(order)
        .execute(&mut *c)
        .await?
        .rows_affected())
            == 1)
    }

    /// The step of the last click on any of `cart`'s messages at or before `until_ms`.
    pub async fn last_clicked_step(&mut self, cart_id: i64, until_ms: i64) -> Result<Option<String>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_scalar::<_, String>(
            "SELECT s.step FROM clicks k JOIN sends s ON s.id = k.send_id
             WHERE s.cart_id = $1 AND k.clicked_at <= $2 ORDER BY k.clicked_at DESC, k.id DESC LIMIT 1"
        )
        .bind(cart_id)
        .bind(until_ms)
        .fetch_optional(&mut *c)
        .await?))
    }
}

impl Tx {
    /// Record a "what stopped you?" answer; returns how many different answers this message
    /// got within `burst_ms` before `at_ms` (more than one: a link scanner, not a person).
    pub async fn record_feedback(
        &mut self,
        send_id: i64,
        reason: &str,
        at_ms: i64,
        burst_ms: i64,
    ) -> Result<i64, StoreError> {
        on_tx!(self, |c| sqlx::query("INSERT INTO feedback (send_id, reason, at) VALUES ($1, $2, $3)")
            .bind(send_id)
            .bind(reason)
            .bind(at_ms)
            .execute(&mut *c)
            .await?
            .rows_affected());
        Ok(on_tx!(self, |c| sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(DISTINCT reason) FROM feedback WHERE send_id = $1 AND at >= $2"
        )
        .bind(send_id)
        .bind(at_ms - burst_ms)
        .fetch_one(&mut *c)
        .await?))
    }
}
