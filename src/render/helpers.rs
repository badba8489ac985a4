//! Template helpers, formatted for the customer's locale and time zone (CLDR via ICU4X).
//!
//! - `{{money minor currency}}`: `1.234,50 €` in de-DE, `$1,234.50` in en-US.
//! - `{{date ms}}` / `{{datetime ms}}`: an instant (Unix ms) in the customer's zone, e.g.
//!   `30. November 2026` / `30.11.2026, 10:05`. An explicit zone may follow: `{{date ms "Asia/Tokyo"}}`.
//! - `{{plural n one="# item" other="# items"}}`: the CLDR plural category of `n` picks the
//!   variant (`zero one two few many other`; `other` is required), `#` is replaced by `n`.
//!
//! The locale and zone come from the message context's `locale` and `timezone`, so templates
//! never repeat them. Every helper refuses wrong arguments with an error naming the helper: in
//! strict mode that surfaces at `campaign check`, never as a blank in a customer's inbox.

use chrono_tz::Tz;
use handlebars::{Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason};

use super::format::{self, DateStyle};
use crate::domain::{Currency, Locale, Money};

fn locale_of(ctx: &Context) -> Locale {
    ctx.data().get("locale").and_then(|v| v.as_str()).and_then(|s| Locale::parse(s).ok()).unwrap_or_else(Locale::en)
}

fn bad(helper: &'static str, what: impl Into<String>) -> RenderErrorReason {
    RenderErrorReason::Other(format!("{helper}: {}", what.into()))
}

fn money(h: &Helper, _: &Handlebars, ctx: &Context, _: &mut RenderContext, out: &mut dyn Output) -> HelperResult {
    let minor = h
        .param(0)
        .and_then(|p| p.value().as_i64())
        .ok_or_else(|| bad("money", "first argument must be an amount in minor units"))?;
    let code = h
        .param(1)
        .and_then(|p| p.value().as_str())
        .ok_or_else(|| bad("money", "second argument must be a currency code"))?;
    let currency = Currency::parse(code).map_err(|e| bad("money", e.to_string()))?;
    out.write(&format::money(&locale_of(ctx), Money::from_minor(minor, currency)))?;
    Ok(())
}

fn instant(
    name: &'static str,
    style: DateStyle,
) -> impl Fn(&Helper, &Handlebars, &Context, &mut RenderContext, &mut dyn Output) -> HelperResult + Send + Sync {
    move |h, _, ctx, _, out| {
        let ms = h
            .param(0)
            .and_then(|p| p.value().as_i64())
            .ok_or_else(|| bad(name, "first argument must be a time in Unix milliseconds"))?;
        let zone = h
            .param(1)
            .and_then(|p| p.value().as_str())
            .or_else(|| ctx.data().get("timezone").and_then(|v| v.as_str()))
            .unwrap_or("UTC");
        let tz: Tz = zone.parse().map_err(|_| bad(name, format!("{zone:?} is not an IANA time zone")))?;
        out.write(&format::date(&locale_of(ctx), ms, tz, style))?;
        Ok(())
    }
}

fn plural(h: &Helper, _: &Handlebars, ctx: &Context, _: &mut RenderContext, out: &mut dyn Output) -> HelperResult {
    let n = h
        .param(0)
        .and_then(|p| p.value().as_u64())
        .ok_or_else(|| bad("plural", "first argument must be a whole number"))?;
    let category = format::plural_category(&locale_of(ctx), n);
    let variant = h
        .hash_get(category)
        .or_else(|| h.hash_get("other"))
        .and_then(|v| v.value().as_str())
        .ok_or_else(|| bad("plural", "an `other=\"…\"` variant is required"))?;
    out.write(&variant.replace('#', &n.to_string()))?;
    Ok(())
}

/// Register every helper on `hb`.
pub fn register(hb: &mut Handlebars<'static>) {
    hb.register_helper("money", Box::new(money));
    hb.register_helper("date", Box::new(instant("date", DateStyle::Date)));
    hb.register_helper("datetime", Box::new(instant("datetime", DateStyle::DateTime)));
    hb.register_helper("plural", Box::new(plural));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(tpl: &str, ctx: serde_json::Value) -> Result<String, handlebars::RenderError> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        register(&mut hb);
        hb.render_template(tpl, &ctx)
    }

    #[test]
    fn helpers_use_the_context_locale_and_zone_inside_blocks() {
        let ctx = serde_json::json!({"locale": "de-DE", "timezone": "Europe/Berlin",
            "items": [{"p": 123_450}], "at": 1_796_029_500_000_i64, "n": 3});
        let out = render(
            "{{#each items}}{{money p \"EUR\"}}{{/each}}|{{date at}}|{{datetime at \"Asia/Tokyo\"}}|{{plural n one=\"# Artikel\" other=\"# Artikel\"}}",
            ctx,
        )
        .expect("renders");
        assert_eq!(out, "1.234,50\u{a0}€|30. November 2026|30.11.2026, 18:05|3 Artikel");
    }

    #[test]
    fn plural_picks_the_cldr_category() {
        let tpl = "{{plural n one=\"# item\" other=\"# items\"}}";
        let one = render(tpl, serde_json::json!({"locale": "en", "n": 1})).expect("renders");
        let two = render(tpl, serde_json::json!({"locale": "en", "n": 2})).expect("renders");
        let ja = render(tpl, serde_json::json!({"locale": "ja", "n": 1})).expect("renders");
        assert_eq!((one.as_str(), two.as_str(), ja.as_str()), ("1 item", "2 items", "1 items"));
    }

    #[test]
    fn wrong_arguments_are_errors_naming_the_helper() {
        let e = render("{{money 5 \"EURO\"}}", serde_json::json!({"locale": "en"})).expect_err("bad currency");
        assert!(e.to_string().contains("money"), "{e}");
        let e = render("{{plural 2 one=\"x\"}}", serde_json::json!({"locale": "en"})).expect_err("no other");
        assert!(e.to_string().contains("other"), "{e}");
        let e = render("{{date 5 \"Mars/Olympus\"}}", serde_json::json!({"locale": "en"})).expect_err("bad zone");
        assert!(e.to_string().contains("IANA"), "{e}");
    }
}
