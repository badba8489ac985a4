//! Carts: the state every job re-reads, and their timelines.

use super::{StoreError, Tx, on_tx, on_tx_sql};
pub use crate::domain::CartStatus;
use crate::domain::{CampaignKind, CustomerRef};

/// Timeline lines one `INSERT` writes (4 parameters each, far below either database's limit).
const LINES_PER_INSERT: usize = 200;

/// Every column [`Tx::save_cart`] and the held-back writes (`super::sqlite`) writes, `id` first.
pub(super) const CART_COLUMNS: [&str; 41] = [
    "id",
    "status",
    "currency",
    "total_minor",
    "items",
    "restore_url",
    "cart_locale",
    "customer_ref",
    "email",
    "phone",
    "first_name",
    "timezone",
    "timezone_source",
    "locale",
    "country",
    "orders_count",
    "total_spent_minor",
    "accepts_email",
    "accepts_sms",
    "stage",
    "reason",
    "reason_detail",
    "last_activity_at",
    "campaign",
    "abandoned_at",
    "next_step",
    "seq",
    "next_run_at",
    "exit_reason",
    "recovered_at",
    "order_id",
    "order_total_minor",
    "updated_at",
    "arm",
    "recovered_step",
    "incentive_code_used",
    "discount_minor",
    "kind",
    "reported_reason",
    "consent_at",
    "consent_source",
];

/// Bind every column of [`CART_COLUMNS`] of `row`, in that order, to query `q`.
macro_rules! bind_cart {
    ($q:expr, $row:expr) => {{
        let r: &$crate::store::CartRow = $row;
        $q.bind(r.id)
            .bind(r.status.as_str())
            .bind(&r.currency)
            .bind(r.total_minor)
            .bind(&r.items)
            .bind(&r.restore_url)
            .bind(&r.cart_locale)
            .bind(r.customer_ref.as_ref().map(|c| c.key()))
            .bind(&r.email)
            .bind(&r.phone)
            .bind(&r.first_name)
            .bind(&r.timezone)
            .bind(&r.timezone_source)
            .bind(&r.locale)
            .bind(&r.country)
            .bind(r.orders_count)
            .bind(r.total_spent_minor)
            .bind(r.accepts_email)
            .bind(r.accepts_sms)
            .bind(&r.stage)
            .bind(&r.reason)
            .bind(&r.reason_detail)
            .bind(r.last_activity_at)
            .bind(&r.campaign)
            .bind(r.abandoned_at)
            .bind(r.next_step)
            .bind(r.seq)
            .bind(r.next_run_at)
            .bind(&r.exit_reason)
            .bind(r.recovered_at)
            .bind(&r.order_id)
            .bind(r.order_total_minor)
            .bind(r.updated_at)
            .bind(&r.arm)
            .bind(&r.recovered_step)
            .bind(&r.incentive_code_used)
            .bind(r.discount_minor)
            .bind(r.kind.as_str())
            .bind(&r.reported_reason)
            .bind(r.consent_at)
            .bind(&r.consent_source)
    }};
}
pub(super) use bind_cart;

/// One column value of a cart row, as [`CART_COLUMNS`] lists them (PostgreSQL writes held-back
/// carts column by column, as arrays).
#[derive(Debug)]
pub(super) enum Cell {
    /// `BIGINT`.
    Int(Option<i64>),
    /// `TEXT`.
    Text(Option<String>),
    /// `BOOLEAN`.
    Bool(bool),
}

