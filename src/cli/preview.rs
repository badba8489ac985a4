//! `cartback campaign preview`: render one message exactly as it would be sent.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::Utc;
use serde_json::json;

use super::Failure;
use crate::campaign::{CampaignSet, Channel};
use crate::config::{Settings, Shop};
use crate::deliver::OutgoingEmail;
use crate::domain::{Email, Locale, ShopId};
use crate::incentive::{self, Facts};
use crate::links::{Keyring, Purpose};
use crate::render::Renderer;
use crate::render::context::{IncentiveView, MessageContext};

/// What to preview.
#[derive(Debug)]
pub struct PreviewArgs<'a> {
    /// Campaign name.
    pub campaign: &'a str,
    /// Step id.
    pub step: &'a str,
    /// Channel.
    pub channel: Channel,
    /// Locale to render for.
    pub locale: &'a str,
    /// A sample cart (generic event body, or `{cart, customer}`).
    pub cart: Option<&'a Path>,
    /// Shop whose name, sender and currency to use.
    pub shop: Option<&'a str>,
    /// Where the HTML goes.
    pub out_dir: &'a Path,
    /// Machine-readable output.
    pub json: bool,
}

fn user(msg: String) -> Failure {
    Failure::User(anyhow::anyhow!(msg))
}

const SAMPLE: &str = r#"{ "cart": { "id": "sample", "currency": "EUR", "total": "129.90",
  "items": [ { "sku": "TSHIRT-M", "title": "Organic cotton T-shirt", "quantity": 2, "price": "34.95",
               "image_url": "https://images.example/tshirt.jpg", "url": "https://shop.example/tshirt" },
             { "sku": "CAP-1", "title": "Canvas cap", "quantity": 1, "price": "60.00",
               "image_url": "https://images.example/cap.jpg", "url": "https://shop.example/cap" } ],
  "restore_url": "https://shop.example/cart/recover?key=sample" },
  "customer": { "email": "anna@example.de", "phone": "+4915123456789", "first_name": "Anna",
                "timezone": "Europe/Berlin", "orders_count": 1 } }"#;

/// The shop a preview speaks for: `--shop`, else the first configured, else a sample shop.
fn preview_shop(s: &Settings, id: Option<&str>) -> Result<Shop, Failure> {
    let shops = s.shops().map_err(|e| Failure::User(e.into()))?;
    if let Some(id) = id {
        return shops
            .into_values()
            .find(|x| x.id.as_str() == id)
            .ok_or_else(|| user(format!("--shop {id:?} is not configured")));
    }
    if let Some(first) = shops.into_values().next() {
        return Ok(first);
    }
    let from = s.email.from.parse().map_err(|e| user(format!("email.from {:?}: {e}", s.email.from)))?;
    Ok(Shop {
        id: ShopId::parse("demo").map_err(|e| user(e.to_string()))?,
        name: "Demo Shop".into(),
        webhook_key: Vec::new(),
        timezone: chrono_tz::Europe::Berlin,
        locale: Locale::en(),
        currency: crate::domain::Currency::parse("EUR").map_err(|e| user(e.to_string()))?,
        campaign: "default".into(),
        url: Some("https://shop.example".into()),
        from,
        reply_to: None,
        unsubscribe_mailto: None,
        events_url: None,
        restore_code_param: None,
        transactional_first_reminder: false,
        sms_opt_out_line: None,
    })
}

fn sample_links(s: &Settings) -> (String, String) {
    // Links in a preview are samples signed with a throwaway key: they do not open on a server.
    let keys = Keyring::from_keys(&[crate::store::public_id().into_bytes()]);
    let exp = Utc::now().timestamp() + 86_400;
    let sample_id = crate::store::public_id();
    let base = s.public_base();
    (
        format!("{base}/r/{}", keys.sign(Purpose::Restore, &sample_id, exp)),
        format!("{base}/u/{}", keys.sign(Purpose::Unsubscribe, &sample_id, exp)),
    )
}

/// A parsed sample cart and customer.
struct Sample {
    ev: crate::domain::ShopEvent,
    cart: crate::domain::CartSnapshot,
    customer: crate::domain::Customer,
}

