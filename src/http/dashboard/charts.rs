//! Charts over time: messages per day by channel and outcome, recoveries, and revenue net of
//! incentives, for all campaigns or one campaign and step. Inline SVG, each with its numbers
//! in a table beside it (screen readers, and anyone who wants the figures).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

use super::{Tab, esc, failed, page, sign_in_form, signed_in};
use crate::app::App;
use crate::domain::{Currency, Money};
use crate::ops;
use crate::ops::console::Day;

/// The chart's filters.
#[derive(Debug, Default, Deserialize)]
pub struct ChartsQuery {
    days: Option<i64>,
    #[serde(default)]
    campaign: String,
    #[serde(default)]
    step: String,
}

/// One series of a chart: its name, colour and one value per day.
struct Series {
    name: String,
    color: &'static str,
    values: Vec<i64>,
}

const COLORS: [&str; 8] = ["#1d4ed8", "#b91c1c", "#a1a1aa", "#15803d", "#c2410c", "#7c3aed", "#0e7490", "#52525b"];

/// Stacked daily bars with a legend, and the same numbers as a table.
fn bars(title: &str, labels: &[String], series: &[Series], fmt: &dyn Fn(i64) -> String) -> String {
    let (w, h, left, bottom) = (760.0_f64, 220.0_f64, 48.0_f64, 24.0_f64);
    let totals: Vec<i64> = (0..labels.len()).map(|i| series.iter().map(|s| s.values[i].max(0)).sum()).collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1) as f64;
    let slot = (w - left) / labels.len().max(1) as f64;
    let mut svg = format!(
        "<figure><svg role=\"img\" aria-label=\"{t}\" width=\"100%\" viewBox=\"0 0 {w} {}\" preserveAspectRatio=\"xMinYMin meet\">\
         <text x=\"0\" y=\"12\" font-size=\"12\" fill=\"#52525b\">{}</text><line x1=\"{left}\" y1=\"{h}\" x2=\"{w}\" y2=\"{h}\" stroke=\"#d4d4d8\"/>",
        h + bottom + 4.0,
        esc(&fmt(max as i64)),
        t = esc(title)
    );
    for (i, label) in labels.iter().enumerate() {
        let x = left + i as f64 * slot + slot * 0.15;
        let mut y = h;
        for s in series {
            let v = s.values[i].max(0);
            if v == 0 {
                continue;
            }
            let bh = (v as f64 / max * (h - 20.0)).max(1.0);
            y -= bh;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{} {}: {}</title></rect>",
                slot * 0.7,
                s.color,
                esc(label),
                esc(&s.name),
                esc(&fmt(v))
            );
        }
        // Label every day up to two weeks, else about a dozen.
        let every = (labels.len() / 12).max(1);
        if i % every == 0 {
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" fill=\"#52525b\">{}</text>",
                h + 16.0,
                esc(label.get(5..).unwrap_or(label))
            );
        }
    }
    svg.push_str("</svg><figcaption>");
    for s in series {
        let _ = write!(
            svg,
            "<span style=\"margin-right:14px\"><span aria-hidden=\"true\" style=\"display:inline-block;width:10px;height:10px;background:{}\"></span> {}</span>",
            s.color,
            esc(&s.name)
        );
    }
    let _ = write!(
        svg,
        "</figcaption></figure><details><summary>{} as a table</summary><table><thead><tr><th scope=\"col\">Day</th>",
        esc(title)
    );
    for s in series {
        let _ = write!(svg, "<th scope=\"col\">{}</th>", esc(&s.name));
    }
    svg.push_str("</tr></thead><tbody>");
    for (i, label) in labels.iter().enumerate() {
        let _ = write!(svg, "<tr><td>{label}</td>");
        for s in series {
            let _ = write!(svg, "<td>{}</td>", esc(&fmt(s.values[i])));
        }
        svg.push_str("</tr>");
    }
    svg.push_str("</tbody></table></details>");
    svg
}

