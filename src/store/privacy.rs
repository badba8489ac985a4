//! Erasure and export of a person's data (GDPR art. 15/17).

use super::{CartRow, Db, StoreError, Tx, on_tx};
use crate::store::sends::address_hash;

impl Tx {
    /// Carts of `shop` that belong to a person, by email, phone or the shop's customer id.
    pub async fn carts_of_person(
        &mut self,
        shop: &str,
        email: Option<&str>,
        phone: Option<&str>,
        customer_id: Option<&str>,
    ) -> Result<Vec<CartRow>, StoreError> {
        let cref = customer_id.map(|id| format!("id:{id}"));
        Ok(on_tx!(self, |c| sqlx::query_as::<_, CartRow>(
            "SELECT * FROM carts WHERE shop = $1 AND (
                (CAST($2 AS TEXT) IS NOT NULL AND lower(email) = lower($2))
             OR (CAST($3 AS TEXT) IS NOT NULL AND phone = $3)
             OR (CAST($4 AS TEXT) IS NOT NULL AND customer_ref = $4)) ORDER BY id"
        )
        .bind(shop)
        .bind(email)
        .bind(phone)
        .bind(&cref)
        .fetch_all(&mut *c)
        .await?))
    }

    /// Remove everything personal about one cart; keep the anonymous facts (status, amounts,
    /// campaign, arm, step outcomes) so aggregate stats stay right.
    pub async fn erase_cart(&mut self, cart: &CartRow, marker: &str) -> Result<(), StoreError> {
        // Lines logged earlier in this transaction are erased too.
        self.write_lines().await?;
        on_tx!(self, |c| {
            sqlx::query(
                "UPDATE carts SET email = NULL, phone = NULL, first_name = NULL, items = '[]', restore_url = NULL,
                 customer_ref = $2, country = NULL, locale = NULL, cart_locale = NULL, external_id = $3 WHERE id = $1",
            )
            .bind(cart.id)
            .bind(marker)
            .bind(format!("erased-{}", cart.public_id))
            .execute(&mut *c)
            .await?;
            sqlx::query("UPDATE cart_log SET detail = '[erased]' WHERE cart_id = $1")
                .bind(cart.id)
                .execute(&mut *c)
                .await?;
            sqlx::query("UPDATE webhook_events SET body = '{}' WHERE cart_id = $1")
                .bind(cart.id)
                .execute(&mut *c)
                .await?;
            sqlx::query("UPDATE sends SET customer_ref = $2, message_ref = NULL WHERE cart_id = $1")
                .bind(cart.id)
                .bind(marker)
                .execute(&mut *c)
                .await?;
            sqlx::query("UPDATE incentives SET customer_ref = $2 WHERE cart_id = $1")
                .bind(cart.id)
                .bind(marker)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Keep a suppression, but as a hash of the address.
    pub async fn hash_suppression(&mut self, shop: &str, channel: &str, address: &str) -> Result<(), StoreError> {
        on_tx!(self, |c| sqlx::query(
            "UPDATE suppressions SET address = $4 WHERE shop = $1 AND channel = $2 AND address = $3"
        )
        .bind(shop)
        .bind(channel)
        .bind(crate::store::sends::canonical_address(channel, address))
        .bind(address_hash(address))
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Raw webhook bodies that mention a cart (for export).
    pub async fn event_bodies(&mut self, cart_id: i64) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, (String, String, i64)>(
            "SELECT kind, body, received_at FROM webhook_events WHERE cart_id = $1 ORDER BY received_at"
        )
        .bind(cart_id)
        .fetch_all(&mut *c)
        .await?))
    }

    /// Remember a signed request by its `webhook-id`; `false` when the shop already sent one
    /// with this id (a replay), which the caller refuses. Written in the transaction that
    /// carries the request out, so a request that fails can be sent again.
    pub async fn remember_request(&mut self, shop: &str, webhook_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query(
            "INSERT INTO signed_requests (shop, webhook_id, received_at) VALUES ($1, $2, $3)
             ON CONFLICT (shop, webhook_id) DO NOTHING"
        )
        .bind(shop)
        .bind(webhook_id)
        .bind(now_ms)
        .execute(&mut *c)
        .await?
        .rows_affected())
            == 1)
    }
}

/// The tables that hold personal data, whose freed space erasure clears.
pub const PERSONAL_TABLES: [&str; 9] = [
    "carts",
    "webhook_events",
    "cart_log",
    "identities",
    "customer_orders",
    "sends",
    "incentives",
    "suppressions",
    "outbound_webhooks",
];

impl Tx {
    /// On SQLite, make this transaction overwrite what it deletes or replaces with zeros
    /// (`secure_delete`; the connection otherwise runs `FAST`, which zeroes only what costs no
    /// extra I/O). Erasure turns it on for its own transaction. A no-op on PostgreSQL.
    pub async fn zero_what_is_deleted(&mut self) -> Result<(), StoreError> {
        if let super::Inner::Sqlite { tx, .. } = &mut self.inner {
            sqlx::query("PRAGMA secure_delete = ON").execute(&mut **tx).await?;
        }
        Ok(())
    }
}

impl Db {
    /// After an erasure, leave no readable trace of the erased data in the database's files.
    /// SQLite: back to `secure_delete = FAST`, the statistics' sample rows of the personal
    /// tables dropped (`sqlite_stat4` keeps copies of index keys: addresses, customer keys),
    /// and the WAL checkpointed and truncated, so the old page images in it are gone.
    /// PostgreSQL with `vacuum`: `VACUUM FULL` rewrites the personal tables, so the old row
    /// versions are not in their files any more (docs/operations.md says what it does not
    /// reach); without, nothing (autovacuum reuses the space in time).
    pub async fn clear_erased(&self, vacuum: bool) -> Result<(), StoreError> {
        match &self.backend {
            super::Backend::Sqlite(p) => {
                let mut c = p.acquire().await?;
                sqlx::query("PRAGMA secure_delete = FAST").execute(&mut *c).await?;
                let stat4: Option<String> =
                    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat4'")
                        .fetch_optional(&mut *c)
                        .await?;
                if stat4.is_some() {
                    let list = PERSONAL_TABLES.map(|t| format!("'{t}'")).join(", ");
                    let sql = format!("DELETE FROM sqlite_stat4 WHERE tbl IN ({list})");
                    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *c).await?;
                }
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *c).await?;
            }
            super::Backend::Postgres(p) if vacuum => {
                let sql = format!("VACUUM FULL {}", PERSONAL_TABLES.join(", "));
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await?;
            }
            super::Backend::Postgres(_) => {}
        }
        Ok(())
    }

    /// Forget signed requests received before `before_ms`: their timestamps are refused anyway.
    pub async fn forget_requests(&self, before_ms: i64) -> Result<u64, StoreError> {
        let sql = "DELETE FROM signed_requests WHERE received_at < $1";
        Ok(match &self.backend {
            super::Backend::Sqlite(p) => sqlx::query(sql).bind(before_ms).execute(p).await?.rows_affected(),
            super::Backend::Postgres(p) => sqlx::query(sql).bind(before_ms).execute(p).await?.rows_affected(),
        })
    }
}
