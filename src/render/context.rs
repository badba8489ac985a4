//! The variables every template sees (documented in the README, "Templates").

use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::domain::CartItem;
use crate::incentive::ChosenOffer;

/// An issued incentive, as templates show it.
#[derive(Debug, Clone)]
pub struct IncentiveView<'a> {
    /// The offer.
    pub offer: &'a ChosenOffer,
    /// The code.
    pub code: &'a str,
    /// Expiry, Unix ms.
    pub expires_at_ms: i64,
}

impl IncentiveView<'_> {
    pub(crate) fn to_json(&self) -> Value {
        let mut v = offer_json(self.offer);
        v["code"] = json!(self.code);
        v["expires_at"] = json!(self.expires_at_ms);
        v["next"] = self.offer.next.as_deref().map_or(Value::Null, offer_json);
        v
    }
}

/// An offer's fields as templates see them.
fn offer_json(o: &ChosenOffer) -> Value {
    // `12.5`, `15`: templates put the sign where their language puts it (`15 %`, `15%`).
    let percent = o
        .percent_off_permille
        .map(|p| if p % 10 == 0 { Value::from(p / 10) } else { Value::String(format!("{}.{}", p / 10, p % 10)) });
    json!({
        "tier": o.tier, "summary": o.summary,
        "percent_off": percent, "amount_off_minor": o.amount_off_minor,
        "max_discount_minor": o.max_discount_minor, "free_shipping": o.free_shipping,
        "min_order_minor": o.min_order_minor, "gap_minor": o.gap_minor,
        // Filled by the renderer from `templates/<locale>/offer.txt.hbs`; English until then.
        "text": o.summary,
    })
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
    /// Signed "what stopped you?" link; templates append `?reason=<answer>`.
    pub feedback_url: &'a str,
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
    /// For unpaid orders: the shop's order id.
    pub order_id: Option<&'a str>,
    /// For unpaid orders: when the order is cancelled unless paid (Unix ms).
    pub order_expires_at_ms: Option<i64>,
}

/// How many cart lines a message lists; `cart.more_items` counts the others.
pub const SHOWN_ITEMS: usize = 20;

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
                // A cart of thousands of lines would make a message of megabytes: the
                // first lines are listed and the rest counted ("and 12 more items").
                "items": self.items.iter().take(SHOWN_ITEMS).map(|i| json!({
                    "title": i.title, "quantity": i.quantity, "price_minor": i.price_minor,
                    "line_total_minor": i.price_minor.saturating_mul(i64::from(i.quantity)),
                    "image_url": i.image_url, "url": i.url, "sku": i.sku,
                })).collect::<Vec<_>>(),
                "more_items": self.items.len().saturating_sub(SHOWN_ITEMS),
            },
            "restore_url": self.restore_url,
            "unsubscribe_url": self.unsubscribe_url,
            "feedback_url": self.feedback_url,
            "incentive": self.incentive.as_ref().map(IncentiveView::to_json),
            "timezone": self.timezone.name(),
            "order": { "id": self.order_id, "expires_at": self.order_expires_at_ms },
            "locale": self.locale,
            "lang": self.locale.split('-').next().unwrap_or("en"),
            "step": self.step,
            "reason": {
                "stage": self.stage,
                "code": self.reason,
                "detail": self.reason_detail,
                // Filled by the renderer from `templates/<locale>/reason.txt.hbs`.
                "text": null,
            },
        })
    }
}
