//! `cartback import orders FILE.jsonl|FILE.csv`: a shop's order history, so behaviour-based
//! incentives (orders, lifetime spend, first order) work from the first day.
//!
//! Every row is checked before anything is written; one bad row refuses the file with every
//! problem listed as `FILE:LINE: field: message`. Rows are then written in transactions of
//! 1,000, idempotently (an order id already known is skipped), with a progress bar.

use std::path::{Path, PathBuf};

use chrono::DateTime;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use super::{Cli, Failure};
use crate::domain::{Currency, Email, Money, Phone};
use crate::store::history::PastOrder;

/// What to import.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Past orders: JSON Lines or CSV with order_id, total, currency, placed_at and at least
    /// one of customer_id, email, phone.
    Orders(ImportOrders),
}

/// `import orders`.
#[derive(Debug, Args)]
pub struct ImportOrders {
    /// `.jsonl` (one JSON object per line) or `.csv` (with a header row).
    file: PathBuf,
    /// The shop the orders belong to (default: the only configured shop).
    #[arg(long)]
    shop: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Row {
    order_id: Option<String>,
    customer_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    total: Option<String>,
    currency: Option<String>,
    placed_at: Option<String>,
}

/// A checked row.
#[derive(Debug)]
struct Order {
    order_id: String,
    customer_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    total: Money,
    placed_at: i64,
}

fn check(row: Row) -> Result<Order, String> {
    let blank = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let order_id = blank(row.order_id).ok_or("order_id: is required")?;
    let customer_id = blank(row.customer_id);
    let email = blank(row.email)
        .map(|e| Email::parse(&e).map(|e| e.as_str().to_lowercase()).map_err(|e| format!("email: {e}")))
        .transpose()?;
    let phone = blank(row.phone)
        .map(|p| Phone::parse(&p).map(|p| p.as_str().to_owned()).map_err(|e| format!("phone: {e}")))
        .transpose()?;
    if customer_id.is_none() && email.is_none() && phone.is_none() {
        return Err("customer_id, email or phone: at least one is required to know whose order it is".into());
    }
    let currency =
        Currency::parse(&blank(row.currency).ok_or("currency: is required")?).map_err(|e| format!("currency: {e}"))?;
    let total =
        Money::parse(&blank(row.total).ok_or("total: is required")?, currency).map_err(|e| format!("total: {e}"))?;
    let placed = blank(row.placed_at).ok_or("placed_at: is required (ISO 8601)")?;
    let placed_at = DateTime::parse_from_rfc3339(&placed)
        .map_err(|_| format!("placed_at: {placed:?} is not an ISO 8601 timestamp like 2026-11-22T10:00:00Z"))?
        .timestamp_millis();
    Ok(Order { order_id, customer_id, email, phone, total, placed_at })
}

/// Read and check every row: the orders, or every problem as `FILE:LINE: message`.
fn read(path: &Path) -> Result<Vec<Order>, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    let csv = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let mut rows: Vec<(usize, Result<Row, String>)> = Vec::new();
    if csv {
        let mut r = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
        for (i, rec) in r.deserialize::<Row>().enumerate() {
            rows.push((i + 2, rec.map_err(|e| e.to_string())));
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            if !line.trim().is_empty() {
                rows.push((i + 1, serde_json::from_str::<Row>(line).map_err(|e| format!("not a JSON object: {e}"))));
            }
        }
    }
    let mut orders = Vec::with_capacity(rows.len());
    let mut problems = Vec::new();
    for (line, row) in rows {
        match row.and_then(check) {
            Ok(o) => orders.push(o),
            Err(e) => problems.push(format!("{}:{line}: {e}", path.display())),
        }
    }
    if problems.is_empty() { Ok(orders) } else { Err(problems) }
}

/// Run `import`.
pub async fn run(cli: &Cli, cmd: &ImportCommand) -> Result<(), Failure> {
    let ImportCommand::Orders(a) = cmd;
    let settings = super::settings(cli)?;
    let shops = settings.shops().map_err(|e| Failure::User(e.into()))?;
    let shop = match &a.shop {
        Some(s) => shops
            .keys()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Failure::User(anyhow::anyhow!("--shop {s:?} is not configured")))?,
        None if shops.len() == 1 => shops.keys().next().ok_or_else(|| Failure::User(anyhow::anyhow!("no shop")))?,
        None => return Err(Failure::User(anyhow::anyhow!("several shops are configured: name one with --shop"))),
    }
    .as_str()
    .to_owned();
    let orders = read(&a.file).map_err(|problems| {
        for p in &problems {
            eprintln!("{p}");
        }
        Failure::User(anyhow::anyhow!("{} problem(s); nothing was imported", problems.len()))
    })?;
    crate::telemetry::init_with("warn");
    let app = crate::app::App::build(settings).await?;
    let bar = ProgressBar::new(orders.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} orders ({per_sec}, {eta} left)")
            .map_err(|e| Failure::Internal(e.into()))?,
    );
    let (mut new, mut known) = (0_u64, 0_u64);
    for chunk in orders.chunks(1_000) {
        let mut tx = app.db.begin().await.map_err(|e| Failure::Internal(e.into()))?;
        for o in chunk {
            let added = tx
                .record_order(
                    &shop,
                    &PastOrder {
                        order_id: &o.order_id,
                        customer_id: o.customer_id.as_deref(),
                        email: o.email.as_deref(),
                        phone: o.phone.as_deref(),
                        currency: o.total.currency().code(),
                        total_minor: o.total.minor(),
                        placed_at: o.placed_at,
                        source: "import",
                    },
                )
                .await
                .map_err(|e| Failure::Internal(e.into()))?;
            if added { new += 1 } else { known += 1 }
        }
        tx.commit().await.map_err(|e| Failure::Internal(e.into()))?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    println!("imported {new} order(s) for shop {shop}; {known} already known (skipped)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rows_are_all_reported_with_their_line_and_nothing_is_returned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("orders.jsonl");
        std::fs::write(
            &p,
            concat!(
                r#"{"order_id":"1","email":"A@Example.com","total":"10.00","currency":"EUR","placed_at":"2026-01-01T10:00:00Z"}"#,
                "\n",
                r#"{"order_id":"2","total":"10.00","currency":"EUR","placed_at":"2026-01-01T10:00:00Z"}"#,
                "\n\n",
                r#"{"order_id":"3","email":"b@example.com","total":"ten","currency":"EUR","placed_at":"2026-01-01T10:00:00Z"}"#,
                "\n",
                "not json\n"
            ),
        )
        .expect("write");
        let problems = read(&p).expect_err("refused");
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0]
                .ends_with(":2: customer_id, email or phone: at least one is required to know whose order it is")
        );
        assert!(problems[1].contains(":4: total:"), "{}", problems[1]);
        assert!(problems[2].contains(":5: not a JSON object"), "{}", problems[2]);
    }

    #[test]
    fn csv_with_a_header_reads_like_jsonl() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("orders.csv");
        std::fs::write(
            &p,
            "order_id,customer_id,email,phone,total,currency,placed_at\n1001,cu_1,Anna@Example.de,,129.90,EUR,2026-01-01T10:00:00Z\n1002,,,+4915123456789,25000,JPY,2026-02-01T10:00:00+09:00\n",
        )
        .expect("write");
        let orders = read(&p).expect("valid");
        assert_eq!(orders.len(), 2);
        assert_eq!(orders[0].email.as_deref(), Some("anna@example.de"));
        assert_eq!((orders[0].total.minor(), orders[1].total.minor()), (12_990, 25_000));
        assert_eq!(orders[1].phone.as_deref(), Some("+4915123456789"));
    }
}
