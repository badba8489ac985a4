//! `cartback campaign …`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{Cli, Failure, settings};
use crate::campaign::{CampaignSet, Channel};
use crate::domain::{Currency, Money};
use crate::recovery::simulate::{SampleCart, simulate};
use crate::render::Renderer;

/// Campaign subcommands.
#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Validate campaign files (default: every file in campaigns_dir); errors as file:line:col.
    Check {
        /// Files to check.
        files: Vec<PathBuf>,
    },
    /// Print each step's send time in UTC and local time, with deferrals and DST shifts explained.
    Simulate {
        /// Campaign name.
        #[arg(long)]
        campaign: String,
        /// When the cart counted as abandoned (RFC 3339, e.g. 2026-03-28T21:30:00Z).
        #[arg(long, value_name = "RFC3339")]
        abandoned_at: String,
        /// The customer's IANA time zone.
        #[arg(long, value_name = "TZ")]
        timezone: String,
        /// A sample cart/customer as JSON (a generic event body, or {"cart": {"total", "currency"}, "customer": {"orders_count"}}), to show the incentive tier.
        #[arg(long, value_name = "FILE.json")]
        customer: Option<PathBuf>,
        /// Whose currency bare amounts are in (default: the first configured shop's, else EUR).
        #[arg(long)]
        shop: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Render one message exactly as it would be sent (email: headers, text, HTML file; SMS: text, encoding, segments).
    Preview {
        /// Campaign name.
        #[arg(long)]
        campaign: String,
        /// Step id.
        #[arg(long)]
        step: String,
        /// email or sms.
        #[arg(long, value_parser = ["email", "sms"])]
        channel: String,
        /// Locale to render for (falls back per file: de-AT → de → shop locale → en).
        #[arg(long, default_value = "en")]
        locale: String,
        /// A sample cart as JSON (a generic event body, or {"cart": …, "customer": …}); default: a realistic sample.
        #[arg(long, value_name = "FILE.json")]
        cart: Option<PathBuf>,
        /// Shop whose name, sender, locale and currency to use (default: the first configured).
        #[arg(long)]
        shop: Option<String>,
        /// Where the HTML part is written.
        #[arg(long, default_value = "outbox/preview")]
        out: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the campaign format (editors use it to complete and validate YAML).
    Schema,
    /// Pause a campaign: due messages wait (they are never dropped) until it is resumed.
    Pause {
        /// Campaign name.
        name: String,
    },
    /// Resume a paused campaign.
    Resume {
        /// Campaign name.
        name: String,
    },
}

fn user(msg: String) -> Failure {
    Failure::User(anyhow::anyhow!(msg))
}

fn sample_cart(path: &std::path::Path) -> Result<SampleCart, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| user(format!("{}: {e}", path.display())))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| user(format!("{}: {e}", path.display())))?;
    let currency =
        v["cart"]["currency"].as_str().ok_or_else(|| user(format!("{}: cart.currency is required", path.display())))?;
    let currency = Currency::parse(currency).map_err(|e| user(format!("{}: cart.currency: {e}", path.display())))?;
    let total = v["cart"]["total"]
        .as_str()
        .ok_or_else(|| user(format!("{}: cart.total is required (a string like \"129.90\")", path.display())))?;
    let total = Money::parse(total, currency).map_err(|e| user(format!("{}: cart.total: {e}", path.display())))?;
    let orders_count = v["customer"]["orders_count"].as_u64().unwrap_or(0);
    let total_spent = match v["customer"]["total_spent"].as_str() {
        Some(t) => Some(
            Money::parse(t, currency).map_err(|e| user(format!("{}: customer.total_spent: {e}", path.display())))?,
        ),
        None => None,
    };
    Ok(SampleCart { total, orders_count: u32::try_from(orders_count).unwrap_or(u32::MAX), total_spent })
}

