//! Pure domain types: identifiers, contact points, money, locales and time zones.
//!
//! Everything here is parsed once at the edge and then trusted; nothing in this
//! module talks to the database, the network or the configuration.

mod cart;
mod contact;
mod event;
mod ids;
mod locale;
mod money;
mod receipt;

pub use cart::{CampaignKind, CartStatus, CustomerRef, UnknownValue};
pub use contact::{Email, Phone, country_code, mask_email, mask_phone};
pub use event::{CartItem, CartSnapshot, Customer, EventKind, OrderInfo, ShopEvent};
pub use ids::{CartId, ShopId, WebhookId};
pub use locale::Locale;
pub use money::{Currency, Money, MoneyError};
pub use receipt::Receipt;

/// Milliseconds since the Unix epoch, the one time representation stored in the database.
pub fn to_millis(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

/// Inverse of [`to_millis`]; out-of-range values clamp to the epoch.
pub fn from_millis(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
