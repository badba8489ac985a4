//! Customers' order history: imported from the shop, and recorded from order events.

use super::{CartRow, StoreError, Tx, on_tx, on_tx_now};
use crate::domain::CustomerRef;

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

/// A customer's past orders: by shop account (`$2`), email (`$3`) or phone (`$4`) in shop `$1`
/// (an absent one matches nothing: `= NULL` is never true). Written as three `shop AND …`
/// terms so that each reads its own index (SQLite: `MULTI-INDEX OR`); `shop = $1 AND (… OR …)`
/// made SQLite read every order of the shop for each event.
const HISTORY_MATCH: &str =
    "(shop = $1 AND customer_id = $2) OR (shop = $1 AND email = $3) OR (shop = $1 AND phone = $4)";

/// How a customer's past orders are found, and the currency their spend is counted in.
#[derive(Debug, Clone, Copy)]
pub struct HistoryKey<'a> {
    /// The shop's customer id.
    pub customer_id: Option<&'a str>,
    /// Lower-case email.
    pub email: Option<&'a str>,
    /// E.164 phone.
    pub phone: Option<&'a str>,
    /// ISO 4217.
    pub currency: &'a str,
}

/// What Cartback knows of a customer when it takes in an event for their cart.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CustomerFacts {
    /// Orders and lifetime spend (when asked for).
    pub orders: Option<(i64, i64)>,
    /// The zone an event reported with another of the customer's carts, newest first (when
    /// asked for and known).
    pub zone: Option<String>,
    /// The consent the newest event that carried the customer gave, with another cart.
    pub consent: Option<Consent>,
}

/// A customer's marketing consent as one event gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// Email marketing.
    pub email: bool,
    /// SMS marketing.
    pub sms: bool,
    /// When the event happened (Unix ms).
    pub at: i64,
    /// Which event (`cart.updated for cart c_2`).
    pub source: Option<String>,
}