/// Every column of [`CART_COLUMNS`] of `r`, in that order (as [`bind_cart!`] binds them).
pub(super) fn cart_cells(r: &CartRow) -> [Cell; 41] {
    use Cell::{Bool, Int, Text};
    let t = |v: &Option<String>| Text(v.clone());
    [
        Int(Some(r.id)),
        Text(Some(r.status.as_str().to_owned())),
        t(&r.currency),
        Int(r.total_minor),
        Text(Some(r.items.clone())),
        t(&r.restore_url),
        t(&r.cart_locale),
        Text(r.customer_ref.as_ref().map(CustomerRef::key)),
        t(&r.email),
        t(&r.phone),
        t(&r.first_name),
        t(&r.timezone),
        t(&r.timezone_source),
        t(&r.locale),
        t(&r.country),
        Int(Some(r.orders_count)),
        Int(r.total_spent_minor),
        Bool(r.accepts_email),
        Bool(r.accepts_sms),
        t(&r.stage),
        t(&r.reason),
        t(&r.reason_detail),
        Int(Some(r.last_activity_at)),
        t(&r.campaign),
        Int(r.abandoned_at),
        Int(Some(r.next_step)),
        Int(Some(r.seq)),
        Int(r.next_run_at),
        t(&r.exit_reason),
        Int(r.recovered_at),
        t(&r.order_id),
        Int(r.order_total_minor),
        Int(Some(r.updated_at)),
        t(&r.arm),
        t(&r.recovered_step),
        t(&r.incentive_code_used),
        Int(r.discount_minor),
        Text(Some(r.kind.as_str().to_owned())),
        t(&r.reported_reason),
        Int(r.consent_at),
        t(&r.consent_source),
    ]
}

/// A timeline line waiting for its transaction's commit.
#[derive(Debug)]
pub(super) struct LogLine {
    cart_id: i64,
    at: i64,
    what: String,
    detail: String,
}

/// One row of `carts`.
#[derive(Debug, Clone, sqlx::FromRow)]
#[allow(missing_docs)]
pub struct CartRow {
    pub id: i64,
    pub public_id: String,
    pub shop: String,
    pub external_id: String,
    pub status: CartStatus,
    pub currency: Option<String>,
    pub total_minor: Option<i64>,
    pub items: String,
    pub restore_url: Option<String>,
    pub cart_locale: Option<String>,
    pub customer_ref: Option<CustomerRef>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub timezone: Option<String>,
    pub timezone_source: Option<String>,
    pub locale: Option<String>,
    pub country: Option<String>,
    pub orders_count: i64,
    pub total_spent_minor: Option<i64>,
    pub accepts_email: bool,
    pub accepts_sms: bool,
    pub stage: Option<String>,
    pub reason: Option<String>,
    pub reason_detail: Option<String>,
    pub last_activity_at: i64,
    pub campaign: Option<String>,
    pub abandoned_at: Option<i64>,
    pub next_step: i64,
    pub seq: i64,
    pub next_run_at: Option<i64>,
    pub exit_reason: Option<String>,
    pub recovered_at: Option<i64>,
    pub order_id: Option<String>,
    pub order_total_minor: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub arm: Option<String>,
    /// The last step whose link was clicked before the order (attribution).
    pub recovered_step: Option<String>,
    /// The incentive code the recovering order used.
    pub incentive_code_used: Option<String>,
    /// The discount the order got through that code, minor units.
    pub discount_minor: Option<i64>,
    /// `cart` (an abandoned cart) or `unpaid_order` (an order placed but not paid).
    pub kind: CampaignKind,
    /// What the customer said stopped them (`/f/{token}`).
    pub reported_reason: Option<String>,
    /// When the event that set `accepts_email`/`accepts_sms` happened (Unix ms): the newest
    /// event that carries the customer sets the consent of all their open carts.
    pub consent_at: Option<i64>,
    /// That event, for the timeline (`cart.updated for cart c_2`).
    pub consent_source: Option<String>,
}

impl CartRow {
    /// The status.
    pub fn status(&self) -> CartStatus {
        self.status
    }
    /// Set the status.
    pub fn set_status(&mut self, s: CartStatus) {
        self.status = s;
    }
}

/// One line of a cart's timeline.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct LogEntry {
    /// Cart row id.
    pub cart_id: i64,
    /// When (Unix ms).
    pub at: i64,
    /// Short kind: `event`, `abandoned`, `scheduled`, `deferred`, `sent`, `skipped`, `exit`, …
    pub what: String,
    /// One human-readable line.
    pub detail: String,
}

