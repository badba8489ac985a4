//! Operator commands: `jobs`, `carts`, `stats`.

use chrono::Utc;
use clap::{Args, Subcommand};

use super::{Cli, Failure, settings};
use crate::app::App;
use crate::domain::from_millis;
use crate::ops::{self, OpsError};
use crate::queue::tables::JobFilter;

/// `cartback jobs …`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest due time first.
    List(JobsList),
    /// One job: payload, attempts, errors, timings, its cart and step.
    Show {
        /// Job id.
        id: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Put a failed, dead or cancelled job back in the queue, due now.
    Retry {
        /// Job id.
        id: String,
    },
    /// Cancel a waiting job (never one a worker holds); its cart's sequence waits until retried.
    Cancel {
        /// Job id.
        id: String,
    },
    /// Messages left in doubt (`unconfirmed`): handed to the relay by a worker that stopped
    /// before it heard the answer. Their age, relay and reason.
    Unconfirmed {
        /// At most this many, oldest first.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Send an unconfirmed message again, now, with the same Message-ID.
    Resend {
        /// The send's id (from `jobs unconfirmed`).
        id: String,
    },
    /// Record an unconfirmed message as delivered.
    Delivered {
        /// The send's id (from `jobs unconfirmed`).
        id: String,
    },
}

/// `cartback outbound …`.
#[derive(Debug, Subcommand)]
pub enum OutboundCommand {
    /// Events sent to shops, newest first.
    List {
        /// pending, delivered or dead.
        #[arg(long, value_parser = ["pending", "delivered", "dead"])]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Send a dead event again, now.
    Retry {
        /// Its id (from `outbound list`).
        id: i64,
    },
}

/// Filters for `jobs list`.
#[derive(Debug, Args)]
pub struct JobsList {
    /// pending | scheduled | running | done | failed | dead | cancelled
    #[arg(long, value_parser = ["pending", "scheduled", "running", "done", "failed", "dead", "cancelled"])]
    state: Option<String>,
    /// Only this shop.
    #[arg(long)]
    shop: Option<String>,
    /// Only this campaign.
    #[arg(long)]
    campaign: Option<String>,
    /// Only this cart (the shop's cart id).
    #[arg(long)]
    cart: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// `cartback carts …`
#[derive(Debug, Subcommand)]
pub enum CartsCommand {
    /// One cart's timeline: events, zone, each step scheduled/sent/skipped/deferred/failed and why, clicks, recovery.
    Show {
        /// The shop's cart id.
        id: String,
        /// The shop, when the id exists in several.
        #[arg(long)]
        shop: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// `cartback customers …`
#[derive(Debug, Subcommand)]
pub enum CustomersCommand {
    /// Remove a person's personal data (contacts, names, carts' contents, raw events, rendered
    /// messages, timelines); aggregate stats stay, suppressions stay as hashes.
    Erase {
        /// Who.
        #[command(flatten)]
        person: PersonArgs,
        /// PostgreSQL: also rewrite the tables that held the person (`VACUUM FULL`: locks them
        /// while it runs), so old row versions are gone from their files. SQLite always clears
        /// the freed space and its WAL.
        #[arg(long)]
        vacuum: bool,
    },
    /// Print everything held about a person as JSON.
    Export(PersonArgs),
}

/// Who: a shop and at least one of email, phone, customer id.
#[derive(Debug, Args)]
pub struct PersonArgs {
    /// The shop.
    #[arg(long)]
    shop: String,
    /// Email address.
    #[arg(long)]
    email: Option<String>,
    /// Phone number (international form).
    #[arg(long)]
    phone: Option<String>,
    /// The shop's customer id.
    #[arg(long)]
    id: Option<String>,
}

/// `cartback stats`
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Carts created within this period (e.g. 7d, 24h).
    #[arg(long, default_value = "7d")]
    since: String,
    /// Only this shop.
    #[arg(long)]
    shop: Option<String>,
    /// `campaign`: the funnel per campaign, step and tier; `reason`: where carts are lost and
    /// which abandonment reasons recover (as shops and customers reported them).
    #[arg(long, default_value = "campaign", value_parser = ["campaign", "reason"])]
    by: String,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

impl From<OpsError> for Failure {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::NotFound(_) | OpsError::Conflict(_) | OpsError::Replayed(_) => Failure::User(e.into()),
            OpsError::Store(_) => Failure::Internal(e.into()),
        }
    }
}

/// Columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(headers.to_vec())];
    out.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    out.join("\n")
}

fn secs(t: Option<i64>) -> String {
    t.and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

fn json(v: &impl serde::Serialize) -> Result<(), Failure> {
    println!("{}", serde_json::to_string_pretty(v).map_err(|e| Failure::Internal(e.into()))?);
    Ok(())
}

async fn app(cli: &Cli) -> Result<std::sync::Arc<App>, Failure> {
    let s = settings(cli)?;
    crate::telemetry::init_with("warn");
    Ok(App::build(s).await?)
}

pub async fn jobs(cli: &Cli, cmd: &JobsCommand) -> Result<(), Failure> {
    let app = app(cli).await?;
    match cmd {
        JobsCommand::List(a) => {
            let filter = JobFilter {
                state: a.state.clone(),
                shop: a.shop.clone(),
                campaign: a.campaign.clone(),
                cart: a.cart.clone(),
                limit: a.limit,
                ..JobFilter::default()
            };
            let rows = ops::jobs(&app, &filter).await?;
            if a.json {
                return json(&rows);
            }
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|j| {
                    vec![
                        j.id.clone(),
                        j.state.clone(),
                        secs(Some(j.run_at)),
                        format!("{}/{}", j.attempts, j.max_attempts),
                        j.shop.clone().unwrap_or_default(),
                        j.cart.clone().unwrap_or_default(),
                        j.campaign.clone().unwrap_or_else(|| "-".into()),
                        j.last_result.clone().unwrap_or_default().chars().take(60).collect(),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(&["JOB", "STATE", "DUE (UTC)", "ATTEMPTS", "SHOP", "CART", "CAMPAIGN", "LAST RESULT"], &cells)
            );
            Ok(())
        }
        JobsCommand::Show { id, json: as_json } => {
            let v = ops::job(&app, id).await?;
            if *as_json {
                return json(&v);
            }
            let j = &v.job;
            println!(
                "job        {}\nstate      {} (queue status {})\ndue        {} UTC",
                j.id,
                j.state,
                j.status,
                secs(Some(j.run_at))
            );
            println!(
                "attempts   {}/{}\nlocked     {} by {}",
                j.attempts,
                j.max_attempts,
                secs(j.lock_at),
                j.lock_by.as_deref().unwrap_or("-")
            );
            println!("finished   {}\nresult     {}", secs(j.done_at), j.last_result.as_deref().unwrap_or("-"));
            println!(
                "payload    cart row {} seq {}{}",
                j.cart_id.map_or("-".into(), |c| c.to_string()),
                j.seq.map_or("-".into(), |c| c.to_string()),
                if v.superseded { " (superseded by a newer job: it does nothing)" } else { "" }
            );
            println!(
                "cart       {} in shop {} ({}), campaign {}, next step {}",
                j.cart.as_deref().unwrap_or("-"),
                j.shop.as_deref().unwrap_or("-"),
                j.cart_status.as_deref().unwrap_or("-"),
                j.campaign.as_deref().unwrap_or("-"),
                v.step.as_deref().unwrap_or("-")
            );
            println!("\nrecent timeline:");
            for e in &v.timeline {
                println!("  {}  {:<11} {}", from_millis(e.at).format("%Y-%m-%d %H:%M:%S"), e.what, e.detail);
            }
            Ok(())
        }
        JobsCommand::Retry { id } => {
            println!("{}", ops::retry_job(&app, id).await?);
            Ok(())
        }
        JobsCommand::Cancel { id } => {
            println!("{}", ops::cancel_job(&app, id).await?);
            Ok(())
        }
        JobsCommand::Unconfirmed { limit, json: as_json } => {
            let rows = ops::unconfirmed(&app, *limit).await?;
            if *as_json {
                return json(&rows);
            }
            if rows.is_empty() {
                println!("no message is in doubt");
            }
            for r in &rows {
                let age = r.age_seconds.map_or_else(
                    || "-".to_owned(),
                    |s| humantime::format_duration(std::time::Duration::from_secs(s.max(0).unsigned_abs())).to_string(),
                );
                let why = r.reason.as_deref().unwrap_or("-");
                println!(
                    "{}  shop {} cart {}  {}/{}  handed over {age} ago\n    {why}",
                    r.id, r.shop, r.cart, r.step, r.channel
                );
            }
            Ok(())
        }
        JobsCommand::Resend { id } => {
            println!("{}", ops::resend(&app, id).await?);
            Ok(())
        }
        JobsCommand::Delivered { id } => {
            println!("{}", ops::mark_delivered(&app, id).await?);
            Ok(())
        }
    }
}

pub async fn carts(cli: &Cli, cmd: &CartsCommand) -> Result<(), Failure> {
    let app = app(cli).await?;
    let CartsCommand::Show { id, shop, json: as_json } = cmd;
    let v = ops::cart(&app, id, shop.as_deref()).await?;
    if *as_json {
        return json(&v);
    }
    let c = &v.cart;
    let tz: chrono_tz::Tz = c.timezone.as_deref().and_then(|t| t.parse().ok()).unwrap_or(chrono_tz::UTC);
    println!("cart {} (shop {}) — {}", c.external_id, c.shop, c.status);
    println!(
        "customer   {} ({})",
        c.customer_ref.as_ref().map_or_else(|| "-".to_owned(), |r| r.key()),
        c.email.as_deref().map(crate::domain::mask_email).unwrap_or_default()
    );
    println!("zone       {tz} — {}", c.timezone_source.as_deref().unwrap_or("-"));
    println!(
        "campaign   {} (arm {}), next step {}",
        c.campaign.as_deref().unwrap_or("-"),
        c.arm.as_deref().unwrap_or("-"),
        c.next_step
    );
    if let Some(r) = c.recovered_at {
        println!(
            "recovered  {} order {} ({} minor units)",
            from_millis(r).to_rfc3339(),
            c.order_id.as_deref().unwrap_or("-"),
            c.order_total_minor.unwrap_or(0)
        );
    }
    println!("\ntimeline (UTC | {tz}):");
    for e in &v.timeline {
        let t = from_millis(e.at);
        println!(
            "  {} | {} | {:<11} {}",
            t.format("%Y-%m-%d %H:%M:%S"),
            t.with_timezone(&tz).format("%a %H:%M:%S %Z"),
            e.what,
            e.detail
        );
    }
    if !v.sends.is_empty() {
        println!("\nmessages:");
        let rows: Vec<Vec<String>> = v
            .sends
            .iter()
            .map(|s| {
                vec![
                    s.send.step.clone(),
                    s.send.channel.clone(),
                    s.send.status.as_str().to_owned(),
                    from_millis(s.send.due_at).format("%Y-%m-%d %H:%M:%S").to_string(),
                    s.send.completed_at.map_or("-".into(), |t| from_millis(t).format("%Y-%m-%d %H:%M:%S").to_string()),
                    s.send.attempts.to_string(),
                    s.clicks.to_string(),
                    s.send.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        println!(
            "{}",
            table(&["STEP", "CHANNEL", "STATUS", "DUE (UTC)", "DONE (UTC)", "ATTEMPTS", "CLICKS", "REASON"], &rows)
        );
    }
    Ok(())
}

pub async fn stats(cli: &Cli, a: &StatsArgs) -> Result<(), Failure> {
    let period = humantime::parse_duration(&a.since)
        .map_err(|e| Failure::User(anyhow::anyhow!("--since {:?}: {e}", a.since)))?;
    let since =
        Utc::now() - chrono::Duration::from_std(period).map_err(|e| Failure::User(anyhow::anyhow!("--since: {e}")))?;
    let app = app(cli).await?;
    if a.by == "reason" {
        let r = ops::reasons::by_reason(&app, since, a.shop.as_deref()).await?;
        if a.json {
            return json(&r);
        }
        let money = |m: &std::collections::BTreeMap<String, String>| {
            if m.is_empty() {
                "0".to_owned()
            } else {
                m.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
            }
        };
        for (title, rows) in
            [("as the shop reported it", &r.reported_by_shop), ("as customers told us", &r.reported_by_customers)]
        {
            println!("\nabandoned carts created since {} UTC, by reason {title}:", since.format("%Y-%m-%d %H:%M"));
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|x| {
                    vec![
                        x.reason.clone(),
                        x.carts.to_string(),
                        x.recovered.to_string(),
                        format!("{:.1}%", x.recovery_rate * 100.0),
                        money(&x.revenue),
                        money(&x.lost),
                    ]
                })
                .collect();
            println!("{}", table(&["REASON", "CARTS", "RECOVERED", "RATE", "REVENUE", "STILL LOST"], &cells));
        }
        return Ok(());
    }
    let st = ops::stats(&app, since, a.shop.as_deref()).await?;
    if a.json {
        return json(&st);
    }
    println!(
        "carts created since {} UTC{}",
        since.format("%Y-%m-%d %H:%M"),
        a.shop.as_deref().map(|s| format!(", shop {s}")).unwrap_or_default()
    );
    for c in &st.campaigns {
        let money = |m: &std::collections::BTreeMap<String, String>| {
            if m.is_empty() {
                "0".to_owned()
            } else {
                m.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
            }
        };
        println!("\ncampaign {}", c.campaign);
        println!("  entered {} (treatment {}, holdout {})", c.entered, c.treatment, c.holdout);
        println!(
            "  recovered {} of {} treatment carts; holdout {} of {}",
            c.recovered, c.treatment, c.holdout_recovered, c.holdout
        );
        println!(
            "  recovered revenue {}; incentive cost {} (+{} free-shipping); net {}",
            money(&c.revenue),
            money(&c.incentive_cost),
            c.free_shipping_recoveries,
            money(&c.net_revenue)
        );
        for t in &c.tiers {
            println!(
                "  tier {}: {} code(s) issued, {} used; revenue {}; cost {}",
                t.tier,
                t.issued,
                t.redeemed,
                money(&t.revenue),
                money(&t.cost)
            );
        }
        for a in &c.attributed_steps {
            println!("  recovered after {}: {} cart(s), revenue {}", a.step, a.recovered, money(&a.revenue));
        }
        match &c.lift {
            Some(l) => println!(
                "  lift {:+.1} points (treatment {:.1}% vs holdout {:.1}%; 95% CI {:+.1} to {:+.1})",
                l.difference * 100.0,
                l.treatment_rate * 100.0,
                l.holdout_rate * 100.0,
                l.ci95.0 * 100.0,
                l.ci95.1 * 100.0
            ),
            None => println!("  lift: needs carts in both arms"),
        }
        let rows: Vec<Vec<String>> = c
            .steps
            .iter()
            .map(|s| {
                vec![
                    s.step.clone(),
                    s.channel.clone(),
                    s.sent.to_string(),
                    s.skipped.to_string(),
                    s.failed.to_string(),
                    s.clicks.to_string(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            println!(
                "{}",
                table(
                    &["  STEP", "CHANNEL", "SENT", "SKIPPED", "FAILED", "CLICKS"],
                    &rows
                        .into_iter()
                        .map(|mut r| {
                            r[0] = format!("  {}", r[0]);
                            r
                        })
                        .collect::<Vec<_>>()
                )
            );
        }
    }
    if st.not_entered > 0 {
        println!("\n{} carts entered no campaign (see `cartback carts show ID` for why)", st.not_entered);
    }
    Ok(())
}

pub async fn outbound(cli: &Cli, cmd: &OutboundCommand) -> Result<(), Failure> {
    let app = app(cli).await?;
    match cmd {
        OutboundCommand::List { state, limit, json: as_json } => {
            let state = state.as_deref().and_then(crate::store::outbound::OutboundState::parse);
            let rows = ops::outbound::list(&app, state, *limit).await?;
            if *as_json {
                return json(&rows);
            }
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let state = if r.delivered_at.is_some() {
                        "delivered"
                    } else if r.dead_at.is_some() {
                        "dead"
                    } else {
                        "pending"
                    };
                    vec![
                        r.id.to_string(),
                        r.shop.clone(),
                        r.kind.clone(),
                        state.to_owned(),
                        r.attempts.to_string(),
                        from_millis(r.created_at).format("%Y-%m-%d %H:%M:%S").to_string(),
                        r.last_error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            println!("{}", table(&["ID", "SHOP", "KIND", "STATE", "ATTEMPTS", "CREATED (UTC)", "LAST ERROR"], &cells));
            Ok(())
        }
        OutboundCommand::Retry { id } => {
            println!("{}", ops::outbound::retry(&app, *id).await?);
            Ok(())
        }
    }
}

pub async fn customers(cli: &Cli, cmd: &CustomersCommand) -> Result<(), Failure> {
    let app = app(cli).await?;
    let (CustomersCommand::Erase { person: p, .. } | CustomersCommand::Export(p)) = cmd;
    let who = ops::privacy::Person {
        shop: p.shop.clone(),
        email: p.email.clone(),
        phone: p.phone.clone(),
        customer_id: p.id.clone(),
    };
    match cmd {
        CustomersCommand::Erase { vacuum, .. } => {
            let e = ops::privacy::erase_once(&app, &who, None, *vacuum).await?;
            println!(
                "erased {} cart(s); deleted {} rendered message(s); kept {} suppression(s) as hashes",
                e.carts, e.messages_deleted, e.suppressions_hashed
            );
            Ok(())
        }
        CustomersCommand::Export(_) => json(&ops::privacy::export(&app, &who).await?),
    }
}