impl Tx {
    /// What Cartback knows of a customer when it takes in an event for their cart: their
    /// order history (`history`), and, for the person `person` (leaving out the cart
    /// `except_cart`), the zone an event reported with another of their carts and the consent
    /// the newest event that carried them gave. One query: on SQLite each is a round trip to
    /// the database's thread while the write lock is held.
    pub async fn customer_facts(
        &mut self,
        shop: &str,
        history: Option<HistoryKey<'_>>,
        person: Option<(&CustomerRef, i64)>,
    ) -> Result<CustomerFacts, StoreError> {
        let Some((customer_ref, except_cart)) = person else {
            let orders = match history {
                Some(h) => Some(self.order_history(shop, h.customer_id, h.email, h.phone, h.currency).await?),
                None => None,
            };
            return Ok(CustomerFacts { orders, ..CustomerFacts::default() });
        };
        let held = super::ids_param(&self.held_cart_ids());
        let sql = format!(
            "SELECT h.n, h.spent, z.timezone, z.updated_at, k.accepts_email, k.accepts_sms, k.consent_at, k.consent_source
             FROM
               (SELECT COUNT(*) AS n,
                       CAST(COALESCE(SUM(CASE WHEN currency = $5 THEN total_minor ELSE 0 END), 0) AS BIGINT) AS spent
                FROM customer_orders WHERE {HISTORY_MATCH}) AS h
             LEFT JOIN
               (SELECT timezone, updated_at FROM carts WHERE shop = $1 AND customer_ref = $6 AND id <> $7
                  AND timezone IS NOT NULL AND timezone_source LIKE 'event%'{not_in}
                ORDER BY updated_at DESC LIMIT 1) AS z ON TRUE
             LEFT JOIN
               (SELECT accepts_email, accepts_sms, consent_at, consent_source FROM carts
                WHERE shop = $1 AND customer_ref = $6 AND id <> $7 AND consent_at IS NOT NULL{not_in}
                ORDER BY consent_at DESC, id DESC LIMIT 1) AS k ON TRUE",
            not_in = super::not_in(self, 8)
        );
        let h = history.unwrap_or(HistoryKey { customer_id: None, email: None, phone: None, currency: "" });
        type Row = (i64, i64, Option<String>, Option<i64>, Option<bool>, Option<bool>, Option<i64>, Option<String>);
        // Past orders are never held back; held-back carts are left out here and counted below.
        let (n, spent, tz, at, email, sms, consent_at, source) = on_tx_now!(self, |c| {
            sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql.clone()))
                .bind(shop)
                .bind(h.customer_id)
                .bind(h.email)
                .bind(h.phone)
                .bind(h.currency)
                .bind(customer_ref.key())
                .bind(except_cart)
                .bind(&held)
                .fetch_one(&mut *c)
                .await?
        });
        let zone = self.newest_zone(tz.zip(at), shop, customer_ref, except_cart);
        let stored = match (email, sms, consent_at) {
            (Some(email), Some(sms), Some(at)) => Some(Consent { email, sms, at, source }),
            _ => None,
        };
        let consent = self.newest_consent(stored, shop, customer_ref, except_cart);
        Ok(CustomerFacts { orders: history.map(|_| (n, spent)), zone, consent })
    }

    /// SQLite's plan for finding a customer's past orders (tests; empty on PostgreSQL).
    pub async fn explain_history_plan(&mut self) -> Result<Vec<String>, StoreError> {
        let sql = format!("EXPLAIN QUERY PLAN SELECT COUNT(*) FROM customer_orders WHERE {HISTORY_MATCH}");
        Ok(match &mut self.inner {
            super::Inner::Sqlite { tx: c, .. } => {
                let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind("s")
                    .bind("c")
                    .bind("e")
                    .bind("p")
                    .fetch_all(&mut **c)
                    .await?;
                rows.into_iter().map(|r| r.3).collect()
            }
            super::Inner::Postgres { .. } => Vec::new(),
        })
    }

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
        // Past orders are never among the writes a transaction holds back.
        Ok(on_tx_now!(self, |c| sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN currency = $5 THEN total_minor ELSE 0 END), 0) AS BIGINT)
                 FROM customer_orders WHERE {HISTORY_MATCH}"
        )))
        .bind(shop)
        .bind(customer_id)
        .bind(email)
        .bind(phone)
        .bind(currency)
        .fetch_one(&mut *c)
        .await?))
    }
}

/// How the cart's customer's past orders are found: by their shop account, email and phone,
/// counted in the cart's currency (none without one).
pub struct HistoryOf {
    customer_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    currency: String,
}

impl HistoryOf {
    pub fn new(cart: &CartRow) -> Option<Self> {
        Some(Self {
            currency: cart.currency.clone()?,
            customer_id: cart.customer_ref.as_ref().and_then(CustomerRef::account_id).map(str::to_owned),
            email: cart.email.as_deref().map(str::to_lowercase),
            phone: cart.phone.clone(),
        })
    }

    pub fn key(&self) -> HistoryKey<'_> {
        HistoryKey {
            customer_id: self.customer_id.as_deref(),
            email: self.email.as_deref(),
            phone: self.phone.as_deref(),
            currency: &self.currency,
        }
    }
}

/// Raise the cart's order count and lifetime spend to what Cartback knows of the customer.
pub fn apply_history(cart: &mut CartRow, (count, spent): (i64, i64)) {
    cart.orders_count = cart.orders_count.max(count);
    if spent > 0 {
        cart.total_spent_minor = Some(cart.total_spent_minor.unwrap_or(0).max(spent));
    }
}

impl Tx {
    /// Raise the cart's order count and lifetime spend to what Cartback knows of the customer:
    /// imported order history and orders seen as events, by any of their identities.
    pub async fn enrich_history(&mut self, cart: &mut CartRow) -> Result<(), StoreError> {
        let Some(key) = HistoryOf::new(cart) else { return Ok(()) };
        if let Some(orders) = self.customer_facts(&cart.shop, Some(key.key()), None).await?.orders {
            apply_history(cart, orders);
        }
        Ok(())
    }
}