impl Tx {
    /// The cart for `(shop, external_id)`, created empty if new, locked for this transaction;
    /// `true` when it was created.
    pub async fn ensure_cart(
        &mut self,
        shop: &str,
        external_id: &str,
        now_ms: i64,
    ) -> Result<(CartRow, bool), StoreError> {
        if let Some(held) = self.deferred_cart(shop, external_id) {
            return Ok((held.clone(), false));
        }
        if let Some(fetched) = self.take_fetched(shop, external_id) {
            return Ok(fetched);
        }
        let public_id = super::public_id();
        const INSERT: &str =
            "INSERT INTO carts (public_id, shop, external_id, status, last_activity_at, created_at, updated_at)
             VALUES ($1, $2, $3, 'active', 0, $4, $4) ON CONFLICT (shop, external_id)";
        let row = match &mut self.inner {
            // SQLite: the transaction holds the database's write lock already, so one upsert
            // that hands back the row, new or not, is the lookup too. The new row carries the
            // public id made here; an existing one keeps its own.
            super::Inner::Sqlite { tx: c, .. } => {
                let sql = format!("{INSERT} DO UPDATE SET updated_at = carts.updated_at RETURNING *");
                sqlx::query_as::<_, CartRow>(sqlx::AssertSqlSafe(sql))
                    .bind(&public_id)
                    .bind(shop)
                    .bind(external_id)
                    .bind(now_ms)
                    .fetch_one(&mut **c)
                    .await?
            }
            // PostgreSQL: insert if missing, then lock the row (an upsert that changes nothing
            // would still write a new row version on every event).
            super::Inner::Postgres { tx: c, .. } => {
                let sql = format!("{INSERT} DO NOTHING");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&public_id)
                    .bind(shop)
                    .bind(external_id)
                    .bind(now_ms)
                    .execute(&mut **c)
                    .await?;
                self.cart_by_external(shop, external_id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("cart vanished".into()))?
            }
        };
        let created = row.public_id == public_id;
        Ok((row, created))
    }

    /// Take the carts `keys` (`(shop, external_id)`) for the writes to come, creating the
    /// missing ones: one statement for all of them instead of one or two per cart, and on
    /// PostgreSQL their row locks taken at once, in `(shop, external_id)` order, so batches
    /// written side by side never wait for each other in a circle. [`Tx::ensure_cart`] then
    /// serves them without a round trip. Only while writes are held back ([`Tx::defer_writes`]).
    pub async fn take_carts(&mut self, keys: &[(&str, &str)], now_ms: i64) -> Result<(), StoreError> {
        let mut keys: Vec<(&str, &str)> = keys.to_vec();
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() || self.held().is_none() {
            return Ok(());
        }
        self.flush().await?;
        let ids: Vec<String> = keys.iter().map(|_| super::public_id()).collect();
        let rows = match &mut self.inner {
            super::Inner::Sqlite { tx, .. } => {
                // The transaction holds the database's write lock already: one upsert that hands
                // back every row, new or not.
                let mut p = super::Params::of_dialect(super::Dialect::Sqlite);
                let values: Vec<String> = keys.iter().map(|_| p.row(4)).collect();
                let sql = format!(
                    "INSERT INTO carts (public_id, shop, external_id, status, last_activity_at, created_at, updated_at)
                     SELECT column1, column2, column3, 'active', 0, column4, column4 FROM (VALUES {})
                     WHERE true ON CONFLICT (shop, external_id) DO UPDATE SET updated_at = carts.updated_at RETURNING *",
                    values.join(", ")
                );
                let mut q =
                    sqlx::query_as::<_, CartRow>(sqlx::AssertSqlSafe(sql)).persistent(super::keep_prepared(keys.len()));
                for ((shop, external), id) in keys.iter().zip(&ids) {
                    q = q.bind(id).bind(*shop).bind(*external).bind(now_ms);
                }
                q.fetch_all(&mut **tx).await?
            }
            super::Inner::Postgres { tx, .. } => {
                let shops: Vec<&str> = keys.iter().map(|k| k.0).collect();
                let externals: Vec<&str> = keys.iter().map(|k| k.1).collect();
                sqlx::query(
                    "INSERT INTO carts (public_id, shop, external_id, status, last_activity_at, created_at, updated_at)
                     SELECT p, s, e, 'active', 0, $4, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS k(p, s, e)
                     ORDER BY s, e ON CONFLICT (shop, external_id) DO NOTHING",
                )
                .bind(&ids)
                .bind(&shops)
                .bind(&externals)
                .bind(now_ms)
                .execute(&mut **tx)
                .await?;
                sqlx::query_as::<_, CartRow>(
                    "SELECT c.* FROM carts c JOIN unnest($1::text[], $2::text[]) AS k(s, e)
                     ON c.shop = k.s AND c.external_id = k.e ORDER BY c.shop, c.external_id FOR UPDATE OF c",
                )
                .bind(&shops)
                .bind(&externals)
                .fetch_all(&mut **tx)
                .await?
            }
        };
        let fetched = rows.into_iter().map(|row| {
            let created = ids.contains(&row.public_id);
            (row, created)
        });
        if let Some(d) = self.held_mut() {
            d.fetched.extend(fetched);
        }
        Ok(())
    }

    /// The cart for `(shop, external_id)`, locked for this transaction.
    pub async fn cart_by_external(&mut self, shop: &str, external_id: &str) -> Result<Option<CartRow>, StoreError> {
        Ok(on_tx_sql!(
            self,
            sql = (
                "SELECT * FROM carts WHERE shop = $1 AND external_id = $2",
                "SELECT * FROM carts WHERE shop = $1 AND external_id = $2 FOR UPDATE"
            ),
            |c| sqlx::query_as::<_, CartRow>(sql).bind(shop).bind(external_id).fetch_optional(&mut *c).await?
        ))
    }

    /// The cart with row id `id`, locked for this transaction.
    pub async fn cart_by_id(&mut self, id: i64) -> Result<Option<CartRow>, StoreError> {
        Ok(on_tx_sql!(
            self,
            sql = ("SELECT * FROM carts WHERE id = $1", "SELECT * FROM carts WHERE id = $1 FOR UPDATE"),
            |c| sqlx::query_as::<_, CartRow>(sql).bind(id).fetch_optional(&mut *c).await?
        ))
    }

    /// The cart with public id `public_id` (not locked).
    pub async fn cart_by_public_id(&mut self, public_id: &str) -> Result<Option<CartRow>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, CartRow>("SELECT * FROM carts WHERE public_id = $1")
            .bind(public_id)
            .fetch_optional(&mut *c)
            .await?))
    }

    /// Carts of a shop still open to recovery for a contact (email or phone), locked.
    pub async fn open_carts_by_contact(
        &mut self,
        shop: &str,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> Result<Vec<CartRow>, StoreError> {
        Ok(on_tx_sql!(
            self,
            sql = (
                "SELECT * FROM carts WHERE shop = $1 AND (lower(email) = $2 OR phone = $3)
             AND status NOT IN ('recovered', 'unsubscribed') ORDER BY id",
                "SELECT * FROM carts WHERE shop = $1 AND (lower(email) = $2 OR phone = $3)
             AND status NOT IN ('recovered', 'unsubscribed') ORDER BY id FOR UPDATE"
            ),
            |c| sqlx::query_as::<_, CartRow>(sql)
                .bind(shop)
                .bind(email.map(str::to_lowercase))
                .bind(phone)
                .fetch_all(&mut *c)
                .await?
        ))
    }

    /// Write every mutable column of `row` back.
    pub async fn save_cart(&mut self, row: &CartRow) -> Result<(), StoreError> {
        if self.defer_cart(row).await? {
            return Ok(());
        }
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let set: Vec<String> =
                CART_COLUMNS[1..].iter().enumerate().map(|(i, c)| format!("{c} = ${}", i + 2)).collect();
            format!("UPDATE carts SET {} WHERE id = $1", set.join(", "))
        });
        on_tx!(self, |c| bind_cart!(sqlx::query(sqlx::AssertSqlSafe(SQL.as_str())), row)
            .execute(&mut *c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Move a cart on in its sequence without reading it first, if nothing happened to it
    /// since its job last read it (it is still `abandoned` and its `seq` is still `seen_seq`):
    /// set its status, next step, `seq` and next run. `false` if it changed (nothing is
    /// written: read it and decide again).
    pub async fn advance_cart(
        &mut self,
        id: i64,
        seen_seq: i64,
        status: CartStatus,
        next_step: i64,
        seq: i64,
        next_run_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let n = on_tx!(self, |c| {
            sqlx::query(
                "UPDATE carts SET status = $3, next_step = $4, seq = $5, next_run_at = $6
                 WHERE id = $1 AND seq = $2 AND status = 'abandoned'",
            )
            .bind(id)
            .bind(seen_seq)
            .bind(status.as_str())
            .bind(next_step)
            .bind(seq)
            .bind(next_run_at)
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Append a line to a cart's timeline. It is written with the transaction's commit (or
    /// before anything in the transaction reads or changes the timeline), in order.
    pub async fn log(&mut self, cart_id: i64, at_ms: i64, what: &str, detail: &str) -> Result<(), StoreError> {
        self.lines.push(LogLine { cart_id, at: at_ms, what: what.to_owned(), detail: detail.to_owned() });
        Ok(())
    }

    /// Write the buffered timeline lines: one multi-row `INSERT` per [`LINES_PER_INSERT`].
    pub(super) async fn write_lines(&mut self) -> Result<(), StoreError> {
        let lines = std::mem::take(&mut self.lines);
        if lines.is_empty() {
            return Ok(());
        }
        self.flush().await?;
        if let super::Inner::Postgres { tx: c, .. } = &mut self.inner {
            // Column by column: one text whatever the number of lines, prepared once.
            sqlx::query(
                "INSERT INTO cart_log (cart_id, at, what, detail)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])",
            )
            .bind(lines.iter().map(|l| l.cart_id).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.at).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.what.as_str()).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.detail.as_str()).collect::<Vec<_>>())
            .execute(&mut **c)
            .await?;
            return Ok(());
        }
        for chunk in lines.chunks(LINES_PER_INSERT) {
            let mut sql = String::from("INSERT INTO cart_log (cart_id, at, what, detail) VALUES ");
            let mut p = super::Params::of(self);
            let rows: Vec<String> = chunk.iter().map(|_| p.row(4)).collect();
            sql.push_str(&rows.join(", "));
            on_tx!(self, |c| {
                let mut q =
                    sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).persistent(super::keep_prepared(chunk.len()));
                for l in chunk {
                    q = q.bind(l.cart_id).bind(l.at).bind(l.what.as_str()).bind(l.detail.as_str());
                }
                q.execute(&mut *c).await?.rows_affected()
            });
        }
        Ok(())
    }

    /// Ids of the carts this transaction holds back changes of.
    pub(super) fn held_cart_ids(&self) -> Vec<i64> {
        self.deferred_carts().iter().map(|c| c.id).collect()
    }

    /// The newest of `stored` (the query's answer, held-back carts left out) and the held-back
    /// carts of `customer_ref` with a zone an event reported.
    pub(super) fn newest_zone(
        &self,
        stored: Option<(String, i64)>,
        shop: &str,
        customer_ref: &CustomerRef,
        except_cart: i64,
    ) -> Option<String> {
        let held = self.deferred_carts().iter().filter(|c| {
            c.shop == shop
                && c.customer_ref.as_ref() == Some(customer_ref)
                && c.id != except_cart
                && c.timezone_source.as_deref().is_some_and(|s| s.starts_with("event"))
        });
        let held = held.filter_map(|c| Some((c.timezone.clone()?, c.updated_at)));
        // Newest first; the stored row wins a tie, as the first of equals in the query's order.
        stored.into_iter().chain(held).reduce(|a, b| if b.1 > a.1 { b } else { a }).map(|(tz, _)| tz)
    }

    /// The newest of `stored` (the query's answer, held-back carts left out) and the held-back
    /// carts of `customer_ref` with a consent an event gave.
    pub(super) fn newest_consent(
        &self,
        stored: Option<super::history::Consent>,
        shop: &str,
        customer_ref: &CustomerRef,
        except_cart: i64,
    ) -> Option<super::history::Consent> {
        let held = self
            .deferred_carts()
            .iter()
            .filter(|c| c.shop == shop && c.customer_ref.as_ref() == Some(customer_ref) && c.id != except_cart);
        let held = held.filter_map(|c| {
            let at = c.consent_at?;
            Some(super::history::Consent {
                email: c.accepts_email,
                sms: c.accepts_sms,
                at,
                source: c.consent_source.clone(),
            })
        });
        // Newest first; the stored row wins a tie, as the first of equals in the query's order.
        stored.into_iter().chain(held).reduce(|a, b| if b.at > a.at { b } else { a })
    }

    /// Give every open cart of `person` but `except_cart` the consent `consent`, where it
    /// differs and is older; the carts changed, with the consent each had.
    pub async fn spread_consent(
        &mut self,
        shop: &str,
        person: &CustomerRef,
        except_cart: i64,
        consent: &super::history::Consent,
    ) -> Result<Vec<(i64, bool, bool)>, StoreError> {
        const WHERE: &str = "WHERE shop = $1 AND customer_ref = $2 AND id <> $3 AND status IN ('active', 'abandoned')
             AND (accepts_email <> $4 OR accepts_sms <> $5) AND (consent_at IS NULL OR consent_at <= $6)";
        let key = person.key();
        let changed = on_tx_sql!(
            self,
            sql = (
                format!("SELECT id, accepts_email, accepts_sms FROM carts {WHERE} ORDER BY id"),
                format!("SELECT id, accepts_email, accepts_sms FROM carts {WHERE} ORDER BY id FOR UPDATE")
            ),
            |c| sqlx::query_as::<_, (i64, bool, bool)>(sqlx::AssertSqlSafe(sql))
                .bind(shop)
                .bind(&key)
                .bind(except_cart)
                .bind(consent.email)
                .bind(consent.sms)
                .bind(consent.at)
                .fetch_all(&mut *c)
                .await?
        );
        if changed.is_empty() {
            return Ok(changed);
        }
        on_tx!(self, |c| sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE carts SET accepts_email = $4, accepts_sms = $5, consent_at = $6, consent_source = $7 {WHERE}"
        )))
        .bind(shop)
        .bind(&key)
        .bind(except_cart)
        .bind(consent.email)
        .bind(consent.sms)
        .bind(consent.at)
        .bind(&consent.source)
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(changed)
    }

    /// A cart's timeline, oldest first.
    pub async fn cart_log(&mut self, cart_id: i64) -> Result<Vec<LogEntry>, StoreError> {
        self.write_lines().await?;
        Ok(on_tx!(self, |c| sqlx::query_as::<_, LogEntry>(
            "SELECT cart_id, at, what, detail FROM cart_log WHERE cart_id = $1 ORDER BY id"
        )
        .bind(cart_id)
        .fetch_all(&mut *c)
        .await?))
    }

    /// All carts of a shop, oldest first (demo and tests).
    pub async fn carts_of_shop(&mut self, shop: &str) -> Result<Vec<CartRow>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, CartRow>("SELECT * FROM carts WHERE shop = $1 ORDER BY id")
            .bind(shop)
            .fetch_all(&mut *c)
            .await?))
    }
}

