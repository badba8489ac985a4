//! Template checks for `campaign check`: every step of every campaign is rendered in every
//! locale that has templates, with every branch a customer can hit (each incentive tier's
//! offer, with and without a first name, with and without an abandonment reason), so a
//! typo'd variable fails here (strict mode) and not in a customer's inbox.

use std::fmt;

use serde_json::{Value, json};

use super::{OptOut, RenderError, Renderer};
use crate::campaign::{Campaign, Channel};
use crate::domain::{CartItem, Currency, Locale};
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

/// Every page a customer link can show.
pub const PAGES: [&str; 12] = [
    "expired",
    "invalid",
    "trouble",
    "recovered",
    "no_restore",
    "unsubscribe_confirm",
    "unsubscribed",
    "thanks_shipping_cost",
    "thanks_price",
    "thanks_payment",
    "thanks_delivery_time",
    "thanks_just_browsing",
];

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

/// A realistic sample context: two items with and without images, EUR, Berlin.
fn sample() -> Value {
    let items = [
        CartItem {
            sku: Some("TSHIRT-M".into()),
            title: "Organic cotton T-shirt".into(),
            quantity: 2,
            price_minor: 3_495,
            image_url: Some("https://images.example/tshirt.jpg".into()),
            url: Some("https://shop.example/tshirt".into()),
        },
        CartItem { sku: None, title: "Canvas cap".into(), quantity: 1, price_minor: 6_000, image_url: None, url: None },
    ];
    super::context::MessageContext {
        shop_name: "Sample Shop",
        shop_url: Some("https://shop.example"),
        first_name: Some("Anna"),
        total_minor: 12_990,
        currency: "EUR",
        items: &items,
        restore_url: "https://recover.example/r/SAMPLE",
        unsubscribe_url: "https://recover.example/u/SAMPLE",
        feedback_url: "https://recover.example/f/SAMPLE",
        incentive: None,
        timezone: chrono_tz::Europe::Berlin,
        locale: "en",
        step: "sample",
        stage: None,
        reason: None,
        reason_detail: None,
        order_id: Some("1001"),
        order_expires_at_ms: Some(1_800_000_000_000),
    }
    .to_json()
}

/// Render every step of `campaigns` in every locale of `renderer` with a sample cart.
pub fn lint<'a>(renderer: &Renderer, campaigns: impl IntoIterator<Item = &'a Campaign>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let base = &sample();
    let en = Locale::en();
    // The pages behind customer links, in every locale that has its own.
    for locale in renderer.locales() {
        let Ok(loc) = Locale::parse(locale) else { continue };
        if !renderer.has_page(locale) {
            continue;
        }
        for page in PAGES {
            if let Err(e) = renderer.page(
                &loc.fallback_chain(&en),
                page,
                Some("Sample Shop"),
                Some("https://shop.example"),
                Some("https://recover.example/r/SAMPLE"),
            ) {
                findings.push(Finding {
                    severity: Severity::Error,
                    message: format!("templates/{locale}/page.html (page {page}): {e}"),
                });
            }
        }
    }
    for campaign in campaigns {
        for step in &campaign.steps {
            for locale in renderer.locales() {
                let Ok(loc) = Locale::parse(locale) else { continue };
                let chain = loc.fallback_chain(&en);
                for channel in step.all_channels() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(extra: &str) -> Campaign {
        let text = format!(
            "name: t\nabandon_after: 30m\nsteps:\n  - id: nudge\n    after: 1h\n    channels: [email, sms]\n    template: nudge\n    incentive: tiers\nincentives:\n  code_ttl: 7d\n  tiers:\n    - {{ name: big, when: {{ min_total: 100 }}, offer: {{ percent_off: 10 }} }}\n    - {{ name: small, offer: {{ free_shipping: true }} }}\n{extra}"
        );
        crate::campaign::parse_campaign(std::path::Path::new("t.yaml"), &text, &|_, _| true).expect("valid campaign")
    }

    fn templates(files: &[(&str, &str)]) -> (tempfile::TempDir, Renderer) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, body) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, body).expect("write");
        }
        let r = Renderer::load(dir.path()).expect("load");
        (dir, r)
    }

    const EN: [(&str, &str); 5] = [
        ("en/nudge.email.subject.hbs", "Hi"),
        ("en/nudge.email.html.hbs", "<p>{{restore_url}}</p>"),
        ("en/nudge.email.txt.hbs", "{{restore_url}}"),
        ("en/nudge.sms.txt.hbs", "{{shop.name}}: {{restore_url}}"),
        ("en/opt_out.sms.txt.hbs", "Reply STOP to opt out."),
    ];

    #[test]
    fn a_typo_in_one_branch_of_one_locale_is_an_error_naming_it() {
        let mut files = EN.to_vec();
        // Only the free-shipping tier reaches the typo, and only in German.
        files.push((
            "de/nudge.email.txt.hbs",
            "{{#if incentive.free_shipping}}{{incentive.cod}}{{else}}{{incentive.code}}{{/if}} {{restore_url}}",
        ));
        let (_dir, r) = templates(&files);
        let findings = lint(&r, [&campaign("")]);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        let f = &findings[0];
        assert_eq!(f.severity, Severity::Error);
        assert!(f.message.contains("templates/de/nudge.email") && f.message.contains("tier small"), "{}", f.message);
        assert!(f.message.contains("incentive.cod"), "{}", f.message);
    }

    #[test]
    fn an_sms_over_the_segment_limit_is_a_warning() {
        let mut files = EN.to_vec();
        files[3] = (
            "en/nudge.sms.txt.hbs",
            "{{shop.name}}: {{restore_url}} and a long tail of words to pass 160 characters, which is the size of one GSM-7 message, so this needs two segments.",
        );
        let (_dir, r) = templates(&files);
        assert!(lint(&r, [&campaign("sms: { max_segments: 2 }\n")]).is_empty());
        let findings = lint(&r, [&campaign("sms: { max_segments: 1 }\n")]);
        assert!(!findings.is_empty() && findings.iter().all(|f| f.severity == Severity::Warning), "{findings:#?}");
        assert!(findings[0].message.contains("2 segments") && findings[0].message.contains("max_segments of 1"));
    }

    #[test]
    fn the_shipped_templates_pass() {
        let r = Renderer::load(std::path::Path::new("templates")).expect("templates");
        let set = crate::campaign::CampaignSet::load_dir(std::path::Path::new("campaigns"), &|n, c| r.has("en", n, c))
            .expect("campaigns");
        assert_eq!(lint(&r, set.campaigns()), Vec::new());
    }
}
