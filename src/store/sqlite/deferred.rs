//! Writes an ingest transaction holds back and sends to SQLite together.
//!
//! On SQLite every statement is a round trip to the connection's own thread, and on a
//! virtual machine a thread woken on another CPU costs tens of microseconds each way (66 µs
//! per round trip, measured on the 2-core benchmark machine): an event's cart update, its job
//! and its customer's new identities would be three of them. An ingest batch therefore keeps
//! those writes back ([`Tx::defer_writes`]) and sends them as one command of three multi-row
//! statements ([`Tx::flush`]): when it commits, or before any statement that could read what
//! they touch. The few reads an event needs between (its cart, who owns an identity, the
//! customer's zone) consult the held-back writes themselves, so they see exactly what they
//! would have seen had each write gone out at once.
//!
//! Recovery jobs' grouped transactions hold back the same writes ([`super::TxGroup`]): a job
//! that decided something about its cart (abandoned, entered a campaign) sends that update in
//! the same command as its claim ([`HeldBack`] in front of the claim's `INSERT`).
//!
//! PostgreSQL transactions write at once: a round trip there is a network one, and deferring
//! would change the order in which concurrent transactions take their row locks.

use std::fmt::Write as _;

use crate::store::carts::CART_COLUMNS;
use crate::store::foreign::{Value, number};
use crate::store::held::Deferred;
use crate::store::{CartRow, Inner, Params, StoreError, Tx};

impl Tx {
    /// Write every held-back change of an SQLite transaction: one command to SQLite's thread.
    pub(in crate::store) async fn flush_sqlite(&mut self) -> Result<(), StoreError> {
        let Inner::Sqlite { tx, held: Some(d) } = &mut self.inner else { return Ok(()) };
        let Some(held) = take_held_back(d) else { return Ok(()) };
        let q = sqlx::query(sqlx::AssertSqlSafe(held.sql.as_str())).persistent(held.repeats());
        bind_held_back!(q, held).execute(&mut **tx).await?;
        Ok(())
    }

    /// Run `f` with SQLite's connection and the held-back writes taken out (statements `f`
    /// sends ahead of its own in the same command), or `None` on PostgreSQL or when nothing
    /// is held back: then `f` is not called.
    pub(in crate::store) fn sqlite_with_held(&mut self) -> Option<(&mut sqlx::SqliteConnection, HeldBack)> {
        let Inner::Sqlite { tx, held: Some(d) } = &mut self.inner else { return None };
        let held = take_held_back(d)?;
        Some((&mut **tx, held))
    }
}

/// Take the held-back changes out, as statements to send ahead of another one in the same
/// command ([`bind_held_back!`] binds their parameters): `None` when nothing is held back.
fn take_held_back(d: &mut Deferred) -> Option<HeldBack> {
    {
        if d.carts.is_empty() && d.links.is_empty() && d.rows.is_empty() {
            return None;
        }
        let Deferred { carts, links, rows, .. } = std::mem::take(d);
        // One command of several statements: their parameters are bound as one list, in order.
        let mut sql = String::new();
        let mut p = Params { next: 0, numbered: false };
        if !carts.is_empty() {
            let _ = write!(sql, "WITH v({}) AS (VALUES ", CART_COLUMNS.join(", "));
            let rows: Vec<String> = carts.iter().map(|_| p.row(CART_COLUMNS.len())).collect();
            sql.push_str(&rows.join(", "));
            let set: Vec<String> = CART_COLUMNS[1..].iter().map(|c| format!("{c} = v.{c}")).collect();
            let _ = writeln!(sql, ") UPDATE carts SET {} FROM v WHERE carts.id = v.id;", set.join(", "));
        }
        if !links.is_empty() {
            sql.push_str("INSERT INTO identities (shop, identity, person) VALUES ");
            let rows: Vec<String> = links.iter().map(|_| p.row(3)).collect();
            sql.push_str(&rows.join(", "));
            sql.push_str(" ON CONFLICT (shop, identity) DO UPDATE SET person = excluded.person;\n");
        }
        // Foreign rows, one multi-row INSERT per run of rows of the same INSERT.
        let mut i = 0;
        while i < rows.len() {
            let insert = rows[i].0;
            let run = rows[i..].iter().take_while(|(r, _)| std::ptr::eq(*r, insert)).count();
            sql.push_str(insert.head.sqlite);
            let text: Vec<String> = (0..run).map(|_| number(insert.row.sqlite, &mut p)).collect();
            sql.push_str(&text.join(", "));
            sql.push_str(insert.tail.sqlite);
            sql.push_str(";\n");
            i += run;
        }
        let foreign_rows = rows.len();
        let values: Vec<Value> = rows.into_iter().flat_map(|(_, v)| v).collect();
        Some(HeldBack { sql, params: p.next, carts, links, values, foreign_rows })
    }
}

/// Held-back changes on their way to SQLite: statements with anonymous (`?`) parameters.
#[derive(Debug)]
pub(in crate::store) struct HeldBack {
    /// The statements, each ending in `;`.
    pub sql: String,
    /// How many parameters they take: a statement sent after them in the same command numbers
    /// its own from `params + 1` ([`shift_params`]).
    pub params: usize,
    pub carts: Vec<CartRow>,
    pub links: Vec<(String, String, String)>,
    /// The foreign rows' parameters, in order.
    pub values: Vec<Value>,
    /// How many foreign rows.
    pub foreign_rows: usize,
}

impl HeldBack {
    /// Whether this command's text comes back often enough to keep it prepared (a recovery
    /// job's cart and its next job; not an ingest batch's varying shapes).
    pub fn repeats(&self) -> bool {
        crate::store::keep_prepared(self.carts.len() + self.links.len() + self.foreign_rows)
    }
}

/// Bind a [`HeldBack`]'s parameters, in order, to a query whose text starts with its statements.
macro_rules! bind_held_back {
    ($q:expr, $held:expr) => {{
        let held: &$crate::store::sqlite::HeldBack = &$held;
        let mut q = $q;
        for r in &held.carts {
            q = $crate::store::carts::bind_cart!(q, r);
        }
        for (shop, identity, person) in &held.links {
            q = q.bind(shop).bind(identity).bind(person);
        }
        $crate::store::foreign::bind_values!(q, &held.values)
    }};
}
pub(in crate::store) use bind_held_back;

/// `sql` with every numbered parameter `$n` renumbered `$(n + by)`: the statement sent after
/// `by` parameters of other statements in one command (SQLite numbers them across the command).
pub(in crate::store) fn shift_params(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        // A `$` without digits is not a parameter.
        if let Ok(n) = rest[..digits].parse::<usize>() {
            let _ = write!(out, "{}", n + by);
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::shift_params;

    #[test]
    fn shifted_parameters_keep_their_order_and_reuse() {
        assert_eq!(
            shift_params("SELECT $1, $4 WHERE a = $4 AND b = $10", 7),
            "SELECT $8, $11 WHERE a = $11 AND b = $17"
        );
        assert_eq!(shift_params("SELECT '$' || $2", 3), "SELECT '$' || $5");
        assert_eq!(shift_params("SELECT $1", 0), "SELECT $1");
    }
}
