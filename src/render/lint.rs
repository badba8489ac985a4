//! Template checks for `campaign check`: every step of every campaign is rendered in every
//! locale that has templates, with every branch a customer can hit (each incentive tier's
//! offer, with and without a first name, with and without an abandonment reason), so a
//! typo'd variable fails here (strict mode) and not in a customer's inbox.

use std::fmt;

use serde_json::{Value, json};

use super::{OptOut, RenderError, Renderer};
use crate::campaign::{Campaign, Channel};
use crate::domain::{Currency, Locale};
use crate::incentive;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The message cannot be rendered: `campaign check` fails.
    Error,
    /// The message renders but will be refused at send time for some customers.
    Warning,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// `campaign default, step reminder, sms, de: …`.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.severity == Severity::Error { "error" } else { "warning" };
        write!(f, "{s}: {}", self.message)
    }
}

/// The context variants each template is rendered with.
fn variants(campaign: &Campaign, with_incentive: bool, base: &Value) -> Vec<(String, Value)> {
    let currency = base.pointer("/cart/currency").and_then(Value::as_str).and_then(|c| Currency::parse(c).ok());
    let mut offers: Vec<(String, Value)> = Vec::new();
    if with_incentive && let (Some(inc), Some(cur)) = (&campaign.incentives, currency) {
        for tier in &inc.tiers {
            if let Some(o) = incentive::offer_of(tier, cur, cur) {
                let view =
                    super::context::IncentiveView { offer: &o, code: "CHECK-CODE", expires_at_ms: 1_800_000_000_000 };
                offers.push((format!("tier {}", o.tier), view.to_json()));
            }
        }
    }
    if offers.is_empty() {
        offers.push((String::new(), Value::Null));
    }
    let mut out = Vec::new();
    for (label, offer) in offers {
        for (who, name) in [("", json!("Anna")), ("no first name", Value::Null)] {
            for (why, reason) in [
                ("", json!({"stage": null, "code": null, "detail": null, "text": null})),
                (
                    "reason payment_failed/card_declined",
                    json!({"stage": "payment", "code": "payment_failed", "detail": "card_declined", "text": null}),
                ),
            ] {
                let mut v = base.clone();
                v["incentive"] = offer.clone();
                v["customer"]["first_name"] = name.clone();
                v["reason"] = reason;
                let what: Vec<&str> = [label.as_str(), who, why].into_iter().filter(|s| !s.is_empty()).collect();
                out.push((what.join(", "), v));
            }
        }
    }
    out
}

/// Render every step of `campaigns` in every locale of `renderer`; `base` is a full sample
/// context (cart, shop, links) whose `locale` is replaced per locale.
pub fn lint<'a>(renderer: &Renderer, campaigns: impl IntoIterator<Item = &'a Campaign>, base: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    let en = Locale::parse("en").unwrap_or_else(|_| unreachable!("en is a locale"));
    for campaign in campaigns {
        for step in &campaign.steps {
            for locale in renderer.locales() {
                let Ok(loc) = Locale::parse(locale) else { continue };
                let chain = loc.fallback_chain(&en);
                for &channel in &step.channels.value {
                    let template = step.template.value.as_str();
                    // Report each locale only where it has a file of its own for this message.
                    if !renderer.has_any(locale, template, channel) {
                        continue;
                    }
                    let at = format!(
                        "campaign {}, step {}, {}, templates/{locale}/{template}.{}",
                        campaign.name.value,
                        step.id.value,
                        channel.as_str(),
                        channel.as_str()
                    );
                    for (what, mut ctx) in variants(campaign, step.incentive.is_some(), base) {
                        ctx["locale"] = json!(locale);
                        let when = if what.is_empty() { String::new() } else { format!(" ({what})") };
                        let result = match channel {
                            Channel::Email => renderer.email(&chain, template, &ctx).map(|_| ()),
                            Channel::Sms => renderer
                                .sms_message(&chain, template, &ctx, OptOut::Localized)
                                .and_then(|m| m.within(campaign.max_sms_segments()))
                                .map(|_| ()),
                        };
                        match result {
                            Ok(()) => {}
                            Err(e @ RenderError::TooLong { .. }) => {
                                findings
                                    .push(Finding { severity: Severity::Warning, message: format!("{at}{when}: {e}") });
                                break;
                            }
                            Err(e) => {
                                findings
                                    .push(Finding { severity: Severity::Error, message: format!("{at}{when}: {e}") });
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    findings
}
