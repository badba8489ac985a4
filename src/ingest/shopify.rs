//! Shopify webhooks: `checkouts/create`, `checkouts/update`, `orders/create`.
//!
//! Verified with `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body with the shop's
//! secret, constant-time), deduplicated by `X-Shopify-Webhook-Id`. Carts are keyed by the
//! checkout `token` (newer payloads have no numeric `id`), else `cart_token`. Shopify sends no
//! "abandoned" event: idleness decides, as for generic carts.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::generic::PayloadError;
use super::signature::{SignatureError, verify_hmac};
use crate::domain::{
    CartId, CartItem, CartSnapshot, Currency, Customer, Email, EventKind, Locale, Money, OrderInfo, Phone, ShopEvent,
};

/// Topics Cartback acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// `checkouts/create`
    CheckoutCreate,
    /// `checkouts/update`
    CheckoutUpdate,
    /// `orders/create`
    OrderCreate,
}

impl Topic {
    /// Parse `X-Shopify-Topic`; `None` for topics Cartback does not use.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "checkouts/create" => Some(Self::CheckoutCreate),
            "checkouts/update" => Some(Self::CheckoutUpdate),
            "orders/create" => Some(Self::OrderCreate),
            _ => None,
        }
    }
}

/// Check `X-Shopify-Hmac-Sha256` in constant time.
pub fn verify(key: &[u8], header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::MissingHeader("x-shopify-hmac-sha256"))?;
    let mac = B64.decode(header.trim()).map_err(|_| SignatureError::Mismatch)?;
    if verify_hmac(key, &[body], &mac) { Ok(()) } else { Err(SignatureError::Mismatch) }
}

#[derive(Deserialize, Default)]
struct Address {
    country_code: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawCustomer {
    id: Option<serde_json::Value>,
    email: Option<String>,
    phone: Option<String>,
    first_name: Option<String>,
    orders_count: Option<u32>,
    total_spent: Option<String>,
    default_address: Option<Address>,
}

#[derive(Deserialize)]
struct LineItem {
    title: Option<String>,
    quantity: u32,
    price: String,
    sku: Option<String>,
}

#[derive(Deserialize)]
struct Checkout {
    token: Option<String>,
    cart_token: Option<String>,
    updated_at: Option<String>,
    created_at: Option<String>,
    completed_at: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    sms_marketing_phone: Option<String>,
    currency: Option<String>,
    presentment_currency: Option<String>,
    total_price: Option<String>,
    #[serde(default)]
    line_items: Vec<LineItem>,
    abandoned_checkout_url: Option<String>,
    customer_locale: Option<String>,
    #[serde(default)]
    buyer_accepts_marketing: bool,
    #[serde(default)]
    buyer_accepts_sms_marketing: bool,
    customer: Option<RawCustomer>,
    shipping_address: Option<Address>,
    billing_address: Option<Address>,
}

#[derive(Deserialize)]
struct Order {
    id: Option<serde_json::Value>,
    checkout_token: Option<String>,
    cart_token: Option<String>,
    created_at: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    currency: Option<String>,
    total_price: Option<String>,
    total_discounts: Option<String>,
    #[serde(default)]
    discount_codes: Vec<DiscountCode>,
    customer: Option<RawCustomer>,
}

#[derive(Deserialize)]
struct DiscountCode {
    code: String,
}

fn field(f: impl Into<String>, m: impl Into<String>) -> PayloadError {
    PayloadError::Field { field: f.into(), message: m.into() }
}

fn time(path: &str, s: Option<&str>) -> Result<DateTime<Utc>, PayloadError> {
    match s {
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| field(path, "must be an ISO 8601 timestamp")),
        None => Ok(Utc::now()),
    }
}

fn email(path: &str, s: Option<&str>) -> Result<Option<Email>, PayloadError> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        Some(e) => Email::parse(e).map(Some).map_err(|err| field(path, err.to_string())),
        None => Ok(None),
    }
}

/// Phone numbers Shopify relays are not always valid; an unusable one is dropped, not fatal.
fn phone(s: Option<&str>) -> Option<Phone> {
    s.and_then(|p| Phone::parse(p).ok())
}

