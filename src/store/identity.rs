//! Identities: the same person reaching the shop by customer id, email or phone is one person.

use std::collections::HashMap;

use super::{CartRow, StoreError, Tx, on_tx, on_tx_now, on_tx_sql};
use crate::domain::CustomerRef;

impl Tx {
    /// Who owns each of `identities` (those with an owner), in one query.
    pub async fn identity_owners(
        &mut self,
        shop: &str,
        identities: &[CustomerRef],
    ) -> Result<HashMap<CustomerRef, CustomerRef>, StoreError> {
        if identities.is_empty() {
            return Ok(HashMap::new());
        }
        let slots: Vec<String> = (2..identities.len() + 2).map(|i| format!("${i}")).collect();
        let sql =
            format!("SELECT identity, person FROM identities WHERE shop = $1 AND identity IN ({})", slots.join(", "));
        let rows = on_tx_now!(self, |c| {
            let mut q = sqlx::query_as::<_, (CustomerRef, CustomerRef)>(sqlx::AssertSqlSafe(sql.clone())).bind(shop);
            for i in identities {
                q = q.bind(i.key());
            }
            q.fetch_all(&mut *c).await?
        });
        let mut owners: HashMap<CustomerRef, CustomerRef> = rows.into_iter().collect();
        // Links this transaction made and holds back are the newest.
        let keys: Vec<String> = identities.iter().map(CustomerRef::key).collect();
        let held: Vec<(String, String)> = self
            .deferred_links(shop)
            .filter(|(identity, _)| keys.iter().any(|k| k == identity))
            .map(|(i, p)| (i.to_owned(), p.to_owned()))
            .collect();
        for (identity, person) in held {
            let parse = |s: &str| CustomerRef::parse(s).map_err(|e| StoreError::Corrupt(e.to_string()));
            owners.insert(parse(&identity)?, parse(&person)?);
        }
        Ok(owners)
    }

    /// The persons these identities already belong to (distinct, in the identities' order).
    pub async fn persons_of(&mut self, shop: &str, identities: &[CustomerRef]) -> Result<Vec<CustomerRef>, StoreError> {
        let owners = self.identity_owners(shop, identities).await?;
        let mut out: Vec<CustomerRef> = Vec::new();
        for p in identities.iter().filter_map(|i| owners.get(i)) {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        Ok(out)
    }

    /// Fold person `from` into `into`: identities, carts, sends and incentives follow, so the
    /// frequency cap, cooldowns and history see one customer.
    pub async fn merge_person(&mut self, shop: &str, from: &CustomerRef, into: &CustomerRef) -> Result<(), StoreError> {
        let (from, into) = (from.key(), into.key());
        for sql in [
            "UPDATE identities SET person = $3 WHERE shop = $1 AND person = $2",
            "UPDATE carts SET customer_ref = $3 WHERE shop = $1 AND customer_ref = $2",
            "UPDATE sends SET customer_ref = $3 WHERE customer_ref = $2 AND cart_id IN (SELECT id FROM carts WHERE shop = $1)",
            "UPDATE incentives SET customer_ref = $3 WHERE customer_ref = $2 AND cart_id IN (SELECT id FROM carts WHERE shop = $1)",
        ] {
            on_tx!(self, |c| sqlx::query(sql)
                .bind(shop)
                .bind(&from)
                .bind(&into)
                .execute(&mut *c)
                .await?
                .rows_affected());
        }
        Ok(())
    }

    /// Point `identities` at `person` (new ones are added; known ones already point there).
    pub async fn link_identities(
        &mut self,
        shop: &str,
        identities: &[CustomerRef],
        person: &CustomerRef,
    ) -> Result<(), StoreError> {
        let identities: Vec<String> = identities.iter().map(CustomerRef::key).collect();
        let person = person.key();
        if self.defer_links(shop, &identities, &person) {
            return Ok(());
        }
        for identity in &identities {
            on_tx!(self, |c| sqlx::query(
                "INSERT INTO identities (shop, identity, person) VALUES ($1, $2, $3)
                 ON CONFLICT (shop, identity) DO UPDATE SET person = excluded.person"
            )
            .bind(shop)
            .bind(identity)
            .bind(&person)
            .execute(&mut *c)
            .await?
            .rows_affected());
        }
        Ok(())
    }

    /// A person's carts that are still open (locked for this transaction on PostgreSQL).
    pub async fn open_carts_of_person(&mut self, shop: &str, person: &CustomerRef) -> Result<Vec<CartRow>, StoreError> {
        let person = person.key();
        Ok(on_tx_sql!(
            self,
            sql = (
                "SELECT * FROM carts WHERE shop = $1 AND customer_ref = $2 AND status NOT IN ('recovered', 'unsubscribed') ORDER BY id",
                "SELECT * FROM carts WHERE shop = $1 AND customer_ref = $2 AND status NOT IN ('recovered', 'unsubscribed') ORDER BY id FOR UPDATE"
            ),
            |c| sqlx::query_as::<_, CartRow>(sql).bind(shop).bind(&person).fetch_all(&mut *c).await?
        ))
    }
}

impl Tx {
    /// Erasure of a person's identities, imported orders (kept as anonymous amounts) and their
    /// address in events sent to the shop. `persons` are the person keys found for them.
    pub async fn erase_identities(
        &mut self,
        shop: &str,
        persons: &[CustomerRef],
        email: Option<&str>,
        phone: Option<&str>,
        customer_id: Option<&str>,
    ) -> Result<(), StoreError> {
        for p in persons {
            on_tx!(self, |c| sqlx::query("DELETE FROM identities WHERE shop = $1 AND person = $2")
                .bind(shop)
                .bind(p.key())
                .execute(&mut *c)
                .await?
                .rows_affected());
        }
        on_tx!(self, |c| sqlx::query(
            "UPDATE customer_orders SET email = NULL, phone = NULL, customer_id = NULL
             WHERE shop = $1 AND ((email IS NOT NULL AND email = $2) OR (phone IS NOT NULL AND phone = $3)
                                  OR (customer_id IS NOT NULL AND customer_id = $4))"
        )
        .bind(shop)
        .bind(email)
        .bind(phone)
        .bind(customer_id)
        .execute(&mut *c)
        .await?
        .rows_affected());
        if let Some(e) = email {
            let quoted = serde_json::to_string(e).unwrap_or_default();
            on_tx!(self, |c| sqlx::query(
                "UPDATE outbound_webhooks SET payload = REPLACE(payload, $2, '\"email\":null') WHERE shop = $1"
            )
            .bind(shop)
            .bind(format!("\"email\":{quoted}"))
            .execute(&mut *c)
            .await?
            .rows_affected());
        }
        Ok(())
    }

    /// Carts of these persons (any status).
    pub async fn carts_of_persons(&mut self, shop: &str, persons: &[CustomerRef]) -> Result<Vec<CartRow>, StoreError> {
        let mut out = Vec::new();
        for p in persons {
            let mut rows = on_tx!(self, |c| sqlx::query_as::<_, CartRow>(
                "SELECT * FROM carts WHERE shop = $1 AND customer_ref = $2 ORDER BY id"
            )
            .bind(shop)
            .bind(p.key())
            .fetch_all(&mut *c)
            .await?);
            out.append(&mut rows);
        }
        Ok(out)
    }
}
