//! Templates: handlebars in strict mode, per-file locale fallback, formatting helpers.
//!
//! Layout: `templates/<locale>/<template>.<channel>.<part>.hbs` with parts `subject`, `html`,
//! `txt` for email and `txt` for SMS; `templates/_partials/<name>.hbs` are shared partials.

pub mod context;
pub mod format;
mod helpers;
pub mod lint;
pub mod sms;

use std::collections::BTreeSet;
use std::path::Path;

use handlebars::Handlebars;
use serde_json::Value;

use crate::campaign::Channel;
pub use crate::config::OptOut;
use crate::domain::Locale;

/// Template loading and rendering failures.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The directory could not be read.
    #[error("templates: cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A template does not compile.
    #[error("templates: {0}")]
    Template(Box<handlebars::TemplateError>),
    /// Rendering failed (in strict mode, an unknown variable is such a failure).
    #[error("rendering {name}: {source}")]
    Render {
        /// Template file key.
        name: String,
        /// The cause.
        source: Box<handlebars::RenderError>,
    },
    /// No locale in the chain has this part.
    #[error("no template {0} in any locale of the fallback chain")]
    Missing(String),
    /// The SMS is longer than the campaign allows.
    #[error(
        "the SMS is {segments} segments ({units} {encoding:?} units), over the campaign's sms.max_segments of {max}"
    )]
    TooLong {
        /// Segments the text needs.
        segments: usize,
        /// Septets or UTF-16 units.
        units: usize,
        /// Encoding.
        encoding: sms::Encoding,
        /// The campaign's limit.
        max: u8,
    },
}

/// A rendered SMS with its carrier cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedSms {
    /// The text as sent, opt-out line included.
    pub text: String,
    /// Encoding and segments.
    pub cost: sms::Segments,
}

impl RenderedSms {
    /// Refuse a text that costs more than the campaign's `sms.max_segments`.
    pub fn within(self, max_segments: Option<u8>) -> Result<Self, RenderError> {
        match max_segments {
            Some(max) if self.cost.segments > usize::from(max) => Err(RenderError::TooLong {
                segments: self.cost.segments,
                units: self.cost.units,
                encoding: self.cost.encoding,
                max,
            }),
            _ => Ok(self),
        }
    }
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// Subject line.
    pub subject: String,
    /// HTML body.
    pub html: String,
    /// Plain-text body.
    pub text: String,
    /// The locale the subject came from.
    pub locale: String,
}

/// All templates, loaded once.
#[derive(Debug)]
pub struct Renderer {
    html: Handlebars<'static>,
    text: Handlebars<'static>,
    keys: BTreeSet<String>,
}

const EMAIL_PARTS: [&str; 3] = ["subject", "html", "txt"];

