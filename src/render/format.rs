//! Locale-aware formatting from CLDR data (ICU4X): money, dates and plural categories.
//!
//! Nothing here is a hand-written table: symbols, separators, grouping, symbol placement,
//! date patterns and plural rules all come from the CLDR data compiled into ICU4X. A locale
//! ICU does not know falls back along CLDR's own chain (`de-AT → de → root`).

use std::cell::RefCell;
use std::collections::HashMap;

use chrono::{Datelike, TimeZone, Timelike};
use chrono_tz::Tz;
use fixed_decimal::Decimal;
use icu_datetime::fieldsets;
use icu_datetime::input::{Date, DateTime, Time};
use icu_datetime::options::TimePrecision;
use icu_datetime::{DateTimeFormatter, DateTimeFormatterPreferences};
use icu_decimal::DecimalFormatter;
use icu_experimental::dimension::currency::formatter::CurrencyFormatter;
use icu_locale_core::preferences::extensions::unicode::keywords::CurrencyType;
use icu_plurals::{PluralCategory, PluralRules};
use writeable::Writeable;

use crate::domain::{Locale, Money};

fn icu_locale(locale: &Locale) -> icu_locale_core::Locale {
    icu_locale_core::Locale::try_from_str(locale.as_str()).unwrap_or(icu_locale_core::locale!("en"))
}

/// Formatters are built once per thread and locale: building one loads and resolves CLDR data,
/// which costs far more than formatting with it. `None` remembers that ICU had no data.
/// A cache is emptied when it reaches `CACHE_MAX` locales (locales come from events).
const CACHE_MAX: usize = 256;

type Cache<K, V> = RefCell<HashMap<K, Option<V>>>;

thread_local! {
    static MONEY: Cache<(String, String), CurrencyFormatter<DecimalFormatter>> = RefCell::new(HashMap::new());
    static DATES: Cache<String, DateTimeFormatter<fieldsets::YMD>> = RefCell::new(HashMap::new());
    static DATETIMES: Cache<String, DateTimeFormatter<fieldsets::YMDT>> = RefCell::new(HashMap::new());
    static PLURALS: Cache<String, PluralRules> = RefCell::new(HashMap::new());
}

/// Use the cached formatter for `key`, building it with `build` the first time.
fn cached<K: std::hash::Hash + Eq, V, R>(
    cache: &'static std::thread::LocalKey<Cache<K, V>>,
    key: K,
    build: impl FnOnce() -> Option<V>,
    with: impl FnOnce(Option<&V>) -> R,
) -> R {
    cache.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_MAX && !c.contains_key(&key) {
            c.clear();
        }
        with(c.entry(key).or_insert_with(build).as_ref())
    })
}

/// `1.234,50 €` (de-DE), `$1,234.50` (en-US), `￥800` (ja-JP): CLDR's currency format for the
/// locale with the currency's short symbol. Falls back to `1234.50 EUR` if ICU has no data.
pub fn money(locale: &Locale, amount: Money) -> String {
    let code = amount.currency().code();
    let build = || {
        let currency = CurrencyType::try_from_str(&code.to_ascii_lowercase()).ok()?;
        CurrencyFormatter::try_new_symbol((&icu_locale(locale)).into(), currency, Default::default()).ok()
    };
    cached(&MONEY, (locale.as_str().to_owned(), code.to_owned()), build, |fmt| match fmt {
        Some(fmt) => {
            let mut d = Decimal::from(amount.minor());
            d.multiply_pow10(-i16::try_from(amount.currency().minor_digits()).unwrap_or(0));
            fmt.format_fixed_decimal(&d).write_to_string().into_owned()
        }
        None => amount.to_string(),
    })
}

/// How much of an instant to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateStyle {
    /// `30. November 2026`, `November 30, 2026`, `2026年11月30日`.
    Date,
    /// `30.11.2026, 10:05`, `Nov 30, 2026, 10:05 AM`.
    DateTime,
}

/// An instant (Unix milliseconds) in the customer's zone, written the customer's way.
pub fn date(locale: &Locale, ms: i64, tz: Tz, style: DateStyle) -> String {
    let Some(local) = tz.timestamp_millis_opt(ms).single() else {
        return String::new();
    };
    let prefs = || -> DateTimeFormatterPreferences { (&icu_locale(locale)).into() };
    let (Ok(d), Ok(t)) = (
        Date::try_new_iso(
            local.year(),
            u8::try_from(local.month()).unwrap_or(1),
            u8::try_from(local.day()).unwrap_or(1),
        ),
        Time::try_new(u8::try_from(local.hour()).unwrap_or(0), u8::try_from(local.minute()).unwrap_or(0), 0, 0),
    ) else {
        return local.format("%Y-%m-%d %H:%M").to_string();
    };
    let input = DateTime { date: d, time: t };
    let key = locale.as_str().to_owned();
    let formatted = match style {
        DateStyle::Date => cached(
            &DATES,
            key,
            || DateTimeFormatter::try_new(prefs(), fieldsets::YMD::long()).ok(),
            |f| f.map(|f| f.format(&input).to_string()),
        ),
        DateStyle::DateTime => cached(
            &DATETIMES,
            key,
            || {
                DateTimeFormatter::try_new(
                    prefs(),
                    fieldsets::YMDT::medium().with_time_precision(TimePrecision::Minute),
                )
                .ok()
            },
            |f| f.map(|f| f.format(&input).to_string()),
        ),
    };
    formatted.unwrap_or_else(|| local.format("%Y-%m-%d %H:%M").to_string())
}

