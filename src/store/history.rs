//! Customers' order history: imported from the shop, and recorded from order events.

use super::{StoreError, Tx, on_tx};

/// One order of a customer.
#[derive(Debug, Clone)]
pub struct PastOrder<'a> {
    /// The shop's order id (unique per shop: importing twice changes nothing).
    pub order_id: &'a str,
    /// The shop's customer id.
    pub customer_id: Option<&'a str>,
    /// Lower-case email.
    pub email: Option<&'a str>,
    /// E.164 phone.
    pub phone: Option<&'a str>,
    /// ISO 4217.
    pub currency: &'a str,
    /// Order total, minor units.
    pub total_minor: i64,
    /// When it was placed (Unix ms).
    pub placed_at: i64,
    /// `import` or `event`.
    pub source: &'a str,
}

impl Tx {
    /// Record an order; false when the shop's order id is already known.
    pub async fn record_order(&mut self, shop: &str, o: &PastOrder<'_>) -> Result<bool, StoreError> {
        Ok(on_tx!(self, |c| {
            sqlx::query(
            "INSERT INTO customer_orders (shop, order_id, customer_id, email, phone, currency, total_minor, placed_at, source)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (shop, order_id) DO NOTHING"
        )
        .bind(shop)
        .bind(o.order_id)
        .bind(o.customer_id)
        .bind(o.email)
        .bind(o.phone)
        .bind(o.currency)
        .bind(o.total_minor)
        .bind(o.placed_at)
        .bind(o.source)
        .execute(&mut *c)
        .await?
        .rows_affected()
        }) == 1)
    }

    /// A customer's known orders by any of their identities: `(count, spend in `currency`)`.
    pub async fn order_history(
        &mut self,
        shop: &str,
        customer_id: Option<&str>,
        email: Option<&str>,
        phone: Option<&str>,
        currency: &str,
    ) -> Result<(i64, i64), StoreError> {
        if customer_id.is_none() && email.is_none() && phone.is_none() {
            return Ok((0, 0));
        }
        Ok(on_tx!(self, |c| sqlx::query_as::<_, (i64, i64)>(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN currency = $5 THEN total_minor ELSE 0 END), 0) AS BIGINT)
             FROM customer_orders WHERE shop = $1
               AND ((customer_id IS NOT NULL AND customer_id = $2) OR (email IS NOT NULL AND email = $3)
                    OR (phone IS NOT NULL AND phone = $4))"
        )
        .bind(shop)
        .bind(customer_id)
        .bind(email)
        .bind(phone)
        .bind(currency)
        .fetch_one(&mut *c)
        .await?))
    }
}
