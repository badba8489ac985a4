//! Statements on tables the store does not own (the job queue's), written by their owner in
//! each dialect and run here, so the connections and the backend stay inside the store.
//!
//! The owner spells each statement per [`Dialect`](super::Dialect) ([`Dialects`]) and passes
//! its parameters as [`Value`]s; rows come back through `sqlx::FromRow`, derived once for
//! both backends. A [`RowInsert`] is a multi-row `INSERT` that an SQLite transaction holding
//! its writes back sends in the same command as the rest ([`super::sqlite`]).

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::{Backend, Db, Dialect, StoreError, Tx, on_tx_now};

/// One statement, spelled for each dialect.
#[derive(Debug, Clone, Copy)]
pub struct Dialects {
    /// SQLite's text.
    pub sqlite: &'static str,
    /// PostgreSQL's text.
    pub postgres: &'static str,
}

impl Dialects {
    /// A statement both dialects spell alike.
    pub const fn same(sql: &'static str) -> Self {
        Self { sqlite: sql, postgres: sql }
    }

    /// The text for `dialect`.
    pub fn get(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
        }
    }
}

/// A multi-row `INSERT`: `head`, then one `row` per row joined by `, `, then `tail`. In `row`,
/// each `?` is a parameter (numbered `$n` on PostgreSQL); it must not contain a `?` otherwise.
#[derive(Debug, Clone, Copy)]
pub struct RowInsert {
    /// `INSERT INTO t (…) VALUES `
    pub head: Dialects,
    /// `(?, ?, …)`
    pub row: Dialects,
    /// ` ON CONFLICT …` (may be empty).
    pub tail: Dialects,
    /// PostgreSQL: the same `INSERT` over one array per column (`… FROM unnest({0}::bigint[],
    /// {1}::text[], …)`, `{k}` the k-th parameter), for rows held back and written together:
    /// one text whatever the number of rows, planned once.
    pub postgres_unnest: Option<&'static str>,
}

/// A parameter of a foreign statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// NULL text.
    NullText,
    /// NULL integer.
    NullInt,
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Self::NullInt, Self::Int)
    }
}

impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Self::NullText, Self::from)
    }
}

/// Bind `values` in order to a query of either backend.
macro_rules! bind_values {
    ($q:expr, $values:expr) => {{
        let mut q = $q;
        for v in $values {
            q = match v {
                $crate::store::Value::Int(i) => q.bind(*i),
                $crate::store::Value::Float(f) => q.bind(*f),
                $crate::store::Value::Text(s) => q.bind(s.as_str()),
                $crate::store::Value::Bytes(b) => q.bind(b.as_slice()),
                $crate::store::Value::NullText => q.bind(None::<&str>),
                $crate::store::Value::NullInt => q.bind(None::<i64>),
            };
        }
        q
    }};
}
pub(super) use bind_values;

/// Rows of a foreign statement, for both backends.
pub trait ForeignRow: Send + Unpin + for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> {}
impl<T> ForeignRow for T where T: Send + Unpin + for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> {}

impl Db {
    /// Run a statement; rows affected.
    pub async fn execute(&self, sql: &Dialects, values: &[Value]) -> Result<u64, StoreError> {
        let text = sqlx::AssertSqlSafe(sql.get(self.dialect()));
        Ok(match &self.backend {
            Backend::Sqlite(p) => bind_values!(sqlx::query(text), values).execute(p).await?.rows_affected(),
            Backend::Postgres(p) => bind_values!(sqlx::query(text), values).execute(p).await?.rows_affected(),
        })
    }

    /// Every row of a query.
    pub async fn fetch_all<T: ForeignRow>(&self, sql: &Dialects, values: &[Value]) -> Result<Vec<T>, StoreError> {
        let text = sqlx::AssertSqlSafe(sql.get(self.dialect()));
        Ok(match &self.backend {
            Backend::Sqlite(p) => bind_values!(sqlx::query_as::<_, T>(text), values).fetch_all(p).await?,
            Backend::Postgres(p) => bind_values!(sqlx::query_as::<_, T>(text), values).fetch_all(p).await?,
        })
    }
}

impl Db {
    /// The one row of a query (an error when there is none).
    pub async fn fetch_one<T: ForeignRow>(&self, sql: &Dialects, values: &[Value]) -> Result<T, StoreError> {
        let text = sqlx::AssertSqlSafe(sql.get(self.dialect()));
        Ok(match &self.backend {
            Backend::Sqlite(p) => bind_values!(sqlx::query_as::<_, T>(text), values).fetch_one(p).await?,
            Backend::Postgres(p) => bind_values!(sqlx::query_as::<_, T>(text), values).fetch_one(p).await?,
        })
    }
}

impl Tx {
    /// Run a statement in this transaction (after its held-back writes); rows affected.
    pub async fn execute(&mut self, sql: &Dialects, values: &[Value]) -> Result<u64, StoreError> {
        self.flush().await?;
        let text = sqlx::AssertSqlSafe(sql.get(self.dialect()));
        Ok(on_tx_now!(self, |c| bind_values!(sqlx::query(text), values).execute(&mut *c).await?.rows_affected()))
    }

    /// Every row of a query in this transaction (after its held-back writes).
    pub async fn fetch_all<T: ForeignRow>(&mut self, sql: &Dialects, values: &[Value]) -> Result<Vec<T>, StoreError> {
        self.flush().await?;
        let text = sqlx::AssertSqlSafe(sql.get(self.dialect()));
        Ok(on_tx_now!(self, |c| bind_values!(sqlx::query_as::<_, T>(text), values).fetch_all(&mut *c).await?))
    }

    /// Insert `rows` (each with the parameters of `insert.row`): held back with the
    /// transaction's other writes when it holds them ([`Tx::defer_writes`]), else at once, as
    /// one statement.
    pub async fn insert_rows(&mut self, insert: &'static RowInsert, rows: Vec<Vec<Value>>) -> Result<(), StoreError> {
        // PostgreSQL holds back only rows it can write as arrays.
        let holds = self.dialect() == Dialect::Sqlite || insert.postgres_unnest.is_some();
        if holds && let Some(held) = self.held_mut() {
            held.rows.extend(rows.into_iter().map(|values| (insert, values)));
            return Ok(());
        }
        if rows.is_empty() {
            return Ok(());
        }
        self.flush().await?;
        let dialect = self.dialect();
        let mut p = super::Params::of(self);
        let mut sql = String::from(insert.head.get(dialect));
        for (i, _) in rows.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&number(insert.row.get(dialect), &mut p));
        }
        sql.push_str(insert.tail.get(dialect));
        let keep = super::keep_prepared(rows.len());
        let values: Vec<Value> = rows.into_iter().flatten().collect();
        on_tx_now!(self, |c| bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).persistent(keep), &values)
            .execute(&mut *c)
            .await?
            .rows_affected());
        Ok(())
    }
}

/// `row` with each `?` replaced by the next placeholder of `p`.
pub(super) fn number(row: &str, p: &mut super::Params) -> String {
    let mut out = String::with_capacity(row.len() + 16);
    for ch in row.chars() {
        if ch == '?' {
            out.push_str(&p.next());
        } else {
            out.push(ch);
        }
    }
    out
}
