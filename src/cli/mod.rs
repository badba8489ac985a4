//! The `cartback` command line: one file per subcommand.

mod campaign;
mod demo;
mod import;
mod migrate;
mod ops;
mod preview;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;

/// Abandoned-cart recovery: signed webhooks in, time-zone-aware localized recovery sequences out.
#[derive(Debug, Parser)]
#[command(name = "cartback", version, about)]
pub struct Cli {
    /// Configuration file (default: ./cartback.toml if present). CARTBACK_* variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// HTTP server (webhooks, customer links, ops API, dashboard, metrics, health) and the worker in one process.
    Serve,
    /// The worker only (more machines on one Postgres).
    Worker,
    /// Apply migrations for the configured database.
    Migrate,
    /// The newcomer's tour: sample carts through a quick campaign on SQLite + file outbox.
    Demo(demo::DemoArgs),
    /// Campaign files, simulation, pause and resume.
    #[command(subcommand, alias = "campaigns")]
    Campaign(campaign::CampaignCommand),
    /// Inspect and act on the job queue.
    #[command(subcommand, name = "jobs")]
    JobQueue(ops::JobsCommand),
    /// One cart's timeline.
    #[command(subcommand)]
    Carts(ops::CartsCommand),
    /// The funnel per campaign and step.
    Stats(ops::StatsArgs),
    /// Erase or export a person's data.
    #[command(subcommand)]
    Customers(ops::CustomersCommand),
    /// Events sent to shops (incentive.issued, order.expire): list, retry the dead.
    #[command(subcommand)]
    Outbound(ops::OutboundCommand),
    /// Import a shop's order history (JSON Lines or CSV) for behaviour-based incentives.
    #[command(subcommand)]
    Import(import::ImportCommand),
}

/// A failure, split by whose it is: exit 1 for the user's (bad input or configuration), 2 for ours.
#[derive(Debug)]
pub enum Failure {
    /// Exit code 1.
    User(anyhow::Error),
    /// Exit code 2.
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        // Typed configuration errors, and errors a caller marked with a `configuration` context
        // (a relay URL lettre refuses, a missing provider key), at any depth.
        let user = e.chain().any(|c| {
            c.is::<crate::config::ConfigError>()
                || c.is::<crate::campaign::CampaignErrors>()
                || c.is::<crate::render::RenderError>()
                || c.is::<crate::deliver::SmtpUrlError>()
                || c.to_string().starts_with("configuration")
        });
        if user { Failure::User(e) } else { Failure::Internal(e) }
    }
}

fn settings(cli: &Cli) -> Result<Settings, Failure> {
    Settings::load(cli.config.as_deref()).map_err(|e| Failure::User(e.into()))
}

/// Run a parsed command line and turn the result into an exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match &cli.command {
        Command::Serve => serve::serve(&cli, true).await,
        Command::Worker => serve::serve(&cli, false).await,
        Command::Migrate => migrate::run(&cli).await,
        Command::Demo(args) => demo::run(&cli, args).await,
        Command::Campaign(cmd) => campaign::run(&cli, cmd).await,
        Command::JobQueue(cmd) => ops::jobs(&cli, cmd).await,
        Command::Carts(cmd) => ops::carts(&cli, cmd).await,
        Command::Stats(a) => ops::stats(&cli, a).await,
        Command::Customers(cmd) => ops::customers(&cli, cmd).await,
        Command::Outbound(cmd) => ops::outbound(&cli, cmd).await,
        Command::Import(cmd) => import::run(&cli, cmd).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::User(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
        Err(Failure::Internal(e)) => {
            eprintln!("internal error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn configuration_mistakes_are_the_users_and_the_rest_ours() {
        use super::Failure;
        let user = |e: anyhow::Error| matches!(Failure::from(e), Failure::User(_));
        assert!(user(anyhow::anyhow!("email.smtp_url: invalid scheme").context("configuration")));
        assert!(user(anyhow::anyhow!("configuration: sms.auth_token is required for the twilio transport")));
        assert!(!user(anyhow::anyhow!("connection refused").context("connecting to the database")));
    }
}
