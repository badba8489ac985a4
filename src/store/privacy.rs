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
        .bind(address)
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

impl Db {
    /// Forget signed requests received before `before_ms`: their timestamps are refused anyway.
    pub async fn forget_requests(&self, before_ms: i64) -> Result<u64, StoreError> {
        let sql = "DELETE FROM signed_requests WHERE received_at < $1";
        Ok(match &self.backend {
            super::Backend::Sqlite(p) => sqlx::query(sql).bind(before_ms).execute(p).await?.rows_affected(),
            super::Backend::Postgres(p) => sqlx::query(sql).bind(before_ms).execute(p).await?.rows_affected(),
        })
    }
}
