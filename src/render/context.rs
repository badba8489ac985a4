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
    /// Where the customer stopped (`cart`, `checkout`, `payment`), as the shop reported it.
    pub stage: Option<&'a str>,
    /// Why (`payment_failed`, `shipping_cost`, … or any code the shop sends).
    pub reason: Option<&'a str>,
    /// Detail of the reason (`insufficient_funds`, …).
    pub reason_detail: Option<&'a str>,
}

/// A human sentence with a next action for the reasons Cartback knows; never an error code.
pub fn reason_text(reason: Option<&str>, detail: Option<&str>) -> Option<&'static str> {
    Some(match (reason?, detail) {
        ("payment_failed", Some("insufficient_funds")) => {
            "Your payment didn't go through. You can complete your order with another card or payment method."
        }
        ("payment_failed", Some("card_declined")) => {
            "Your card was declined. You can pay with another card or payment method here."
        }
        ("payment_failed", Some("authentication_failed")) => {
            "Your bank's confirmation step didn't complete. You can try again or choose another payment method."
        }
        ("payment_failed", Some("timeout" | "network")) => {
            "The connection dropped while you were paying. Nothing was charged; you can finish your order in one click."
        }
        ("payment_failed", Some("method_unavailable")) => {
            "That payment method wasn't available. Other methods are ready for you at checkout."
        }
        ("payment_failed", _) => {
            "Your payment didn't go through. You can complete your order with another payment method."
        }
        ("shipping_cost", _) => "Shipping costs are shown before you pay, and larger orders may ship free.",
        ("price", _) => "Your items are still reserved at the price you saw.",
        _ => return None,
    })
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
            "reason": {
                "stage": self.stage,
                "code": self.reason,
                "detail": self.reason_detail,
                "text": reason_text(self.reason, self.reason_detail),
            },
        })
    }
}
