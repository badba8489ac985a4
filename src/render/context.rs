//! The variables every template sees (documented in the README, "Templates").

use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::domain::CartItem;

/// An issued incentive, as templates show it.
#[derive(Debug, Clone)]
pub struct IncentiveView<'a> {
    /// Tier name.
    pub tier: &'a str,
    /// The code.
    pub code: &'a str,
    /// `10% off`, `5.00 EUR off`, `free shipping`.
    pub summary: &'a str,
    /// Expiry, Unix ms.
    pub expires_at_ms: i64,
    /// Free shipping.
    pub free_shipping: bool,
}

/// Everything one message is rendered from.
#[derive(Debug, Clone)]
pub struct MessageContext<'a> {
    /// Shop display name.
    pub shop_name: &'a str,
    /// Shop home page.
    pub shop_url: Option<&'a str>,
    /// Greeting name.
    pub first_name: Option<&'a str>,
    /// Cart total, minor units.
    pub total_minor: i64,
    /// ISO 4217.
    pub currency: &'a str,
    /// Lines.
    pub items: &'a [CartItem],
    /// Signed restore link.
    pub restore_url: &'a str,
    /// Signed unsubscribe link.
    pub unsubscribe_url: &'a str,
    /// The incentive, if the step issues one.
    pub incentive: Option<IncentiveView<'a>>,
    /// Customer's zone (for `date`).
    pub timezone: Tz,
    /// Requested locale.
    pub locale: &'a str,
    /// Step id.
    pub step: &'a str,
}

impl MessageContext<'_> {
    /// The JSON the templates are rendered with.
    pub fn to_json(&self) -> Value {
        json!({
            "shop": { "name": self.shop_name, "url": self.shop_url },
            "customer": { "first_name": self.first_name },
            "cart": {
                "total_minor": self.total_minor,
                "currency": self.currency,
                "item_count": self.items.iter().map(|i| i.quantity).sum::<u32>(),
                "items": self.items.iter().map(|i| json!({
                    "title": i.title, "quantity": i.quantity, "price_minor": i.price_minor,
                    "line_total_minor": i.price_minor.saturating_mul(i64::from(i.quantity)),
                    "image_url": i.image_url, "url": i.url, "sku": i.sku,
                })).collect::<Vec<_>>(),
            },
            "restore_url": self.restore_url,
            "unsubscribe_url": self.unsubscribe_url,
            "incentive": self.incentive.as_ref().map(|i| json!({
                "tier": i.tier, "code": i.code, "summary": i.summary, "expires_at": i.expires_at_ms,
                "free_shipping": i.free_shipping,
            })),
            "timezone": self.timezone.name(),
            "locale": self.locale,
            "step": self.step,
        })
    }
}
