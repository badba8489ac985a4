//! The generic event body (SPEC §3) → [`ShopEvent`].
//!
//! Unknown fields are ignored (shops add their own); every known field is parsed into
//! its domain type here, and a refusal names the field by its JSON path.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::domain::{
    CartId, CartItem, CartSnapshot, Currency, Customer, Email, EventKind, Locale, Money, OrderInfo, Phone, ShopEvent,
};

/// Why a body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// Not JSON at all (→ 400).
    #[error("body is not valid JSON: {message} (line {line}, column {column})")]
    Syntax {
        /// Parser message.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// JSON, but a field is missing or wrong (→ 422).
    #[error("{field}: {message}")]
    Field {
        /// JSON path, e.g. `cart.items[0].price`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

fn field(field: impl Into<String>, message: impl Into<String>) -> PayloadError {
    PayloadError::Field { field: field.into(), message: message.into() }
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    occurred_at: String,
    stage: Option<String>,
    reason: Option<String>,
    reason_detail: Option<String>,
    cart: Option<RawCart>,
    cart_id: Option<String>,
    customer: Option<RawCustomer>,
    order_id: Option<String>,
    total: Option<String>,
    currency: Option<String>,
    #[serde(default)]
    discount_codes: Vec<String>,
    discount_total: Option<String>,
}

#[derive(Deserialize)]
struct RawCart {
    id: String,
    currency: Option<String>,
    total: Option<String>,
    #[serde(default)]
    items: Vec<RawItem>,
    restore_url: Option<String>,
    locale: Option<String>,
}

#[derive(Deserialize)]
struct RawItem {
    sku: Option<String>,
    title: String,
    quantity: u32,
    price: String,
    image_url: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct RawCustomer {
    id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    first_name: Option<String>,
    timezone: Option<String>,
    locale: Option<String>,
    country: Option<String>,
    #[serde(default)]
    orders_count: u32,
    total_spent: Option<String>,
    #[serde(default)]
    accepts_email_marketing: bool,
    #[serde(default)]
    accepts_sms_marketing: bool,
}

/// An absolute http(s) URL with a host: customers are sent there, so `http://` alone, a
/// relative path or another scheme is refused here rather than found broken in an email.
fn url(path: &str, s: Option<String>) -> Result<Option<String>, PayloadError> {
    let Some(u) = s else { return Ok(None) };
    let ok = u.len() <= 2048
        && (u.starts_with("https://") || u.starts_with("http://"))
        && !u.contains(|c: char| c.is_whitespace() || c.is_control())
        && url::Url::parse(&u).is_ok_and(|p| p.host_str().is_some_and(|h| !h.is_empty()));
    if ok { Ok(Some(u)) } else { Err(field(path, "must be an absolute http(s) URL with a host")) }
}

/// Free text shown to the customer or the operator: control characters (NUL, ESC, BEL …)
/// would end up in subjects and terminals, so they are refused, not stripped.
fn text(path: &str, s: Option<String>, max: usize) -> Result<Option<String>, PayloadError> {
    match s {
        Some(t) if t.chars().count() > max => Err(field(path, format!("at most {max} characters"))),
        Some(t) if t.contains(char::is_control) => Err(field(path, "must not contain control characters")),
        other => Ok(other.filter(|t| !t.trim().is_empty())),
    }
}

/// How far ahead of this server's clock an event may be dated (shops' clocks drift).
pub const MAX_CLOCK_AHEAD: chrono::Duration = chrono::Duration::minutes(15);
/// How old an event may be: older news would start a sequence whose every step is overdue.
pub const MAX_EVENT_AGE: chrono::Duration = chrono::Duration::days(365);

/// Refuse an event time far from now: `9999-12-31` would make every later event "older than
/// the cart's last activity" and silence the cart for good; `0000-01-01` would make every
/// step due at once. `field` names the time in the shop's payload.
pub fn check_time(at: DateTime<Utc>, now: DateTime<Utc>, field_name: &str) -> Result<(), PayloadError> {
    if at > now + MAX_CLOCK_AHEAD {
        return Err(field(field_name, "is in the future (more than 15 minutes ahead of this server's clock)"));
    }
    if at < now - MAX_EVENT_AGE {
        return Err(field(field_name, "is more than a year ago"));
    }
    Ok(())
}

/// Deserialize JSON, naming the path of a wrong field (`cart.items[0].quantity`).
pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, PayloadError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            PayloadError::Syntax { message: inner.to_string(), line: inner.line(), column: inner.column() }
        } else {
            // serde_json's message carries its own position suffix; the path says more.
            let msg = inner.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            field(if path == "." { "(body)".into() } else { path }, msg)
        }
    })?;
    // One JSON value and nothing after it: trailing bytes would otherwise be stored unread.
    de.end().map_err(|e| PayloadError::Syntax { message: e.to_string(), line: e.line(), column: e.column() })?;
    Ok(value)
}

