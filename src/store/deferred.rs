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

use super::carts::CART_COLUMNS;
use super::{CartRow, Params, StoreError, Tx, TxInner};

/// Held-back writes, in the order they were made.
#[derive(Debug, Default)]
pub(super) struct Deferred {
    /// The latest version of each changed cart.
    pub carts: Vec<CartRow>,
    /// `(shop, identity, person)`, the latest link of each identity.
    pub links: Vec<(String, String, String)>,
    /// Jobs to enqueue.
    pub jobs: Vec<JobRow>,
}

/// One apalis-sqlite job, the columns its own `push_tasks` writes.
#[derive(Debug)]
pub(crate) struct JobRow {
    pub args: Vec<u8>,
    pub id: String,
    pub queue: String,
    pub max_attempts: i64,
    pub run_at: i64,
    pub priority: i64,
    pub metadata: String,
    pub idempotency_key: Option<String>,
}

/// Carts one command writes before it is sent anyway (39 parameters each: far below
/// SQLite's 32,766 with the links and jobs that come with them).
const MAX_CARTS: usize = 200;

impl Tx {
    /// Hold back this transaction's cart updates, job pushes and identity links until it
    /// reads what they touch or commits (SQLite; a no-op on PostgreSQL).
    pub fn defer_writes(&mut self) {
        if matches!(self.inner, TxInner::Sqlite(_)) && self.deferred.is_none() {
            self.deferred = Some(Deferred::default());
        }
    }

    /// Whether writes are being held back (SQLite ingest transactions).
    pub(crate) fn deferring(&self) -> bool {
        self.deferred.is_some()
    }

    /// The held-back version of a cart, if this transaction changed it.
    pub(super) fn deferred_cart(&self, shop: &str, external_id: &str) -> Option<&CartRow> {
        self.deferred.as_ref()?.carts.iter().find(|c| c.shop == shop && c.external_id == external_id)
    }

    /// Carts changed and not yet written.
    pub(super) fn deferred_carts(&self) -> &[CartRow] {
        self.deferred.as_ref().map_or(&[], |d| d.carts.as_slice())
    }

    /// Identity links made and not yet written, for `shop`.
    pub(super) fn deferred_links<'a>(&'a self, shop: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.deferred
            .iter()
            .flat_map(|d| d.links.iter())
            .filter(move |(s, _, _)| s == shop)
            .map(|(_, identity, person)| (identity.as_str(), person.as_str()))
    }

    /// Hold back a cart update (`false`: this transaction writes at once).
    pub(super) async fn defer_cart(&mut self, row: &CartRow) -> Result<bool, StoreError> {
        let Some(d) = self.deferred.as_mut() else { return Ok(false) };
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
    pub(super) fn defer_links(&mut self, shop: &str, identities: &[String], person: &str) -> bool {
        let Some(d) = self.deferred.as_mut() else { return false };
        for identity in identities {
            d.links.retain(|(s, i, _)| !(s == shop && i == identity));
            d.links.push((shop.to_owned(), identity.clone(), person.to_owned()));
        }
        true
    }

    /// Hold back a job (only while [`Tx::deferring`]).
    pub(crate) fn defer_job(&mut self, job: JobRow) -> Result<(), StoreError> {
        let d = self.deferred.as_mut().ok_or_else(|| StoreError::Queue("this transaction writes at once".into()))?;
        d.jobs.push(job);
        Ok(())
    }

    /// Write every held-back change: one command to SQLite's thread.
    pub(crate) async fn flush(&mut self) -> Result<(), StoreError> {
        let Some(held) = self.take_held_back() else { return Ok(()) };
        let TxInner::Sqlite(c) = &mut self.inner else {
            return Err(StoreError::Corrupt("deferred writes on a PostgreSQL transaction".into()));
        };
        let q = sqlx::query(sqlx::AssertSqlSafe(held.sql.as_str())).persistent(held.repeats());
        bind_held_back!(q, held).execute(&mut **c).await?;
        Ok(())
    }

    /// Take the held-back changes out, as statements to send ahead of another one in the same
    /// command ([`bind_held_back!`] binds their parameters): `None` when nothing is held back.
    pub(super) fn take_held_back(&mut self) -> Option<HeldBack> {
        let d = self.deferred.as_mut()?;
        if d.carts.is_empty() && d.links.is_empty() && d.jobs.is_empty() {
            return None;
        }
        let Deferred { carts, links, jobs } = std::mem::take(d);
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
        if !jobs.is_empty() {
            sql.push_str(
                "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, last_result, lock_at, \
                 lock_by, done_at, priority, metadata, idempotency_key) VALUES ",
            );
            // The row apalis-sqlite's own push writes (its queries/task/sink.sql).
            let rows: Vec<String> = jobs
                .iter()
                .map(|_| {
                    let [job, id, queue, max, run_at, priority, metadata, key] = [(); 8].map(|()| p.next());
                    format!("({job}, {id}, {queue}, 'Pending', 0, {max}, {run_at}, NULL, NULL, NULL, NULL, {priority}, {metadata}, {key})")
                })
                .collect();
            sql.push_str(&rows.join(", "));
            sql.push_str(" ON CONFLICT (job_type, idempotency_key) DO NOTHING;\n");
        }
        Some(HeldBack { sql, params: p.next, carts, links, jobs })
    }
}

/// Held-back changes on their way to SQLite: statements with anonymous (`?`) parameters.
#[derive(Debug)]
pub(super) struct HeldBack {
    /// The statements, each ending in `;`.
    pub sql: String,
    /// How many parameters they take: a statement sent after them in the same command numbers
    /// its own from `params + 1` ([`shift_params`]).
    pub params: usize,
    pub carts: Vec<CartRow>,
    pub links: Vec<(String, String, String)>,
    pub jobs: Vec<JobRow>,
}

impl HeldBack {
    /// Whether this command's text comes back often enough to keep it prepared (a recovery
    /// job's cart and its next job; not an ingest batch's varying shapes).
    pub fn repeats(&self) -> bool {
        super::keep_prepared(self.carts.len() + self.links.len() + self.jobs.len())
    }
}

/// Bind a [`HeldBack`]'s parameters, in order, to a query whose text starts with its statements.
macro_rules! bind_held_back {
    ($q:expr, $held:expr) => {{
        let held: &$crate::store::deferred::HeldBack = &$held;
        let mut q = $q;
        for r in &held.carts {
            q = $crate::store::carts::bind_cart!(q, r);
        }
        for (shop, identity, person) in &held.links {
            q = q.bind(shop).bind(identity).bind(person);
        }
        for j in &held.jobs {
            q = q
                .bind(&j.args)
                .bind(&j.id)
                .bind(&j.queue)
                .bind(j.max_attempts)
                .bind(j.run_at)
                .bind(j.priority)
                .bind(&j.metadata)
                .bind(&j.idempotency_key);
        }
        q
    }};
}
pub(super) use bind_held_back;

/// `sql` with every numbered parameter `$n` renumbered `$(n + by)`: the statement sent after
/// `by` parameters of other statements in one command (SQLite numbers them across the command).
pub(super) fn shift_params(sql: &str, by: usize) -> String {
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
