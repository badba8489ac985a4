//! The overview: queue depth, upcoming sends, failures with a retry button, and the funnel.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;

use super::{Done, DoneQuery, Tab, button, csrf_field, esc, failed, page, sign_in_form, signed_in};
use crate::app::App;
use crate::domain::from_millis;
use crate::ops;
use crate::queue::RECOVERY;
use crate::queue::tables::JobFilter;

fn bar_chart(stats: &ops::Stats) -> String {
    // One group per campaign: sent, clicks, recovered — horizontal bars scaled to the largest.
    let mut rows: Vec<(String, i64, i64, i64)> = Vec::new();
    for c in &stats.campaigns {
        let sent: i64 = c.steps.iter().map(|s| s.sent).sum();
        let clicks: i64 = c.steps.iter().map(|s| s.clicks).sum();
        rows.push((c.campaign.clone(), sent, clicks, c.recovered));
    }
    if rows.is_empty() {
        return "<p class=\"muted\">No carts in the last 7 days.</p>".into();
    }
    let max = rows.iter().map(|r| r.1.max(r.2).max(r.3)).max().unwrap_or(1).max(1) as f64;
    let h = rows.len() * 78 + 10;
    let mut svg = format!(
        "<svg role=\"img\" aria-label=\"Funnel per campaign\" width=\"100%\" height=\"{h}\" viewBox=\"0 0 760 {h}\" preserveAspectRatio=\"xMinYMin meet\">"
    );
    for (i, (name, sent, clicks, rec)) in rows.iter().enumerate() {
        let y = i * 78 + 6;
        let _ = write!(svg, "<text x=\"0\" y=\"{}\" font-size=\"13\" font-weight=\"600\">{}</text>", y + 12, esc(name));
        for (j, (label, v, color)) in
            [("sent", sent, "#3f3f46"), ("clicked", clicks, "#2563eb"), ("recovered", rec, "#16a34a")]
                .iter()
                .enumerate()
        {
            let w = ((**v as f64) / max * 520.0).round().max(1.0);
            let yy = y + 18 + j * 18;
            let _ = write!(
                svg,
                "<text x=\"0\" y=\"{}\" font-size=\"12\" fill=\"#71717a\">{label}</text><rect x=\"90\" y=\"{yy}\" width=\"{w}\" height=\"13\" rx=\"3\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{v}</text>",
                yy + 11,
                96.0 + w,
                yy + 11
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// `GET /ops/`
pub async fn dashboard(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<DoneQuery>) -> Response {
    let Some(csrf) = signed_in(&app, &headers) else {
        return sign_in_form();
    };
    match render(&app, q.done.as_deref(), &csrf).await {
        Ok(html) => html.into_response(),
        Err(e) => failed(Tab::Overview, &e),
    }
}

async fn render(app: &App, done: Option<&str>, csrf: &str) -> Result<Html<String>, ops::OpsError> {
    let counts = crate::queue::tables::counts(&app.db, RECOVERY).await.map_err(ops::OpsError::Store)?;
    let now = Utc::now().timestamp_millis();
    let mut tx = app.db.begin().await?;
    let upcoming = tx.upcoming(now, now + 86_400_000, 50).await?;
    let failed_jobs: Vec<_> = [
        crate::queue::tables::list_jobs(
            &mut tx,
            RECOVERY,
            &JobFilter { state: Some("failed".into()), limit: 20, ..JobFilter::default() },
        )
        .await?,
        crate::queue::tables::list_jobs(
            &mut tx,
            RECOVERY,
            &JobFilter { state: Some("dead".into()), limit: 20, ..JobFilter::default() },
        )
        .await?,
    ]
    .concat();
    let failed_sends = tx.failed_sends(20).await?;
    tx.commit().await?;
    let stats = ops::stats(app, Utc::now() - chrono::Duration::days(7), None).await?;
    let set = app.campaigns();

    let mut b = String::new();
    b.push_str(&Done::banner(done));
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/ops/logout\" style=\"text-align:right\">{}<button type=\"submit\">Sign out</button></form>",
        csrf_field(csrf)
    );
    let _ = write!(b, "<section><h2>Queue</h2><div class=\"cards\">");
    for (label, n) in [
        ("pending", counts.pending),
        ("running", counts.running),
        ("failed", counts.failed),
        ("dead", counts.killed),
        ("done", counts.done),
    ] {
        let _ = write!(
            b,
            "<a class=\"card\" data-state=\"{label}\" href=\"/ops/ui/jobs?state={label}\"><b>{n}</b><span>{label}</span></a>"
        );
    }
    let _ = write!(b, "</div></section>");

    let _ = write!(b, "<section><h2>Upcoming sends · next 24 h</h2>");
    if upcoming.is_empty() {
        b.push_str("<p class=\"muted\">Nothing due in the next 24 hours.</p>");
    } else {
        b.push_str("<table><tr><th>Due (UTC)</th><th>Customer's time</th><th>Shop</th><th>Cart</th><th>Campaign</th><th>Step</th></tr>");
        for (shop, cart, campaign, next_step, at, tz, status) in &upcoming {
            let tz: chrono_tz::Tz = tz.as_deref().and_then(|t| t.parse().ok()).unwrap_or(chrono_tz::UTC);
            let step = if status == "active" {
                "idle check".to_owned()
            } else {
                campaign
                    .as_deref()
                    .and_then(|c| set.get(c))
                    .and_then(|c| c.steps.get(usize::try_from(*next_step).ok()?))
                    .map_or_else(|| "-".into(), |s| s.id.value.clone())
            };
            let t = from_millis(*at);
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                t.format("%a %H:%M:%S"),
                t.with_timezone(&tz).format("%a %H:%M %Z"),
                esc(shop),
                esc(cart),
                esc(campaign.as_deref().unwrap_or("-")),
                esc(&step)
            );
        }
        b.push_str("</table>");
    }
    b.push_str("</section>");

    let _ = write!(b, "<section><h2>Failures</h2>");
    if failed_jobs.is_empty() && failed_sends.is_empty() {
        b.push_str("<p class=\"muted\">No failed jobs or messages.</p>");
    }
    if !failed_jobs.is_empty() {
        b.push_str("<table><tr><th>Job</th><th>State</th><th>Cart</th><th>Error</th><th></th></tr>");
        for j in &failed_jobs {
            let _ = write!(
                b,
                "<tr data-job=\"{id}\"><td><a href=\"/ops/ui/jobs/{href}\"><code>{id}</code></a></td><td>{}</td><td>{}</td><td class=\"err\">{}</td><td>{}</td></tr>",
                esc(&j.state),
                esc(j.cart.as_deref().unwrap_or("-")),
                esc(j.last_result.as_deref().unwrap_or("")),
                button(&format!("/ops/ui/jobs/{}/retry?back=overview", super::enc(&j.id)), csrf, "Retry"),
                id = esc(&j.id),
                href = super::enc(&j.id)
            );
        }
        b.push_str("</table>");
    }
    if !failed_sends.is_empty() {
        b.push_str("<table><tr><th>When (UTC)</th><th>Shop</th><th>Cart</th><th>Message</th><th>Reason</th></tr>");
        for (shop, cart, step, channel, reason, at) in &failed_sends {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td class=\"err\">{}</td></tr>",
                at.map(|t| from_millis(t).format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default(),
                esc(shop),
                esc(cart),
                esc(step),
                esc(channel),
                esc(reason.as_deref().unwrap_or(""))
            );
        }
        b.push_str("</table>");
    }
    b.push_str("</section>");

    let _ = write!(b, "<section><h2>Funnel · last 7 days</h2>{}", bar_chart(&stats));
    for c in &stats.campaigns {
        let lift = c.lift.as_ref().map_or_else(
            || "lift needs carts in both arms".to_owned(),
            |l| {
                format!(
                    "lift {:+.1} points (95% CI {:+.1} to {:+.1})",
                    l.difference * 100.0,
                    l.ci95.0 * 100.0,
                    l.ci95.1 * 100.0
                )
            },
        );
        let revenue: Vec<String> = c.revenue.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let _ = write!(
            b,
            "<p><b>{}</b>: {} entered, {} recovered, revenue {}; {}</p>",
            esc(&c.campaign),
            c.entered,
            c.recovered,
            esc(&if revenue.is_empty() { "0".to_owned() } else { revenue.join(", ") }),
            esc(&lift)
        );
    }
    b.push_str("</section>");
    Ok(page("Overview", Some(Tab::Overview), &b))
}