/// Parse and check a generic event body.
pub fn parse(body: &[u8]) -> Result<ShopEvent, PayloadError> {
    let raw: RawEvent = deserialize(body)?;
    let kind = EventKind::parse(&raw.kind)
        .ok_or_else(|| field("type", format!("unknown event type; expected one of {}", EventKind::ALL.join(", "))))?;
    let occurred_at: DateTime<Utc> = DateTime::parse_from_rfc3339(&raw.occurred_at)
        .map_err(|_| field("occurred_at", "must be an RFC 3339 timestamp like 2026-11-22T10:00:00Z"))?
        .with_timezone(&Utc);
    let cart_currency = match raw.cart.as_ref().and_then(|c| c.currency.as_deref()) {
        Some(c) => Some(Currency::parse(c).map_err(|e| field("cart.currency", e.to_string()))?),
        None => None,
    };
    let cart = match raw.cart {
        Some(c) => Some(cart(c, kind, cart_currency)?),
        None => None,
    };
    let customer = match raw.customer {
        Some(c) => Some(customer(c, cart_currency)?),
        None => None,
    };
    let cart_id = match (&cart, raw.cart_id) {
        (Some((id, _)), _) => Some(id.clone()),
        (None, Some(id)) => Some(CartId::parse(&id).map_err(|e| field("cart_id", e.to_string()))?),
        (None, None) => None,
    };
    let order = match kind {
        EventKind::OrderPlaced | EventKind::OrderUnpaid | EventKind::OrderPaid => {
            let has_contact = customer.as_ref().is_some_and(|c| c.email.is_some() || c.phone.is_some());
            if cart_id.is_none() && !has_contact {
                return Err(field("cart_id", "order events need cart_id or the customer's email or phone"));
            }
            if kind == EventKind::OrderUnpaid && cart_id.is_none() && raw.order_id.is_none() {
                return Err(field("order_id", "order.unpaid needs order_id (or cart_id) so order.paid can stop it"));
            }
            Some(order(raw.order_id, raw.total, raw.currency, raw.discount_total, raw.discount_codes)?)
        }
        _ if cart_id.is_none() => return Err(field("cart", "is required for cart events")),
        _ => None,
    };
    Ok(ShopEvent {
        kind,
        occurred_at,
        cart_id,
        cart: cart.and_then(|(_, snap)| snap),
        customer,
        order,
        stage: text("stage", raw.stage, 64)?,
        reason: text("reason", raw.reason, 64)?,
        reason_detail: text("reason_detail", raw.reason_detail, 255)?,
    })
}

/// The cart's id, and its snapshot when it has one (a currency and a total; required for
/// `cart.updated` and `cart.abandoned`).
fn cart(
    c: RawCart,
    kind: EventKind,
    currency: Option<Currency>,
) -> Result<(CartId, Option<CartSnapshot>), PayloadError> {
    let id = CartId::parse(&c.id).map_err(|e| field("cart.id", e.to_string()))?;
    let needs_money = matches!(kind, EventKind::CartUpdated | EventKind::CartAbandoned);
    let (currency, total) = match (currency, c.total) {
        (Some(currency), Some(total)) => (currency, total),
        (None, _) if needs_money => return Err(field("cart.currency", "is required for this event type")),
        (_, None) if needs_money => return Err(field("cart.total", "is required for this event type")),
        _ => return Ok((id, None)),
    };
    let total = Money::parse(&total, currency).map_err(|e| field("cart.total", e.to_string()))?;
    let items = c.items.into_iter().enumerate().map(|(i, it)| item(i, it, currency)).collect::<Result<_, _>>()?;
    let locale = match c.locale {
        Some(l) => Some(Locale::parse(&l).map_err(|e| field("cart.locale", e.to_string()))?),
        None => None,
    };
    let snapshot =
        CartSnapshot { id: id.clone(), total, items, restore_url: url("cart.restore_url", c.restore_url)?, locale };
    Ok((id, Some(snapshot)))
}

/// One line of the cart, `cart.items[i]`.
fn item(i: usize, it: RawItem, currency: Currency) -> Result<CartItem, PayloadError> {
    let p = |f: &str| format!("cart.items[{i}].{f}");
    if it.quantity == 0 {
        return Err(field(p("quantity"), "must be at least 1"));
    }
    let price = Money::parse(&it.price, currency).map_err(|e| field(p("price"), e.to_string()))?;
    if price.minor().checked_mul(i64::from(it.quantity)).is_none_or(|t| t > Money::MAX_MINOR) {
        return Err(field(p("quantity"), "quantity × price is out of range"));
    }
    Ok(CartItem {
        sku: text(&p("sku"), it.sku, 255)?,
        title: text(&p("title"), Some(it.title), 500)?.ok_or_else(|| field(p("title"), "must not be empty"))?,
        quantity: it.quantity,
        price_minor: price.minor(),
        image_url: url(&p("image_url"), it.image_url)?,
        url: url(&p("url"), it.url)?,
    })
}