fn customer_id(v: &Option<serde_json::Value>) -> Option<String> {
    match v {
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Parse a Shopify payload for `topic` into a domain event.
pub fn parse(topic: Topic, body: &[u8]) -> Result<ShopEvent, PayloadError> {
    match topic {
        Topic::CheckoutCreate | Topic::CheckoutUpdate => checkout(body),
        Topic::OrderCreate => order(body),
    }
}

fn checkout(body: &[u8]) -> Result<ShopEvent, PayloadError> {
    let c: Checkout = super::generic::deserialize(body)?;
    let key = c
        .token
        .clone()
        .or(c.cart_token.clone())
        .ok_or_else(|| field("token", "a checkout needs token or cart_token"))?;
    let id = CartId::parse(&key).map_err(|e| field("token", e.to_string()))?;
    let code = c.presentment_currency.or(c.currency).ok_or_else(|| field("currency", "is required"))?;
    let currency = Currency::parse(&code).map_err(|e| field("currency", e.to_string()))?;
    let total = Money::parse(c.total_price.as_deref().ok_or_else(|| field("total_price", "is required"))?, currency)
        .map_err(|e| field("total_price", e.to_string()))?;
    let mut items = Vec::new();
    for (i, li) in c.line_items.into_iter().enumerate() {
        let price =
            Money::parse(&li.price, currency).map_err(|e| field(format!("line_items[{i}].price"), e.to_string()))?;
        items.push(CartItem {
            sku: li.sku.filter(|s| !s.is_empty()),
            title: li.title.map(|t| t.replace(char::is_control, "")).unwrap_or_else(|| "Item".into()),
            quantity: li.quantity.max(1),
            price_minor: price.minor(),
            image_url: None,
            url: None,
        });
    }
    let occurred_at = time("updated_at", c.updated_at.as_deref().or(c.created_at.as_deref()))?;
    let raw = c.customer.unwrap_or_default();
    let country = [c.shipping_address.as_ref(), c.billing_address.as_ref(), raw.default_address.as_ref()]
        .into_iter()
        .flatten()
        .find_map(|a| a.country_code.as_deref().and_then(crate::domain::country_code))
        .map(str::to_owned);
    let locale = c.customer_locale.as_deref().and_then(|l| Locale::parse(l).ok());
    let customer = Customer {
        id: customer_id(&raw.id),
        email: email("email", c.email.as_deref().or(raw.email.as_deref()))?,
        phone: phone(c.sms_marketing_phone.as_deref().or(c.phone.as_deref()).or(raw.phone.as_deref())),
        // Shopify's payload is taken as Shopify sends it (a refusal would be retried for
        // two days); control characters are dropped rather than put into a subject line.
        first_name: raw.first_name.map(|n| n.replace(char::is_control, "")).filter(|n| !n.trim().is_empty()),
        timezone: None,
        locale: locale.clone(),
        country,
        orders_count: raw.orders_count.unwrap_or(0),
        total_spent_minor: raw.total_spent.as_deref().and_then(|t| Money::parse(t, currency).ok()).map(Money::minor),
        accepts_email: c.buyer_accepts_marketing,
        accepts_sms: c.buyer_accepts_sms_marketing,
    };
    let restore_url = c.abandoned_checkout_url.filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    let completed = c.completed_at.as_deref().is_some_and(|s| !s.is_empty());
    Ok(ShopEvent {
        // A completed checkout is a purchase, even before orders/create arrives.
        kind: if completed { EventKind::OrderPlaced } else { EventKind::CartUpdated },
        occurred_at,
        cart_id: Some(id.clone()),
        cart: Some(CartSnapshot { id, total, items, restore_url, locale }),
        customer: Some(customer),
        order: completed.then_some(OrderInfo {
            order_id: None,
            total: Some(total),
            discount_codes: Vec::new(),
            discount_total: None,
        }),
        stage: Some("checkout".into()),
        reason: None,
        reason_detail: None,
    })
}

fn order(body: &[u8]) -> Result<ShopEvent, PayloadError> {
    let o: Order = super::generic::deserialize(body)?;
    let key = o.checkout_token.clone().or(o.cart_token.clone());
    let cart_id = key.as_deref().map(CartId::parse).transpose().map_err(|e| field("checkout_token", e.to_string()))?;
    let raw = o.customer.unwrap_or_default();
    let customer = Customer {
        id: customer_id(&raw.id),
        email: email("email", o.email.as_deref().or(raw.email.as_deref()))?,
        phone: phone(o.phone.as_deref().or(raw.phone.as_deref())),
        ..Customer::default()
    };
    if cart_id.is_none() && customer.email.is_none() && customer.phone.is_none() {
        return Err(field(
            "checkout_token",
            "an order needs checkout_token, cart_token, email or phone to find its cart",
        ));
    }
    let total = match (o.total_price.as_deref(), o.currency.as_deref()) {
        (Some(t), Some(c)) => {
            let cur = Currency::parse(c).map_err(|e| field("currency", e.to_string()))?;
            Some(Money::parse(t, cur).map_err(|e| field("total_price", e.to_string()))?)
        }
        _ => None,
    };
    Ok(ShopEvent {
        kind: EventKind::OrderPlaced,
        occurred_at: time("created_at", o.created_at.as_deref())?,
        cart_id,
        cart: None,
        customer: Some(customer),
        order: Some(OrderInfo {
            order_id: customer_id(&o.id),
            total,
            discount_codes: o.discount_codes.into_iter().map(|d| d.code).collect(),
            discount_total: total
                .zip(o.total_discounts.as_deref())
                .and_then(|(t, d)| Money::parse(d, t.currency()).ok())
                .filter(|d| d.minor() > 0),
        }),
        stage: None,
        reason: None,
        reason_detail: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shopify_library_test_vector() {
        // Shopify's API library test: secret `test_secret_key`, body `{"foo": "bar"}`.
        let key = b"test_secret_key";
        assert_eq!(verify(key, Some("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="), br#"{"foo": "bar"}"#), Ok(()));
        assert_eq!(
            verify(key, Some("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="), br#"{"foo": "baz"}"#),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(key, Some("not base64!"), br#"{"foo": "bar"}"#), Err(SignatureError::Mismatch));
        assert_eq!(verify(key, None, b"{}"), Err(SignatureError::MissingHeader("x-shopify-hmac-sha256")));
    }

    pub(crate) const CHECKOUT: &str = include_str!("../../tests/fixtures/shopify_checkout.json");

    #[test]
    fn checkout_maps_to_a_cart_event() {
        let ev = parse(Topic::CheckoutCreate, CHECKOUT.as_bytes()).expect("checkout");
        assert_eq!(ev.kind, EventKind::CartUpdated);
        assert_eq!(ev.cart_id.as_ref().map(CartId::as_str), Some("cd2c0e4e8e8f4b8a9f6e1d4c3b2a1f00"));
        let cart = ev.cart.expect("cart");
        assert_eq!((cart.total.minor(), cart.total.currency().code()), (39800, "USD"));
        assert_eq!(cart.items.len(), 2);
        assert!(cart.restore_url.as_deref().is_some_and(|u| u.contains("/recover")));
        let c = ev.customer.expect("customer");
        assert_eq!(c.email.as_ref().map(Email::as_str), Some("bob.norman@example.com"));
        assert_eq!((c.accepts_email, c.accepts_sms), (true, false));
        assert_eq!(c.country.as_deref(), Some("CA"));
        assert_eq!(c.orders_count, 4);
    }

    #[test]
    fn completed_checkout_and_order_recover() {
        let done = CHECKOUT.replace("\"completed_at\": null", "\"completed_at\": \"2026-11-22T10:05:00-05:00\"");
        assert_eq!(parse(Topic::CheckoutUpdate, done.as_bytes()).map(|e| e.kind), Ok(EventKind::OrderPlaced));
        let order = br#"{"id": 820982911946154508, "checkout_token": "cd2c0e4e8e8f4b8a9f6e1d4c3b2a1f00", "email": "bob.norman@example.com",
                         "created_at": "2026-11-22T10:05:00-05:00", "currency": "USD", "total_price": "398.00"}"#;
        let ev = parse(Topic::OrderCreate, order).expect("order");
        assert_eq!(ev.kind, EventKind::OrderPlaced);
        assert_eq!(ev.order.and_then(|o| o.order_id), Some("820982911946154508".into()));
        assert!(matches!(parse(Topic::OrderCreate, b"{\"id\": 1}"), Err(PayloadError::Field { .. })));
    }
}