impl Renderer {
    /// Load every template under `dir`.
    pub fn load(dir: &Path) -> Result<Self, RenderError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| RenderError::Io { path, source }
        };
        let mut html = Handlebars::new();
        let mut text = Handlebars::new();
        text.register_escape_fn(handlebars::no_escape);
        for hb in [&mut html, &mut text] {
            hb.set_strict_mode(true);
            helpers::register(hb);
        }
        let mut keys = BTreeSet::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let path = entry.path();
            let Some(dir_name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if !path.is_dir() {
                continue;
            }
            let partials = dir_name == "_partials";
            for file in std::fs::read_dir(&path).map_err(io(&path))? {
                let file = file.map_err(io(&path))?.path();
                let Some(name) = file.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".hbs")) else {
                    continue;
                };
                let source = std::fs::read_to_string(&file).map_err(io(&file))?;
                let reg = |hb: &mut Handlebars<'static>, key: &str| {
                    if partials {
                        hb.register_partial(key, source.as_str()).map_err(|e| RenderError::Template(Box::new(e)))
                    } else {
                        hb.register_template_string(key, source.as_str())
                            .map_err(|e| RenderError::Template(Box::new(e)))
                    }
                };
                let key = if partials { name.to_owned() } else { format!("{dir_name}/{name}") };
                let is_html = name.ends_with(".html");
                if partials {
                    reg(&mut html, &key)?;
                    reg(&mut text, &key)?;
                } else if is_html {
                    reg(&mut html, &key)?;
                } else {
                    reg(&mut text, &key)?;
                }
                if !partials {
                    keys.insert(key);
                }
            }
        }
        Ok(Self { html, text, keys })
    }

    /// The locales that have a template directory (`en`, `de`, `zh-CN`, …).
    pub fn locales(&self) -> BTreeSet<&str> {
        self.keys.iter().filter_map(|k| k.split_once('/').map(|(l, _)| l)).collect()
    }

    /// Whether `locale` has every part of `template` for `channel`.
    pub fn has(&self, locale: &str, template: &str, channel: Channel) -> bool {
        match channel {
            Channel::Email => EMAIL_PARTS.iter().all(|p| self.keys.contains(&format!("{locale}/{template}.email.{p}"))),
            Channel::Sms => self.keys.contains(&format!("{locale}/{template}.sms.txt")),
        }
    }

    /// Whether `locale` has its own link-page template.
    pub fn has_page(&self, locale: &str) -> bool {
        self.keys.contains(&format!("{locale}/{PAGE_TEMPLATE}.html"))
    }

    /// Whether `locale` has at least one part of `template` for `channel`.
    pub fn has_any(&self, locale: &str, template: &str, channel: Channel) -> bool {
        let prefix = format!("{locale}/{template}.{}.", channel.as_str());
        self.keys.iter().any(|k| k.starts_with(&prefix))
    }

    fn pick(&self, chain: &[Locale], template: &str, part: &str) -> Result<String, RenderError> {
        chain
            .iter()
            .map(|l| format!("{l}/{template}.{part}"))
            .find(|k| self.keys.contains(k))
            .ok_or_else(|| RenderError::Missing(format!("{template}.{part}")))
    }

    fn render(&self, key: &str, ctx: &Value) -> Result<String, RenderError> {
        let hb = if key.ends_with(".html") { &self.html } else { &self.text };
        hb.render(key, ctx).map_err(|e| RenderError::Render { name: key.to_owned(), source: Box::new(e) })
    }

    /// The context with the per-language sentences filled in, each from the first template of
    /// the chain that has it: `reason.text` from `reason.txt.hbs` (a human explanation of why
    /// the cart was left, with a next action, for the reasons it knows; nothing otherwise) and
    /// `incentive.text` from `offer.txt.hbs` (`15 % Rabatt`, `送料無料`).
    fn explained(&self, chain: &[Locale], ctx: &Value) -> Result<Value, RenderError> {
        let mut ctx = ctx.clone();
        for (template, present, target) in
            [(REASON_TEMPLATE, "/reason/code", "reason"), (OFFER_TEMPLATE, "/incentive/tier", "incentive")]
        {
            if ctx.pointer(present).is_none_or(serde_json::Value::is_null) {
                continue;
            }
            let Ok(key) = self.pick(chain, template, "txt") else { continue };
            let text = self.render(&key, &ctx)?.trim().to_owned();
            if let Some(obj) = ctx.get_mut(target).and_then(Value::as_object_mut) {
                obj.insert("text".into(), if text.is_empty() { Value::Null } else { Value::String(text) });
            }
        }
        // The better tier a gap offer points to is worded by the same template.
        if ctx.pointer("/incentive/next/tier").is_some_and(|t| !t.is_null())
            && let Ok(key) = self.pick(chain, OFFER_TEMPLATE, "txt")
        {
            let mut sub = ctx.clone();
            sub["incentive"] = ctx["incentive"]["next"].clone();
            let text = self.render(&key, &sub)?.trim().to_owned();
            ctx["incentive"]["next"]["text"] = Value::String(text);
        }
        Ok(ctx)
    }

    /// Render an email; each part falls back along `chain` on its own.
    pub fn email(&self, chain: &[Locale], template: &str, ctx: &Value) -> Result<RenderedEmail, RenderError> {
        let ctx = &self.explained(chain, ctx)?;
        let subject_key = self.pick(chain, template, "email.subject")?;
        let locale = subject_key.split('/').next().unwrap_or("en").to_owned();
        let subject = self.render(&subject_key, ctx)?.trim().replace(['\r', '\n'], " ");
        let html_key = self.pick(chain, template, "email.html")?;
        // `lang` in the HTML follows the language the body is actually written in; money and
        // dates keep the customer's own `locale` (a de-AT customer reading `de` text).
        let mut html_ctx = ctx.clone();
        if let Some(obj) = html_ctx.as_object_mut() {
            obj.insert("lang".into(), Value::String(html_key.split('/').next().unwrap_or("en").to_owned()));
        }
        let html = self.render(&html_key, &html_ctx)?;
        let text = self.render(&self.pick(chain, template, "email.txt")?, ctx)?;
        Ok(RenderedEmail { subject, html, text, locale })
    }

    /// Render an SMS body.
    pub fn sms(&self, chain: &[Locale], template: &str, ctx: &Value) -> Result<String, RenderError> {
        let ctx = &self.explained(chain, ctx)?;
        Ok(self.render(&self.pick(chain, template, "sms.txt")?, ctx)?.trim().to_owned())
    }

    /// The body of a page customers see after clicking a link (`templates/<locale>/page.html.hbs`):
    /// `page` names which one, `shop.name`/`shop.url` the shop when known, `restore_url` a way
    /// back to the cart where the page offers one.
    pub fn page(
        &self,
        chain: &[Locale],
        page: &str,
        shop_name: Option<&str>,
        shop_url: Option<&str>,
        restore_url: Option<&str>,
    ) -> Result<String, RenderError> {
        let key = self.pick(chain, PAGE_TEMPLATE, "html")?;
        let lang = key.split('/').next().unwrap_or("en");
        let ctx = serde_json::json!({ "page": page, "shop": { "name": shop_name, "url": shop_url }, "lang": lang,
                                      "restore_url": restore_url });
        self.render(&key, &ctx)
    }

    /// Render an SMS exactly as it goes out: the body, the opt-out line unless the body already
    /// mentions STOP, and the carrier cost.
    pub fn sms_message(
        &self,
        chain: &[Locale],
        template: &str,
        ctx: &Value,
        opt_out: OptOut<'_>,
    ) -> Result<RenderedSms, RenderError> {
        let mut text = self.sms(chain, template, ctx)?;
        let line = match opt_out {
            // A fixed line: no reason or offer snippets to fill in first.
            OptOut::Localized => {
                Some(self.render(&self.pick(chain, OPT_OUT_TEMPLATE, "sms.txt")?, ctx)?.trim().to_owned())
            }
            OptOut::Line(l) => Some(l.to_owned()),
            OptOut::None => None,
        };
        if let Some(line) = line.filter(|l| !l.is_empty())
            && !text.to_uppercase().contains("STOP")
        {
            text.push(' ');
            text.push_str(&line);
        }
        let text = sms::smart_encode(&text);
        let cost = sms::segments(&text);
        Ok(RenderedSms { text, cost })
    }
}