/// The customer; `total_spent` is read in the cart's currency.
fn customer(c: RawCustomer, cart_currency: Option<Currency>) -> Result<Customer, PayloadError> {
    let email = match c.email {
        Some(e) if !e.trim().is_empty() => {
            Some(Email::parse(&e).map_err(|err| field("customer.email", err.to_string()))?)
        }
        _ => None,
    };
    let phone = match c.phone {
        Some(p) if !p.trim().is_empty() => {
            Some(Phone::parse(&p).map_err(|err| field("customer.phone", err.to_string()))?)
        }
        _ => None,
    };
    let timezone =
        match c.timezone {
            Some(tz) => Some(tz.parse().map_err(|_| {
                field("customer.timezone", format!("{tz:?} is not an IANA time zone like Europe/Berlin"))
            })?),
            None => None,
        };
    let locale = match c.locale {
        Some(l) => Some(Locale::parse(&l).map_err(|e| field("customer.locale", e.to_string()))?),
        None => None,
    };
    let total_spent_minor = match (c.total_spent, cart_currency) {
        (Some(t), Some(cur)) => {
            Some(Money::parse(&t, cur).map_err(|e| field("customer.total_spent", e.to_string()))?.minor())
        }
        _ => None,
    };
    Ok(Customer {
        id: text("customer.id", c.id, 255)?,
        email,
        phone,
        first_name: text("customer.first_name", c.first_name, 100)?,
        timezone,
        locale,
        country: country(c.country)?,
        orders_count: c.orders_count,
        total_spent_minor,
        accepts_email: c.accepts_email_marketing,
        accepts_sms: c.accepts_sms_marketing,
    })
}

/// `customer.country`, upper case.
fn country(cc: Option<String>) -> Result<Option<String>, PayloadError> {
    match cc {
        Some(cc) => match crate::domain::country_code(&cc) {
            Some(cc) => Ok(Some(cc.to_owned())),
            None => Err(field("customer.country", "must be an assigned ISO 3166 alpha-2 code like DE")),
        },
        None => Ok(None),
    }
}