/// A cart with every column set (tests of code that handles each column).
#[cfg(test)]
pub(super) fn sample_row() -> CartRow {
    let t = Some("x".to_owned());
    CartRow {
        id: 1,
        public_id: "p".into(),
        shop: "s".into(),
        external_id: "c".into(),
        status: CartStatus::Active,
        currency: t.clone(),
        total_minor: Some(1),
        items: "[]".into(),
        restore_url: t.clone(),
        cart_locale: t.clone(),
        customer_ref: Some(CustomerRef::account("1")),
        email: t.clone(),
        phone: t.clone(),
        first_name: t.clone(),
        timezone: t.clone(),
        timezone_source: t.clone(),
        locale: t.clone(),
        country: t.clone(),
        orders_count: 1,
        total_spent_minor: Some(1),
        accepts_email: true,
        accepts_sms: true,
        stage: t.clone(),
        reason: t.clone(),
        reason_detail: t.clone(),
        last_activity_at: 1,
        campaign: t.clone(),
        abandoned_at: Some(1),
        next_step: 1,
        seq: 1,
        next_run_at: Some(1),
        exit_reason: t.clone(),
        recovered_at: Some(1),
        order_id: t.clone(),
        order_total_minor: Some(1),
        created_at: 1,
        updated_at: 1,
        arm: t.clone(),
        recovered_step: t.clone(),
        incentive_code_used: t.clone(),
        discount_minor: Some(1),
        kind: CampaignKind::Cart,
        reported_reason: t.clone(),
        consent_at: Some(1),
        consent_source: t,
    }
}