pub async fn run(cli: &Cli, cmd: &CampaignCommand) -> Result<(), Failure> {
    let s = settings(cli)?;
    match cmd {
        CampaignCommand::Pause { name } | CampaignCommand::Resume { name } => {
            crate::telemetry::init_with("warn");
            let app = crate::app::App::build(s).await?;
            let paused = matches!(cmd, CampaignCommand::Pause { .. });
            println!("{}", crate::ops::set_paused(&app, name, paused).await?);
            Ok(())
        }
        CampaignCommand::Preview { campaign, step, channel, locale, cart, shop, out, json } => {
            let args = super::preview::PreviewArgs {
                campaign,
                step,
                channel: Channel::parse(channel).ok_or_else(|| user(format!("--channel {channel:?}: email or sms")))?,
                locale,
                cart: cart.as_deref(),
                shop: shop.as_deref(),
                out_dir: out,
                json: *json,
            };
            super::preview::run(&s, &args).map(|_| ())
        }
        CampaignCommand::Schema => {
            println!("{}", crate::campaign::json_schema());
            Ok(())
        }
        CampaignCommand::Simulate { campaign, abandoned_at, timezone, customer, shop, json } => {
            let renderer = Renderer::load(&s.templates_dir)
                .with_context(|| format!("loading templates from {}", s.templates_dir.display()))
                .map_err(Failure::User)?;
            let set = CampaignSet::load_dir(&s.campaigns_dir, &|name, ch| renderer.has("en", name, ch))
                .map_err(|e| Failure::User(e.into()))?;
            let c = set.get(campaign).ok_or_else(|| {
                user(format!(
                    "no campaign {campaign:?} in {} (found: {})",
                    s.campaigns_dir.display(),
                    set.names().collect::<Vec<_>>().join(", ")
                ))
            })?;
            let at = DateTime::parse_from_rfc3339(abandoned_at)
                .map_err(|_| {
                    user(format!("--abandoned-at {abandoned_at:?} is not RFC 3339, e.g. 2026-03-28T21:30:00Z"))
                })?
                .with_timezone(&Utc);
            let tz: Tz = timezone
                .parse()
                .map_err(|_| user(format!("--timezone {timezone:?} is not an IANA time zone like Europe/Berlin")))?;
            let cart = customer.as_deref().map(sample_cart).transpose()?;
            let shops = s.shops().map_err(|e| Failure::User(e.into()))?;
            let shop_currency = match shop {
                Some(id) => shops
                    .values()
                    .find(|x| x.id.as_str() == id)
                    .map(|x| x.currency)
                    .ok_or_else(|| user(format!("--shop {id:?} is not configured")))?,
                None => shops
                    .values()
                    .next()
                    .map_or_else(|| Currency::parse("EUR").map_err(|e| user(e.to_string())), |x| Ok(x.currency))?,
            };
            let steps = simulate(c, at, tz, cart, shop_currency);
            if *json {
                println!("{}", serde_json::to_string_pretty(&steps).map_err(|e| Failure::Internal(e.into()))?);
                return Ok(());
            }
            println!(
                "campaign {campaign}, abandoned {} = {} in {tz}\n",
                at.format("%Y-%m-%d %H:%M:%S UTC"),
                at.with_timezone(&tz).format("%a %Y-%m-%d %H:%M:%S %Z")
            );
            println!("{:<12} {:<12} {:<24} send (local)", "step", "channels", "send (UTC)");
            for st in &steps {
                let channels: Vec<&str> = st.channels.iter().map(|c| c.as_str()).collect();
                println!(
                    "{:<12} {:<12} {:<24} {}",
                    st.step,
                    channels.join(","),
                    st.send_utc.format("%Y-%m-%d %H:%M:%S"),
                    st.send_local
                );
                for n in &st.notes {
                    println!("{:<12} ↳ {n}", "");
                }
                if let Some(i) = &st.incentive {
                    println!("{:<12} ↳ incentive: {i}", "");
                    for why in &st.incentive_why {
                        println!("{:<12}     {why}", "");
                    }
                }
            }
            Ok(())
        }
        CampaignCommand::Check { files } => {
            let renderer = Renderer::load(&s.templates_dir)
                .with_context(|| format!("loading templates from {}", s.templates_dir.display()))
                .map_err(Failure::User)?;
            let exists = |name: &str, ch| renderer.has("en", name, ch);
            let result = if files.is_empty() {
                CampaignSet::load_dir(&s.campaigns_dir, &exists)
            } else {
                CampaignSet::load_files(files, &exists)
            };
            match result {
                Ok(set) => {
                    // Every template of every step, in every locale, with every branch.
                    let findings = crate::render::lint::lint(&renderer, set.campaigns());
                    for f in &findings {
                        eprintln!("{f}");
                    }
                    let errors = findings.iter().filter(|f| f.severity == crate::render::lint::Severity::Error).count();
                    if errors > 0 {
                        return Err(Failure::User(anyhow::anyhow!("{errors} template problem(s)")));
                    }
                    for name in set.names() {
                        println!("ok: {name}");
                    }
                    Ok(())
                }
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("{e}\n");
                    }
                    Err(Failure::User(anyhow::anyhow!("{} problem(s) in campaign files", errors.0.len())))
                }
            }
        }
    }
}
