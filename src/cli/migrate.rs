//! `cartback migrate`.

use anyhow::Context;

use super::{Cli, Failure, settings};
use crate::store::Db;

pub async fn run(cli: &Cli) -> Result<(), Failure> {
    let s = settings(cli)?;
    crate::telemetry::init(s.log_format, crate::queue::LOG_DEFAULTS);
    let db = Db::connect(s.database_url.expose()).await.context("connecting to the database")?;
    crate::queue::migrate(&db).await.context("applying migrations")?;
    println!("migrations applied ({})", db.backend());
    Ok(())
}