impl Sample {
    fn parse(mut body: serde_json::Value) -> Result<Self, Failure> {
        if body.get("type").is_none() {
            body["type"] = json!("cart.updated");
            body["occurred_at"] = json!(Utc::now().to_rfc3339());
        }
        let ev =
            crate::ingest::generic::parse(body.to_string().as_bytes()).map_err(|e| user(format!("--cart: {e}")))?;
        let cart = ev.cart.clone().ok_or_else(|| user("--cart: a cart with currency and total is required".into()))?;
        let customer = ev.customer.clone().unwrap_or_default();
        Ok(Self { ev, cart, customer })
    }

    fn context(
        &self,
        shop: &Shop,
        locale: &Locale,
        restore_url: &str,
        unsubscribe_url: &str,
        incentive: Option<IncentiveView<'_>>,
    ) -> serde_json::Value {
        MessageContext {
            shop_name: &shop.name,
            shop_url: shop.url.as_deref(),
            first_name: self.customer.first_name.as_deref(),
            total_minor: self.cart.total.minor(),
            currency: self.cart.total.currency().code(),
            items: &self.cart.items,
            restore_url,
            unsubscribe_url,
            feedback_url: &unsubscribe_url.replace("/u/", "/f/"),
            incentive,
            timezone: self.customer.timezone.unwrap_or(shop.timezone),
            locale: locale.as_str(),
            step: "preview",
            stage: self.ev.stage.as_deref(),
            reason: self.ev.reason.as_deref(),
            reason_detail: self.ev.reason_detail.as_deref(),
            order_id: Some("1001"),
            order_expires_at_ms: Some(Utc::now().timestamp_millis() + 2 * 3_600_000),
        }
        .to_json()
    }
}