/// The CLDR plural category of `n` in `locale`: `one`, `other`, `few`, … (Japanese and Chinese
/// have only `other`; Polish and Arabic have more).
pub fn plural_category(locale: &Locale, n: u64) -> &'static str {
    let build = || PluralRules::try_new_cardinal((&icu_locale(locale)).into()).ok();
    let Some(category) = cached(&PLURALS, locale.as_str().to_owned(), build, |r| r.map(|r| r.category_for(n))) else {
        return if n == 1 { "one" } else { "other" };
    };
    match category {
        PluralCategory::Zero => "zero",
        PluralCategory::One => "one",
        PluralCategory::Two => "two",
        PluralCategory::Few => "few",
        PluralCategory::Many => "many",
        PluralCategory::Other => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Currency;

    fn l(s: &str) -> Locale {
        Locale::parse(s).expect("locale")
    }

    fn m(minor: i64, c: &str) -> Money {
        Money::from_minor(minor, Currency::parse(c).expect("currency"))
    }

    /// Expected strings are CLDR's (the same as ICU4C / `Intl.NumberFormat` print); the spaces
    /// are CLDR's no-break (U+00A0) and narrow no-break (U+202F) spaces.
    #[test]
    fn money_follows_cldr_for_each_locale() {
        let cases = [
            ("en-US", m(123_450, "USD"), "$1,234.50"),
            ("en-GB", m(123_450, "GBP"), "£1,234.50"),
            ("en-GB", m(123_450, "EUR"), "€1,234.50"),
            ("de-DE", m(123_450, "EUR"), "1.234,50\u{a0}€"),
            ("de-AT", m(500, "EUR"), "€\u{a0}5,00"),
            ("fr-FR", m(123_450, "EUR"), "1\u{202f}234,50\u{a0}€"),
            ("es-ES", m(123_450, "EUR"), "1234,50\u{a0}€"),
            ("es-ES", m(1_234_500, "EUR"), "12.345,00\u{a0}€"),
            ("ja-JP", m(123_450, "JPY"), "￥123,450"),
            ("zh-CN", m(123_450, "CNY"), "¥1,234.50"),
            ("pt-BR", m(123_450, "BRL"), "R$\u{a0}1.234,50"),
            ("hi-IN", m(12_345_678, "INR"), "₹1,23,456.78"),
            ("en-US", m(0, "USD"), "$0.00"),
            // The README's table.
            ("en-US", m(123_450, "EUR"), "€1,234.50"),
            ("ja-JP", m(123_450, "EUR"), "€1,234.50"),
            ("de-DE", m(80_000, "JPY"), "80.000\u{a0}¥"),
            ("en-US", m(80_000, "JPY"), "¥80,000"),
            ("ja-JP", m(80_000, "JPY"), "￥80,000"),
        ];
        for (loc, amount, want) in cases {
            assert_eq!(money(&l(loc), amount), want, "{loc} {amount}");
        }
        // de-CH writes Swiss francs with the code and its own grouping mark.
        let chf = money(&l("de-CH"), m(123_450, "CHF"));
        assert!(chf.starts_with("CHF") && chf.ends_with("234.50") && !chf.contains("1.234"), "{chf:?}");
    }

    #[test]
    fn yen_has_no_decimals_and_bahraini_dinar_three() {
        assert_eq!(money(&l("en-US"), m(800, "JPY")), "¥800");
        assert!(money(&l("en-US"), m(1_500, "BHD")).ends_with("1.500"), "{}", money(&l("en-US"), m(1_500, "BHD")));
    }

    #[test]
    fn dates_are_local_to_the_customer_and_written_their_way() {
        // 2026-11-30T09:05:00Z: 10:05 in Berlin, 18:05 in Tokyo, 04:05 in New York.
        let ms = 1_796_029_500_000;
        let berlin: Tz = "Europe/Berlin".parse().expect("tz");
        let tokyo: Tz = "Asia/Tokyo".parse().expect("tz");
        let ny: Tz = "America/New_York".parse().expect("tz");
        let cases = [
            ("de-DE", berlin, DateStyle::Date, "30. November 2026"),
            ("de-DE", berlin, DateStyle::DateTime, "30.11.2026, 10:05"),
            ("de-CH", berlin, DateStyle::DateTime, "30.11.2026, 10:05"),
            ("en-US", ny, DateStyle::DateTime, "Nov 30, 2026, 4:05\u{202f}AM"),
            ("en-US", ny, DateStyle::Date, "November 30, 2026"),
            ("en-GB", berlin, DateStyle::Date, "30 November 2026"),
            ("fr-FR", berlin, DateStyle::Date, "30 novembre 2026"),
            ("es-ES", berlin, DateStyle::Date, "30 de noviembre de 2026"),
            ("ja-JP", tokyo, DateStyle::DateTime, "2026/11/30 18:05"),
            ("zh-CN", tokyo, DateStyle::Date, "2026年11月30日"),
            ("pt-BR", berlin, DateStyle::Date, "30 de novembro de 2026"),
            ("hi-IN", berlin, DateStyle::Date, "30 नवंबर, 2026"),
        ];
        for (loc, tz, style, want) in cases {
            assert_eq!(date(&l(loc), ms, tz, style), want, "{loc} {tz} {style:?}");
        }
    }

    #[test]
    fn plural_categories_come_from_cldr() {
        assert_eq!((plural_category(&l("en"), 1), plural_category(&l("en"), 2)), ("one", "other"));
        assert_eq!((plural_category(&l("de-DE"), 1), plural_category(&l("de-DE"), 0)), ("one", "other"));
        assert_eq!((plural_category(&l("fr"), 0), plural_category(&l("fr"), 1)), ("one", "one"));
        assert_eq!(plural_category(&l("ja"), 1), "other");
        assert_eq!(plural_category(&l("zh-CN"), 1), "other");
        assert_eq!((plural_category(&l("pl"), 3), plural_category(&l("pl"), 5)), ("few", "many"));
    }
}