/// The order of an order event.
fn order(
    order_id: Option<String>,
    total: Option<String>,
    currency: Option<String>,
    discount_total: Option<String>,
    discount_codes: Vec<String>,
) -> Result<OrderInfo, PayloadError> {
    let total = match (total, currency) {
        (Some(t), Some(c)) => {
            let cur = Currency::parse(&c).map_err(|e| field("currency", e.to_string()))?;
            Some(Money::parse(&t, cur).map_err(|e| field("total", e.to_string()))?)
        }
        (Some(_), None) => return Err(field("currency", "is required when total is given")),
        _ => None,
    };
    let discount_total = match (discount_total, total) {
        (Some(d), Some(t)) => Some(Money::parse(&d, t.currency()).map_err(|e| field("discount_total", e.to_string()))?),
        (Some(_), None) => return Err(field("discount_total", "needs total and currency")),
        (None, _) => None,
    };
    if discount_codes.len() > 20 || discount_codes.iter().any(|c| c.is_empty() || c.len() > 64) {
        return Err(field("discount_codes", "at most 20 codes of 1 to 64 characters"));
    }
    Ok(OrderInfo { order_id: text("order_id", order_id, 255)?, total, discount_codes, discount_total })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = r#"{ "type": "cart.updated", "occurred_at": "2026-11-22T10:00:00Z",
      "stage": "payment", "reason": "payment_failed", "reason_detail": "insufficient_funds",
      "cart": { "id": "c_123", "currency": "EUR", "total": "129.90",
                "items": [{"sku": "TSHIRT-M", "title": "T-Shirt", "quantity": 2, "price": "64.95",
                           "image_url": "https://img.example/t.png", "url": "https://shop.example/t"}],
                "restore_url": "https://shop.example/cart/recover?key=abc", "locale": "de-DE" },
      "customer": { "id": "cu_1", "email": "anna@example.de", "phone": "+4915123456789",
                    "timezone": "Europe/Berlin", "locale": "de", "country": "DE",
                    "orders_count": 3, "total_spent": "420.00",
                    "accepts_email_marketing": true, "accepts_sms_marketing": false } }"#;

    #[test]
    fn spec_example_parses_into_domain_types() {
        let ev = parse(SPEC_EXAMPLE.as_bytes()).expect("spec example");
        assert_eq!(ev.kind, EventKind::CartUpdated);
        let cart = ev.cart.expect("cart");
        assert_eq!(cart.total.minor(), 12990);
        assert_eq!(cart.items[0].price_minor, 6495);
        let c = ev.customer.expect("customer");
        assert_eq!(c.timezone, Some(chrono_tz::Europe::Berlin));
        assert_eq!(c.total_spent_minor, Some(42000));
        assert_eq!(ev.reason.as_deref(), Some("payment_failed"));
    }

    fn field_of(body: &str) -> String {
        match parse(body.as_bytes()) {
            Err(PayloadError::Field { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(field_of(&SPEC_EXAMPLE.replace("\"129.90\"", "\"12,90\"")), "cart.total");
        assert_eq!(field_of(&SPEC_EXAMPLE.replace("\"quantity\": 2", "\"quantity\": \"2\"")), "cart.items[0].quantity");
        assert_eq!(field_of(&SPEC_EXAMPLE.replace("anna@example.de", "anna")), "customer.email");
        assert_eq!(field_of(&SPEC_EXAMPLE.replace("Europe/Berlin", "Mars/Olympus")), "customer.timezone");
        assert_eq!(field_of(&SPEC_EXAMPLE.replace("cart.updated", "cart.exploded")), "type");
        assert_eq!(field_of(&SPEC_EXAMPLE.replace("2026-11-22T10:00:00Z", "yesterday")), "occurred_at");
        assert_eq!(field_of(r#"{"type":"cart.updated","occurred_at":"2026-11-22T10:00:00Z"}"#), "cart");
        assert_eq!(field_of(r#"{"type":"order.placed","occurred_at":"2026-11-22T10:00:00Z"}"#), "cart_id");
        assert_eq!(field_of(r#"{"occurred_at":"2026-11-22T10:00:00Z"}"#), "(body)");
    }

    #[test]
    fn hostile_values_are_refused_by_field() {
        let refused = [
            ("anna@example.de", "anna@[127.0.0.1]", "customer.email"),
            ("https://shop.example/cart/recover?key=abc", "http://", "cart.restore_url"),
            ("https://shop.example/cart/recover?key=abc", "javascript:alert(1)", "cart.restore_url"),
            ("\"cu_1\"", "\"cu_1\", \"first_name\": \"An\\u0000na\\u001b[31m\\u0007\"", "customer.first_name"),
            ("\"T-Shirt\"", "\"T-\\u001bShirt\"", "cart.items[0].title"),
            ("\"64.95\"", "\"9000000000000\"", "cart.items[0].quantity"),
            ("\"c_123\"", "\"   \"", "cart.id"),
            ("\"DE\"", "\"ZZ\"", "customer.country"),
        ];
        for (from, to, expected) in refused {
            assert!(SPEC_EXAMPLE.contains(from), "{from}");
            if to.contains("9000000000000") {
                // The price alone is in range; two of it are not.
                assert!(Money::parse("9000000000000", Currency::parse("EUR").expect("EUR")).is_ok());
            }
            assert_eq!(field_of(&SPEC_EXAMPLE.replacen(from, to, 1)), expected, "{to}");
        }
        // What stays accepted: a plain http URL with a host, Kosovo's common code.
        assert!(
            parse(SPEC_EXAMPLE.replace("https://shop.example/cart", "http://shop.example/cart").as_bytes()).is_ok()
        );
        assert!(parse(SPEC_EXAMPLE.replace("\"DE\"", "\"xk\"").as_bytes()).is_ok());
    }

    #[test]
    fn event_times_far_from_now_are_refused() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z").expect("time").with_timezone(&Utc);
        let at = |s: &str| DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc);
        assert!(check_time(at("2026-12-03T12:10:00Z"), now, "occurred_at").is_ok(), "a little clock drift");
        assert!(check_time(at("2026-01-01T00:00:00Z"), now, "occurred_at").is_ok(), "old news, still this year");
        for bad in ["9999-12-31T23:59:59Z", "2026-12-03T12:16:00Z", "0000-01-01T00:00:00Z", "2025-12-01T00:00:00Z"] {
            let e = check_time(at(bad), now, "occurred_at");
            assert!(matches!(e, Err(PayloadError::Field { ref field, .. }) if field == "occurred_at"), "{bad}: {e:?}");
        }
    }

    #[test]
    fn trailing_bytes_after_the_json_are_a_syntax_error() {
        let body = format!("{SPEC_EXAMPLE} {{\"type\":\"order.paid\"}}");
        assert!(matches!(parse(body.as_bytes()), Err(PayloadError::Syntax { .. })), "{:?}", parse(body.as_bytes()));
        assert!(parse(format!("{SPEC_EXAMPLE}\n").as_bytes()).is_ok(), "trailing whitespace is fine");
    }

    #[test]
    fn broken_json_is_a_syntax_error() {
        assert!(matches!(parse(b"{\"type\": "), Err(PayloadError::Syntax { .. })));
        assert!(matches!(parse(b"not json"), Err(PayloadError::Syntax { .. })));
    }
}