/// Render and print one message; returns the HTML path for email.
pub fn run(s: &Settings, a: &PreviewArgs<'_>) -> Result<Option<PathBuf>, Failure> {
    let renderer = Renderer::load(&s.templates_dir)
        .with_context(|| format!("loading templates from {}", s.templates_dir.display()))
        .map_err(Failure::User)?;
    let set = CampaignSet::load_dir(&s.campaigns_dir, &|name, ch| renderer.has("en", name, ch))
        .map_err(|e| Failure::User(e.into()))?;
    let campaign = set.get(a.campaign).ok_or_else(|| {
        user(format!("no campaign {:?} (found: {})", a.campaign, set.names().collect::<Vec<_>>().join(", ")))
    })?;
    let step = campaign.steps.iter().find(|st| st.id.value == a.step).ok_or_else(|| {
        let ids: Vec<&str> = campaign.steps.iter().map(|st| st.id.value.as_str()).collect();
        user(format!("campaign {} has no step {:?} (steps: {})", a.campaign, a.step, ids.join(", ")))
    })?;
    if !step.channels.value.contains(&a.channel) {
        return Err(user(format!("step {} does not send by {}", a.step, a.channel.as_str())));
    }
    let locale = Locale::parse(a.locale).map_err(|e| user(format!("--locale: {e}")))?;

    let text = match a.cart {
        Some(p) => std::fs::read_to_string(p).map_err(|e| user(format!("{}: {e}", p.display())))?,
        None => SAMPLE.to_owned(),
    };
    let body: serde_json::Value = serde_json::from_str(&text).map_err(|e| user(format!("--cart: {e}")))?;
    let sample = Sample::parse(body)?;
    let shop = preview_shop(s, a.shop)?;
    let (restore_url, unsubscribe_url) = sample_links(s);

    let facts = Facts {
        total_spent: sample
            .customer
            .total_spent_minor
            .map(|m| crate::domain::Money::from_minor(m, sample.cart.total.currency())),
        ..Facts::new(sample.cart.total, sample.customer.orders_count, shop.currency)
    };
    let (offer, why) = match (&step.incentive, &campaign.incentives) {
        (Some(_), Some(inc)) => (incentive::choose(inc, &facts), incentive::explain(inc, &facts, 0)),
        _ => (None, Vec::new()),
    };
    let expires =
        Utc::now().timestamp_millis() + campaign.incentives.as_ref().map_or(0, |i| i.code_ttl.get().num_milliseconds());
    let view = offer.as_ref().map(|o| IncentiveView { offer: o, code: "PREVIEW-CODE", expires_at_ms: expires });
    let mut ctx = sample.context(&shop, &locale, &restore_url, &unsubscribe_url, view);
    ctx["step"] = json!(step.id.value);
    let chain = locale.fallback_chain(&shop.locale);
    let template = step.template.value.as_str();
    let tier = offer.as_ref().map(|o| format!("tier {}: {}", o.tier, o.summary));
    match a.channel {
        Channel::Email => {
            let mail = renderer.email(&chain, template, &ctx).map_err(|e| user(e.to_string()))?;
            let to = sample
                .customer
                .email
                .clone()
                .or_else(|| Email::parse("customer@example.com").ok())
                .ok_or_else(|| user("no recipient".into()))?;
            let template_locale = mail.locale.clone();
            let html = mail.html.clone();
            let out = OutgoingEmail::compose(crate::store::public_id(), &shop, to, mail, unsubscribe_url);
            let raw = out.to_message().map_err(|e| user(e.to_string()))?.formatted();
            let raw = String::from_utf8_lossy(&raw);
            let headers = raw.split("\r\n\r\n").next().unwrap_or_default().replace("\r\n", "\n");
            std::fs::create_dir_all(a.out_dir).map_err(|e| user(format!("{}: {e}", a.out_dir.display())))?;
            let path = a.out_dir.join(format!("{}-{}-{}.html", a.campaign, a.step, locale));
            std::fs::write(&path, &html).map_err(|e| user(format!("{}: {e}", path.display())))?;
            if a.json {
                let v = json!({ "headers": headers, "subject": out.subject, "text": out.text, "html_path": path,
                                "template_locale": template_locale, "incentive": tier, "incentive_why": why });
                println!("{}", serde_json::to_string_pretty(&v).map_err(|e| Failure::Internal(e.into()))?);
            } else {
                println!(
                    "{headers}\n\n--- text/plain (from templates/{template_locale}/) ---\n{}\n--- text/html ---\nwritten to {}",
                    out.text.trim_end(),
                    path.display()
                );
                if let Some(t) = &tier {
                    println!("incentive: {t}");
                    for w in &why {
                        println!("  {w}");
                    }
                }
            }
            Ok(Some(path))
        }
        Channel::Sms => {
            let sms = renderer.sms_message(&chain, template, &ctx, shop.opt_out()).map_err(|e| user(e.to_string()))?;
            let over = sms.clone().within(campaign.max_sms_segments()).err().map(|e| e.to_string());
            let seg = sms.cost;
            if a.json {
                let v = json!({ "text": sms.text, "encoding": seg.encoding, "units": seg.units, "segments": seg.segments,
                                "incentive": tier, "incentive_why": why, "send_error": over });
                println!("{}", serde_json::to_string_pretty(&v).map_err(|e| Failure::Internal(e.into()))?);
            } else {
                let unit = if seg.encoding == crate::render::sms::Encoding::Gsm7 { "septets" } else { "UTF-16 units" };
                println!(
                    "{}\n\n--- {} characters, {:?}, {} {unit}, {} segment(s)",
                    sms.text,
                    sms.text.chars().count(),
                    seg.encoding,
                    seg.units,
                    seg.segments
                );
                if let Some(t) = &tier {
                    println!("incentive: {t}");
                    for w in &why {
                        println!("  {w}");
                    }
                }
                if let Some(e) = over {
                    println!("warning: would not be sent: {e}");
                }
            }
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;

    #[test]
    fn previews_render_the_shipped_templates() {
        let s = Settings::default();
        let dir = tempfile::tempdir().expect("tempdir");
        let a = PreviewArgs {
            campaign: "default",
            step: "incentive",
            channel: Channel::Email,
            locale: "de-AT",
            cart: None,
            shop: None,
            out_dir: dir.path(),
            json: true,
        };
        let path = run(&s, &a).expect("preview").expect("html path");
        let html = std::fs::read_to_string(path).expect("html written");
        assert!(html.contains("PREVIEW-CODE") && html.contains("Organic cotton T-shirt"));
        let sms = PreviewArgs { channel: Channel::Sms, ..a };
        assert!(run(&s, &sms).expect("sms preview").is_none());
        let bad = PreviewArgs { step: "nope", ..sms };
        assert!(matches!(run(&s, &bad), Err(Failure::User(_))));
    }

    #[test]
    fn sample_cart_is_consistent() {
        let v: serde_json::Value = serde_json::from_str(SAMPLE).expect("json");
        let eur = crate::domain::Currency::parse("EUR").expect("EUR");
        let total = Money::parse(v["cart"]["total"].as_str().expect("total"), eur).expect("money");
        let lines: i64 = v["cart"]["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                Money::parse(i["price"].as_str().expect("price"), eur).expect("price").minor()
                    * i["quantity"].as_i64().expect("qty")
            })
            .sum();
        assert_eq!(total.minor(), lines);
    }
}
