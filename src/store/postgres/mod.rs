//! PostgreSQL's own strategies. Every statement is a network round trip, a statement whose
//! text changes with its rows is planned again each time, and several workers' transactions
//! run side by side. So an ingest batch locks its carts first, all at once and in one order
//! (`Tx::take_carts`), so two batches never wait for each other in a circle; and the writes
//! it held back go out as one statement of data-modifying CTEs over `unnest`ed arrays
//! ([`Tx::flush_postgres`]): one round trip, and one text, prepared once, whatever the
//! batch's size.

use std::sync::LazyLock;

use super::carts::{CART_COLUMNS, Cell, cart_cells};
use super::foreign::Value;
use super::held::Deferred;
use super::{Inner, StoreError, Tx};

/// The PostgreSQL type of each of [`CART_COLUMNS`] (what [`cart_cells`] gives for it).
const CART_TYPES: [&str; 41] = [
    "bigint", "text", "text", "bigint", "text", "text", "text", "text", "text", "text", "text", "text", "text", "text",
    "text", "bigint", "bigint", "boolean", "boolean", "text", "text", "text", "bigint", "text", "bigint", "bigint",
    "bigint", "bigint", "text", "bigint", "text", "bigint", "bigint", "text", "text", "text", "bigint", "text", "text",
    "bigint", "text",
];

/// The carts part: `UPDATE carts … FROM unnest($1::bigint[], …)`; parameters 1 to 41.
static CARTS_CTE: LazyLock<String> = LazyLock::new(|| {
    let arrays: Vec<String> = CART_TYPES.iter().enumerate().map(|(i, t)| format!("${}::{t}[]", i + 1)).collect();
    let set: Vec<String> = CART_COLUMNS[1..].iter().map(|c| format!("{c} = v.{c}")).collect();
    format!(
        "c AS (UPDATE carts SET {} FROM unnest({}) AS v({}) WHERE carts.id = v.id RETURNING 1)",
        set.join(", "),
        arrays.join(", "),
        CART_COLUMNS.join(", ")
    )
});

/// One array parameter: a column of values.
enum Column {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bool(Vec<bool>),
    Float(Vec<Option<f64>>),
    Bytes(Vec<Vec<u8>>),
}

impl Column {
    /// An empty column of PostgreSQL type `ty`.
    fn of_type(ty: &str) -> Self {
        match ty {
            "bigint" => Self::Int(Vec::new()),
            "boolean" => Self::Bool(Vec::new()),
            _ => Self::Text(Vec::new()),
        }
    }

    fn push(&mut self, cell: Cell) {
        match (self, cell) {
            (Self::Int(v), Cell::Int(x)) => v.push(x),
            (Self::Text(v), Cell::Text(x)) => v.push(x),
            (Self::Bool(v), Cell::Bool(x)) => v.push(x),
            _ => unreachable!("a cart column keeps its type"),
        }
    }

    /// The columns of foreign rows (all rows of one `INSERT` have the same shape).
    fn of_values(rows: &[Vec<Value>]) -> Vec<Self> {
        let width = rows.first().map_or(0, Vec::len);
        (0..width)
            .map(|j| {
                let cells = rows.iter().map(|r| &r[j]);
                match rows[0][j] {
                    Value::Int(_) | Value::NullInt => {
                        Self::Int(cells.map(|v| if let Value::Int(i) = v { Some(*i) } else { None }).collect())
                    }
                    Value::Float(_) => {
                        Self::Float(cells.map(|v| if let Value::Float(f) = v { Some(*f) } else { None }).collect())
                    }
                    Value::Bytes(_) => Self::Bytes(
                        cells.map(|v| if let Value::Bytes(b) = v { b.clone() } else { Vec::new() }).collect(),
                    ),
                    Value::Text(_) | Value::NullText => {
                        Self::Text(cells.map(|v| if let Value::Text(t) = v { Some(t.clone()) } else { None }).collect())
                    }
                }
            })
            .collect()
    }
}

impl Tx {
    /// Write every held-back change of a PostgreSQL transaction: one statement.
    pub(in crate::store) async fn flush_postgres(&mut self) -> Result<(), StoreError> {
        let Inner::Postgres { tx, held: Some(d) } = &mut self.inner else { return Ok(()) };
        if d.is_empty() {
            return Ok(());
        }
        let Deferred { carts, links, rows, .. } = std::mem::take(d);
        let mut columns: Vec<Column> = CART_TYPES.iter().map(|t| Column::of_type(t)).collect();
        for cart in &carts {
            for (col, cell) in columns.iter_mut().zip(cart_cells(cart)) {
                col.push(cell);
            }
        }
        let n = CART_COLUMNS.len();
        let mut ctes = vec![CARTS_CTE.clone()];
        ctes.push(format!(
            "l AS (INSERT INTO identities (shop, identity, person) SELECT * FROM unnest(${}::text[], ${}::text[], ${}::text[])
             ON CONFLICT (shop, identity) DO UPDATE SET person = excluded.person RETURNING 1)",
            n + 1,
            n + 2,
            n + 3
        ));
        let mut param = n + 4;
        // Foreign rows (the queue's jobs): one INSERT over arrays per kind of row.
        let mut foreign: Vec<Column> = Vec::new();
        let mut i = 0;
        while i < rows.len() {
            let insert = rows[i].0;
            let run = rows[i..].iter().take_while(|(r, _)| std::ptr::eq(*r, insert)).count();
            let Some(unnest) = insert.postgres_unnest else {
                return Err(StoreError::Queue("a held-back row has no PostgreSQL array form".into()));
            };
            let values: Vec<Vec<Value>> = rows[i..i + run].iter().map(|(_, v)| v.clone()).collect();
            let cols = Column::of_values(&values);
            let placeholders: Vec<String> = (0..cols.len()).map(|k| format!("${}", param + k)).collect();
            param += cols.len();
            let mut text = unnest.to_owned();
            for (k, p) in placeholders.iter().enumerate() {
                text = text.replace(&format!("{{{k}}}"), p);
            }
            ctes.push(format!("f{i} AS ({text} RETURNING 1)"));
            foreign.extend(cols);
            i += run;
        }
        let sql = format!("WITH {} SELECT 1", ctes.join(",\n"));
        let (shops, identities, persons): (Vec<String>, Vec<String>, Vec<String>) =
            links.into_iter().fold((Vec::new(), Vec::new(), Vec::new()), |(mut a, mut b, mut c), (s, i, p)| {
                a.push(s);
                b.push(i);
                c.push(p);
                (a, b, c)
            });
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for col in columns {
            q = bind_column(q, col);
        }
        q = q.bind(shops).bind(identities).bind(persons);
        for col in foreign {
            q = bind_column(q, col);
        }
        q.execute(&mut **tx).await?;
        Ok(())
    }
}

fn bind_column<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    col: Column,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    match col {
        Column::Int(v) => q.bind(v),
        Column::Text(v) => q.bind(v),
        Column::Bool(v) => q.bind(v),
        Column::Float(v) => q.bind(v),
        Column::Bytes(v) => q.bind(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cart_column_has_its_array_type() {
        let mut columns: Vec<Column> = CART_TYPES.iter().map(|t| Column::of_type(t)).collect();
        // Pushing a cell into a column of another type panics.
        for (col, cell) in columns.iter_mut().zip(cart_cells(&crate::store::carts::sample_row())) {
            col.push(cell);
        }
        assert_eq!(CART_TYPES.len(), CART_COLUMNS.len());
    }
}
