use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{CartId, Email, Locale, Money, Phone};

/// What happened to a cart or order, as reported by the shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The cart changed (items, customer details): the customer is active.
    CartUpdated,
    /// The shop itself declares the cart abandoned.
    CartAbandoned,
    /// The cart was emptied: nothing to recover.
    CartEmptied,
    /// An order was placed: the cart is recovered.
    OrderPlaced,
    /// An order was placed but not paid.
    OrderUnpaid,
    /// An order was paid.
    OrderPaid,
}

impl EventKind {
    /// The wire name (`cart.updated`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CartUpdated => "cart.updated",
            Self::CartAbandoned => "cart.abandoned",
            Self::CartEmptied => "cart.emptied",
            Self::OrderPlaced => "order.placed",
            Self::OrderUnpaid => "order.unpaid",
            Self::OrderPaid => "order.paid",
        }
    }

    /// Parse the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "cart.updated" => Self::CartUpdated,
            "cart.abandoned" => Self::CartAbandoned,
            "cart.emptied" => Self::CartEmptied,
            "order.placed" => Self::OrderPlaced,
            "order.unpaid" => Self::OrderUnpaid,
            "order.paid" => Self::OrderPaid,
            _ => return None,
        })
    }

    /// All kinds, for error messages.
    pub const ALL: [&'static str; 6] =
        ["cart.updated", "cart.abandoned", "cart.emptied", "order.placed", "order.unpaid", "order.paid"];
}

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CartItem {
    /// Stock keeping unit.
    pub sku: Option<String>,
    /// Product title as the customer saw it.
    pub title: String,
    /// Units, at least 1.
    pub quantity: u32,
    /// Unit price, minor units.
    pub price_minor: i64,
    /// Product image.
    pub image_url: Option<String>,
    /// Product page.
    pub url: Option<String>,
}

/// The cart as the shop last described it.
#[derive(Debug, Clone, PartialEq)]
pub struct CartSnapshot {
    /// The shop's cart id.
    pub id: CartId,
    /// Cart total.
    pub total: Money,
    /// Lines.
    pub items: Vec<CartItem>,
    /// Where the customer gets the cart back.
    pub restore_url: Option<String>,
    /// The storefront locale of the cart.
    pub locale: Option<Locale>,
}

/// What the shop tells us about the person behind a cart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Customer {
    /// The shop's customer id.
    pub id: Option<String>,
    /// Email address.
    pub email: Option<Email>,
    /// Phone number.
    pub phone: Option<Phone>,
    /// First name for the greeting.
    pub first_name: Option<String>,
    /// IANA time zone.
    pub timezone: Option<Tz>,
    /// Preferred language.
    pub locale: Option<Locale>,
    /// ISO 3166 alpha-2 country.
    pub country: Option<String>,
    /// Orders placed before this cart.
    pub orders_count: u32,
    /// Lifetime spend, minor units of the cart currency.
    pub total_spent_minor: Option<i64>,
    /// Marketing email consent.
    pub accepts_email: bool,
    /// Marketing SMS consent.
    pub accepts_sms: bool,
}

/// An order event's facts.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderInfo {
    /// The shop's order id.
    pub order_id: Option<String>,
    /// Order total.
    pub total: Option<Money>,
    /// Discount codes applied to the order (an issued incentive code is attributed).
    pub discount_codes: Vec<String>,
    /// The discount the order got, as the shop computed it.
    pub discount_total: Option<Money>,
}

/// A verified, parsed event from a shop.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopEvent {
    /// What happened.
    pub kind: EventKind,
    /// When it happened at the shop; decides ordering.
    pub occurred_at: DateTime<Utc>,
    /// The cart concerned (required for cart events, optional for orders).
    pub cart_id: Option<CartId>,
    /// The full cart, when the event carries one.
    pub cart: Option<CartSnapshot>,
    /// The customer, when the event carries one.
    pub customer: Option<Customer>,
    /// For order events.
    pub order: Option<OrderInfo>,
    /// Checkout stage where the customer stopped (kept as sent).
    pub stage: Option<String>,
    /// Why the customer stopped (kept as sent, unknown values included).
    pub reason: Option<String>,
    /// Detail for the reason.
    pub reason_detail: Option<String>,
}