/// The charts of `days`, as HTML sections.
fn render(days: &[Day]) -> String {
    let labels: Vec<String> = days.iter().map(|d| d.date.map(|d| d.to_string()).unwrap_or_default()).collect();
    let keys: BTreeSet<&(String, String)> = days.iter().flat_map(|d| d.sends.keys()).collect();
    let sends: Vec<Series> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Series {
            name: format!("{} {}", k.0, k.1),
            color: COLORS[i % COLORS.len()],
            values: days.iter().map(|d| d.sends.get(*k).copied().unwrap_or(0)).collect(),
        })
        .collect();
    let count = |v: i64| v.to_string();
    let mut b = String::from("<section><h2>Messages per day, by channel and outcome</h2>");
    if sends.is_empty() {
        b.push_str("<p class=\"muted\">No messages in this period.</p>");
    } else {
        b.push_str(&bars("Messages per day", &labels, &sends, &count));
    }
    b.push_str("</section><section><h2>Recovered carts per day</h2>");
    let recovered =
        [Series { name: "recovered".into(), color: COLORS[3], values: days.iter().map(|d| d.recovered).collect() }];
    b.push_str(&bars("Recovered carts per day", &labels, &recovered, &count));
    b.push_str("</section>");
    let currencies: BTreeSet<&String> = days.iter().flat_map(|d| d.revenue.keys()).collect();
    for cur in currencies {
        let code = Currency::parse(cur).ok();
        let money = move |v: i64| {
            code.map_or_else(|| v.to_string(), |c| format!("{} {}", Money::from_minor(v, c).decimal(), c.code()))
        };
        let net: Vec<i64> = days.iter().map(|d| d.net.get(cur).copied().unwrap_or(0)).collect();
        let cost: Vec<i64> = days.iter().zip(&net).map(|(d, n)| d.revenue.get(cur).copied().unwrap_or(0) - n).collect();
        let series = [
            Series { name: "net of incentives".into(), color: COLORS[3], values: net },
            Series { name: "incentive cost".into(), color: COLORS[4], values: cost },
        ];
        let title = format!("Recovered revenue per day ({})", cur);
        let _ = write!(b, "<section><h2>{}</h2>{}</section>", esc(&title), bars(&title, &labels, &series, &money));
    }
    b
}

/// `GET /ops/ui/charts`
pub async fn charts(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<ChartsQuery>) -> Response {
    if signed_in(&app, &headers).is_none() {
        return sign_in_form();
    }
    let days = [7, 30, 90].into_iter().find(|d| Some(*d) == q.days).unwrap_or(30);
    let campaign = Some(q.campaign.trim()).filter(|c| !c.is_empty());
    let step = Some(q.step.trim()).filter(|s| !s.is_empty());
    let series = match ops::console::series(&app, Utc::now(), days, campaign, step).await {
        Ok(s) => s,
        Err(e) => return failed(Tab::Charts, &e),
    };
    let mut b = String::from(
        "<section><h1>Charts</h1><form class=\"filters\" method=\"get\" action=\"/ops/ui/charts\">\
         <label for=\"c-days\">Period<select id=\"c-days\" name=\"days\">",
    );
    for d in [7, 30, 90] {
        let sel = if d == days { " selected" } else { "" };
        let _ = write!(b, "<option value=\"{d}\"{sel}>last {d} days</option>");
    }
    b.push_str("</select></label><label for=\"c-campaign\">Campaign<select id=\"c-campaign\" name=\"campaign\"><option value=\"\">all</option>");
    for name in app.campaigns().names() {
        let sel = if campaign == Some(name) { " selected" } else { "" };
        let _ = write!(b, "<option{sel}>{}</option>", esc(name));
    }
    let _ = write!(
        b,
        "</select></label><label for=\"c-step\">Step<input id=\"c-step\" name=\"step\" value=\"{}\" placeholder=\"step id\"></label>\
         <button type=\"submit\">Show</button></form><p class=\"muted\">Days are UTC. A recovery counts for the step whose link \
         was clicked last before the order; revenue is the treatment arm's, less the discounts of Cartback's codes.</p></section>",
        esc(step.unwrap_or(""))
    );
    b.push_str(&render(&series));
    page("Charts", Some(Tab::Charts), &b).into_response()
}
