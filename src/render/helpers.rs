//! Template helpers: `money`, `date`.
//!
//! Money is formatted as `129.90 EUR` for now: locale-aware CLDR formatting is tracked with
//! the localisation work and will replace the body of `money` without changing templates.

use chrono::TimeZone;
use handlebars::{Handlebars, handlebars_helper};

use crate::domain::{Currency, Money};

handlebars_helper!(money: |minor: i64, currency: str| {
    match Currency::parse(currency) {
        Ok(c) => Money::from_minor(minor, c).to_string(),
        Err(_) => format!("{minor} {currency}"),
    }
});

handlebars_helper!(date: |ms: i64, tz: str| {
    let zone: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
    match zone.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M %Z").to_string(),
        None => String::new(),
    }
});

/// Register every helper on `hb`.
pub fn register(hb: &mut Handlebars<'static>) {
    hb.register_helper("money", Box::new(money));
    hb.register_helper("date", Box::new(date));
}
