//! Writes a transaction holds back and sends together, on either backend.
//!
//! Every statement is a round trip: to SQLite's own thread (tens of microseconds each way on
//! a virtual machine) or over the network to PostgreSQL. An ingest batch therefore keeps its
//! cart updates, identity links and jobs back ([`Tx::defer_writes`]) and sends them together
//! ([`Tx::flush`]): when it commits, or before any statement that could read what they touch.
//! The few reads an event needs between (its cart, who owns an identity, the customer's zone
//! and consent) consult the held-back writes themselves, so they see exactly what they would
//! have seen had each write gone out at once. How they go out is each backend's own:
//! `sqlite::deferred` (one command of several statements) and `postgres` (one statement of
//! data-modifying CTEs).

use super::foreign::{RowInsert, Value};
use super::{CartRow, Inner, StoreError, Tx};

/// Carts held back before they are written anyway (41 parameters each: far below either
/// database's limit with the links and jobs that come with them).
const MAX_CARTS: usize = 200;

/// Held-back writes, in the order they were made.
#[derive(Debug, Default)]
pub(in crate::store) struct Deferred {
    /// The latest version of each changed cart.
    pub carts: Vec<CartRow>,
    /// `(shop, identity, person)`, the latest link of each identity.
    pub links: Vec<(String, String, String)>,
    /// Rows of tables the store does not own (the queue's jobs), by their `INSERT`.
    pub rows: Vec<(&'static RowInsert, Vec<Value>)>,
    /// Carts read (and locked) ahead for the writes to come, as stored ([`Tx::take_carts`]):
    /// a read served from here costs no round trip. Dropped whenever anything is written,
    /// since the write may change them.
    pub fetched: Vec<(CartRow, bool)>,
}

impl Deferred {
    /// Whether nothing is held back.
    pub fn is_empty(&self) -> bool {
        self.carts.is_empty() && self.links.is_empty() && self.rows.is_empty()
    }
}

impl Tx {
    /// Hold back this transaction's cart updates, job pushes and identity links until it
    /// reads what they touch or commits: they go out together, as one command (SQLite) or one
    /// statement (PostgreSQL). Ingest batches lock their carts first, in one order
    /// ([`Tx::take_carts`]), so holding writes back changes no lock order between writers.
    pub fn defer_writes(&mut self) {
        let held = match &mut self.inner {
            Inner::Sqlite { held, .. } | Inner::Postgres { held, .. } => held,
        };
        if held.is_none() {
            *held = Some(Deferred::default());
        }
    }

    pub(in crate::store) fn held(&self) -> Option<&Deferred> {
        match &self.inner {
            Inner::Sqlite { held, .. } | Inner::Postgres { held, .. } => held.as_ref(),
        }
    }

    pub(in crate::store) fn held_mut(&mut self) -> Option<&mut Deferred> {
        match &mut self.inner {
            Inner::Sqlite { held, .. } | Inner::Postgres { held, .. } => held.as_mut(),
        }
    }

    /// Write every held-back change, and forget the carts read ahead (what is written may
    /// change them).
    pub(crate) async fn flush(&mut self) -> Result<(), StoreError> {
        let Some(d) = self.held_mut() else { return Ok(()) };
        d.fetched.clear();
        if d.is_empty() {
            return Ok(());
        }
        match self.dialect() {
            super::Dialect::Sqlite => self.flush_sqlite().await,
            super::Dialect::Postgres => self.flush_postgres().await,
        }
    }

    /// The cart `(shop, external_id)` as read ahead, if it was, and whether the read created
    /// it (once: a cart is new to the first to take it).
    pub(in crate::store) fn take_fetched(&mut self, shop: &str, external_id: &str) -> Option<(CartRow, bool)> {
        let d = self.held_mut()?;
        let (row, created) = d.fetched.iter_mut().find(|(c, _)| c.shop == shop && c.external_id == external_id)?;
        Some((row.clone(), std::mem::take(created)))
    }

    /// The held-back version of a cart, if this transaction changed it.
    pub(in crate::store) fn deferred_cart(&self, shop: &str, external_id: &str) -> Option<&CartRow> {
        self.held()?.carts.iter().find(|c| c.shop == shop && c.external_id == external_id)
    }

    /// Carts changed and not yet written.
    pub(in crate::store) fn deferred_carts(&self) -> &[CartRow] {
        self.held().map_or(&[], |d| d.carts.as_slice())
    }

    /// Identity links made and not yet written, for `shop`.
    pub(in crate::store) fn deferred_links<'a>(
        &'a self,
        shop: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.held()
            .into_iter()
            .flat_map(|d| d.links.iter())
            .filter(move |(s, _, _)| s == shop)
            .map(|(_, identity, person)| (identity.as_str(), person.as_str()))
    }

    /// Hold back a cart update (`false`: this transaction writes at once).
    pub(in crate::store) async fn defer_cart(&mut self, row: &CartRow) -> Result<bool, StoreError> {
        let Some(d) = self.held_mut() else { return Ok(false) };
        match d.carts.iter_mut().find(|c| c.id == row.id) {
            Some(held) => held.clone_from(row),
            None => d.carts.push(row.clone()),
        }
        if d.carts.len() >= MAX_CARTS {
            self.flush().await?;
        }
        Ok(true)
    }

    /// Hold back identity links (`false`: this transaction writes at once).
    pub(in crate::store) fn defer_links(&mut self, shop: &str, identities: &[String], person: &str) -> bool {
        let Some(d) = self.held_mut() else { return false };
        for identity in identities {
            d.links.retain(|(s, i, _)| !(s == shop && i == identity));
            d.links.push((shop.to_owned(), identity.clone(), person.to_owned()));
        }
        true
    }
}