/// The template explaining an abandonment reason (`templates/<locale>/reason.txt.hbs`).
pub const REASON_TEMPLATE: &str = "reason";

/// The template of the pages behind customer links (`templates/<locale>/page.html.hbs`).
pub const PAGE_TEMPLATE: &str = "page";

/// The template wording an incentive offer (`templates/<locale>/offer.txt.hbs`).
pub const OFFER_TEMPLATE: &str = "offer";

/// The SMS template holding each locale's opt-out line.
pub const OPT_OUT_TEMPLATE: &str = "opt_out";

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(s: &str) -> Vec<Locale> {
        Locale::parse(s).expect("locale").fallback_chain(&Locale::parse("en").expect("en"))
    }

    fn sample() -> Value {
        serde_json::json!({
            "shop": {"name": "Demo <Shop>", "url": "https://shop.example"},
            "customer": {"first_name": "Anna"},
            "cart": {"total_minor": 12990, "currency": "EUR", "item_count": 2,
                     "items": [{"title": "T-Shirt", "quantity": 2, "price_minor": 6495, "line_total_minor": 12990,
                                "image_url": null, "url": null}], "more_items": 0},
            "restore_url": "https://r.example/r/abc",
            "unsubscribe_url": "https://r.example/u/abc",
            "feedback_url": "https://r.example/f/abc",
            "order": {"id": null, "expires_at": null},
            "incentive": {"tier": "default", "code": "SAVE-1234", "summary": "5.00 EUR off", "expires_at": 1_800_000_000_000_i64},
            "timezone": "Europe/Berlin", "step": "reminder", "campaign": "default", "locale": "en",
            "reason": {"stage": null, "code": null, "detail": null, "text": null}
        })
    }

    #[test]
    fn shipped_templates_render_in_english_with_escaping() {
        let r = Renderer::load(Path::new("templates")).expect("templates load");
        for t in ["reminder", "faq", "incentive"] {
            assert!(r.has("en", t, Channel::Email), "{t} email");
            assert!(r.has("en", t, Channel::Sms), "{t} sms");
            let mail = r.email(&chain("de-AT"), t, &sample()).expect("renders");
            assert!(mail.html.contains("https://r.example/r/abc"), "{t}: restore link in HTML");
            assert!(mail.text.contains("https://r.example/r/abc"), "{t}: restore link in text");
            assert!(mail.html.contains("Demo &lt;Shop&gt;"), "{t}: HTML is escaped");
            assert!(!mail.text.contains("&lt;"), "{t}: text is not HTML-escaped");
            let sms = r.sms(&chain("en"), t, &sample()).expect("sms renders");
            assert!(sms.contains("https://r.example/r/abc"));
        }
    }

    #[test]
    fn a_long_cart_lists_its_first_lines_and_counts_the_rest_in_every_locale() {
        let r = Renderer::load(Path::new("templates")).expect("templates load");
        let mut ctx = sample();
        ctx["cart"]["more_items"] = 5.into();
        let said = [
            ("en", "and 5 more items"),
            ("de", "und 5 weitere Artikel"),
            ("es", "y 5 artículos más"),
            ("fr", "et 5 autres articles"),
            ("ja", "ほか5点"),
            ("zh-CN", "另有5件商品"),
        ];
        for (locale, text) in said {
            ctx["locale"] = locale.into();
            for t in ["reminder", "incentive", "unpaid"] {
                let mail = r.email(&chain(locale), t, &ctx).expect("renders");
                assert!(mail.text.contains(text), "{locale} {t} text: {}", mail.text);
                assert!(mail.html.contains(text), "{locale} {t} html");
            }
        }
        ctx["cart"]["more_items"] = 0.into();
        let mail = r.email(&chain("en"), "reminder", &ctx).expect("renders");
        assert!(!mail.text.contains("more item"), "nothing counted when every line is listed");
    }

    #[test]
    fn the_context_lists_at_most_the_shown_lines() {
        let item = crate::domain::CartItem {
            sku: None,
            title: "Line".into(),
            quantity: 1,
            price_minor: 100,
            image_url: None,
            url: None,
        };
        let items = vec![item; 10_000];
        let view = context::MessageContext {
            shop_name: "Shop",
            shop_url: None,
            first_name: None,
            total_minor: 1_000_000,
            currency: "EUR",
            items: &items,
            restore_url: "https://r.example/r/abc",
            unsubscribe_url: "https://r.example/u/abc",
            feedback_url: "https://r.example/f/abc",
            incentive: None,
            timezone: chrono_tz::Europe::Berlin,
            locale: "en",
            step: "reminder",
            stage: None,
            reason: None,
            reason_detail: None,
            order_id: None,
            order_expires_at_ms: None,
        }
        .to_json();
        assert_eq!(view["cart"]["items"].as_array().map(Vec::len), Some(context::SHOWN_ITEMS));
        assert_eq!(view["cart"]["more_items"], 10_000 - context::SHOWN_ITEMS);
        assert_eq!(view["cart"]["item_count"], 10_000, "the count still says how many there are");
        let r = Renderer::load(Path::new("templates")).expect("templates load");
        let mail = r.email(&chain("en"), "reminder", &view).expect("renders");
        assert!(mail.html.len() < 64 * 1024, "a 10,000-line cart makes a small message: {}", mail.html.len());
    }

    #[test]
    fn unknown_variables_are_errors_not_blanks() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("en")).expect("mkdir");
        std::fs::write(dir.path().join("en/x.sms.txt.hbs"), "Hi {{customer.nickname}}").expect("write");
        let r = Renderer::load(dir.path()).expect("load");
        assert!(matches!(r.sms(&chain("en"), "x", &sample()), Err(RenderError::Render { .. })));
    }

    #[test]
    fn falls_back_per_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        for l in ["en", "de"] {
            std::fs::create_dir(dir.path().join(l)).expect("mkdir");
        }
        std::fs::write(dir.path().join("en/x.sms.txt.hbs"), "hello").expect("write");
        std::fs::write(dir.path().join("de/x.sms.txt.hbs"), "hallo").expect("write");
        let r = Renderer::load(dir.path()).expect("load");
        assert_eq!(r.sms(&chain("de-AT"), "x", &sample()).expect("de"), "hallo");
        assert_eq!(r.sms(&chain("fr-FR"), "x", &sample()).expect("en"), "hello");
    }
}
