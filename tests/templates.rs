//! The shipped templates in every shipped locale: snapshots of exactly what a customer reads
//! (subject, text part, HTML part, SMS with its carrier cost), and the email as a MIME parser sees it.

use std::path::Path;

use cartback::campaign::Channel;
use cartback::config::Settings;
use cartback::deliver::OutgoingEmail;
use cartback::domain::{CartItem, Email, Locale};
use cartback::incentive::ChosenOffer;
use cartback::render::context::{IncentiveView, MessageContext};
use cartback::render::{OptOut, Renderer};
use mail_parser::{MessageParser, MimeHeaders};

/// Locale as the customer sends it, currency they pay in, zone they live in.
const CUSTOMERS: [(&str, &str, &str); 6] = [
    ("en-US", "USD", "America/New_York"),
    ("de-DE", "EUR", "Europe/Berlin"),
    ("fr-FR", "EUR", "Europe/Paris"),
    ("es-ES", "EUR", "Europe/Madrid"),
    ("ja-JP", "JPY", "Asia/Tokyo"),
    ("zh-CN", "CNY", "Asia/Shanghai"),
];

const TEMPLATES: [&str; 4] = ["reminder", "faq", "incentive", "unpaid"];

fn items(currency: &str) -> Vec<CartItem> {
    // Yen has no minor unit: the same goods cost 4,990 and 3,500 yen.
    let (shirt, cap) = if currency == "JPY" { (4_990, 3_500) } else { (3_495, 6_000) };
    vec![
        CartItem {
            sku: Some("TSHIRT-M".into()),
            title: "Organic cotton T-shirt".into(),
            quantity: 2,
            price_minor: shirt,
            image_url: Some("https://images.example/tshirt.jpg".into()),
            url: Some("https://shop.example/tshirt".into()),
        },
        CartItem {
            sku: Some("CAP-1".into()),
            title: "Canvas cap".into(),
            quantity: 1,
            price_minor: cap,
            image_url: None,
            url: None,
        },
    ]
}

fn offer() -> ChosenOffer {
    ChosenOffer {
        tier: "vip".into(),
        percent_off_permille: Some(150),
        // 60.00 in two-decimal currencies, 6,000 yen.
        max_discount_minor: Some(6_000),
        amount_off_minor: None,
        free_shipping: false,
        min_order_minor: None,
        gap_minor: None,
        next: None,
        summary: "15% off".into(),
    }
}

struct Rendered {
    email: cartback::render::RenderedEmail,
    sms: cartback::render::RenderedSms,
}

fn render(r: &Renderer, locale: &str, currency: &str, tz: &str, template: &str, reason: Option<&str>) -> Rendered {
    let items = items(currency);
    let total: i64 = items.iter().map(|i| i.price_minor * i64::from(i.quantity)).sum();
    let offer = offer();
    let ctx = MessageContext {
        shop_name: "Demo Shop",
        shop_url: Some("https://shop.example"),
        first_name: Some("Anna"),
        total_minor: total,
        currency,
        items: &items,
        restore_url: "https://recover.example/r/TOKEN",
        unsubscribe_url: "https://recover.example/u/TOKEN",
        feedback_url: "https://recover.example/f/TOKEN",
        // 2026-11-30T09:05:00Z
        incentive: (template == "incentive").then_some(IncentiveView {
            offer: &offer,
            code: "SAVE-7KQ2M9XPRT",
            expires_at_ms: 1_796_029_500_000,
        }),
        timezone: tz.parse().expect("zone"),
        locale,
        step: template,
        stage: reason.map(|_| "payment"),
        reason,
        reason_detail: reason.map(|_| "card_declined"),
        order_id: (template == "unpaid").then_some("1001"),
        order_expires_at_ms: (template == "unpaid").then_some(1_796_029_500_000),
    }
    .to_json();
    let loc = Locale::parse(locale).expect("locale");
    let chain = loc.fallback_chain(&Locale::parse("en").expect("en"));
    Rendered {
        email: r.email(&chain, template, &ctx).expect("email renders"),
        sms: r.sms_message(&chain, template, &ctx, OptOut::Localized).expect("sms renders"),
    }
}

fn renderer() -> Renderer {
    Renderer::load(Path::new("templates")).expect("templates load")
}

#[test]
fn every_template_in_every_locale_has_its_own_text() {
    let r = renderer();
    for (locale, ..) in CUSTOMERS {
        let lang = Locale::parse(locale).expect("locale").truncations().into_iter().last().expect("language");
        let dir = if locale == "zh-CN" { "zh-CN" } else { lang.as_str() };
        for t in TEMPLATES {
            assert!(r.has(dir, t, Channel::Email), "templates/{dir}/{t}.email.*");
            assert!(r.has(dir, t, Channel::Sms), "templates/{dir}/{t}.sms.txt");
        }
    }
}

#[test]
fn snapshots_of_every_template_locale_and_channel() {
    let r = renderer();
    for (locale, currency, tz) in CUSTOMERS {
        for t in TEMPLATES {
            let m = render(&r, locale, currency, tz, t, None);
            assert_eq!(m.email.locale, if locale == "zh-CN" { "zh-CN" } else { &locale[..2] }, "{t} {locale}");
            insta::assert_snapshot!(
                format!("{t}_email_{locale}"),
                format!("Subject: {}\n\n{}\n\n---- HTML ----\n{}", m.email.subject, m.email.text, m.email.html)
            );
            insta::assert_snapshot!(
                format!("{t}_sms_{locale}"),
                format!(
                    "{}\n\n---- {:?}, {} units, {} segment(s)",
                    m.sms.text, m.sms.cost.encoding, m.sms.cost.units, m.sms.cost.segments
                )
            );
        }
    }
}

#[test]
fn a_payment_failure_is_explained_in_the_customers_language() {
    let r = renderer();
    let want = [
        ("en-US", "Your card was declined."),
        ("de-DE", "Ihre Karte wurde abgelehnt."),
        ("fr-FR", "Votre carte a été refusée."),
        ("es-ES", "Tu tarjeta ha sido rechazada."),
        ("ja-JP", "カードがご利用いただけませんでした。"),
        ("zh-CN", "您的银行卡被拒绝了。"),
    ];
    for ((locale, currency, tz), (_, sentence)) in CUSTOMERS.iter().zip(want) {
        let m = render(&r, locale, currency, tz, "reminder", Some("payment_failed"));
        assert!(m.email.text.contains(sentence), "{locale} text: {}", m.email.text);
        assert!(m.email.html.contains(sentence), "{locale} html");
        assert!(!m.email.text.contains("card_declined"), "{locale}: never an error code");
    }
}

#[test]
fn german_customers_read_german_money_and_dates() {
    let r = renderer();
    let m = render(&r, "de-DE", "EUR", "Europe/Berlin", "incentive", None);
    assert_eq!(m.email.subject, "Ein kleines Extra für Ihren Warenkorb: 15\u{a0}% Rabatt (bis zu 60,00\u{a0}€)");
    assert!(m.email.text.contains("Gesamt: 129,90\u{a0}€"), "{}", m.email.text);
    assert!(m.email.text.contains("Er gilt bis 30.11.2026, 10:05 Uhr."), "{}", m.email.text);
    assert!(m.email.html.contains("<html lang=\"de\">"));
    // An Austrian customer reads the German text with Austrian number formatting.
    let at = render(&r, "de-AT", "EUR", "Europe/Vienna", "reminder", None);
    assert_eq!(at.email.locale, "de");
    assert!(at.email.text.contains("Gesamt: €\u{a0}129,90"), "{}", at.email.text);
}

#[test]
fn gap_offers_say_what_is_missing_in_the_customers_language() {
    let r = renderer();
    let items = items("EUR");
    let next = ChosenOffer { tier: "big".into(), percent_off_permille: Some(100), gap_minor: Some(2_010), ..offer() };
    let first = ChosenOffer {
        tier: "first".into(),
        percent_off_permille: None,
        max_discount_minor: None,
        free_shipping: true,
        min_order_minor: Some(20_000),
        gap_minor: Some(7_010),
        next: Some(Box::new(next)),
        summary: "free shipping".into(),
        ..offer()
    };
    let ctx = MessageContext {
        shop_name: "Demo Shop",
        shop_url: None,
        first_name: None,
        total_minor: 12_990,
        currency: "EUR",
        items: &items,
        restore_url: "https://recover.example/r/TOKEN",
        unsubscribe_url: "https://recover.example/u/TOKEN",
        feedback_url: "https://recover.example/f/TOKEN",
        incentive: Some(IncentiveView { offer: &first, code: "SAVE-7KQ2M9XPRT", expires_at_ms: 1_796_029_500_000 }),
        timezone: "Europe/Berlin".parse().expect("zone"),
        locale: "de-DE",
        step: "incentive",
        stage: None,
        reason: None,
        reason_detail: None,
        order_id: None,
        order_expires_at_ms: None,
    }
    .to_json();
    let chain = Locale::parse("de-DE").expect("de").fallback_chain(&Locale::en());
    let m = r.email(&chain, "incentive", &ctx).expect("renders");
    assert!(m.subject.ends_with("kostenloser Versand"), "{}", m.subject);
    assert!(
        m.text.contains("Der Code gilt ab einem Bestellwert von 200,00\u{a0}€. Es fehlen nur noch 70,10\u{a0}€."),
        "{}",
        m.text
    );
    assert!(
        m.text.contains(
            "Mit 20,10\u{a0}€ mehr im Warenkorb gibt es stattdessen: 10\u{a0}% Rabatt (bis zu 60,00\u{a0}€)."
        ),
        "{}",
        m.text
    );
}

#[test]
fn japanese_sms_is_ucs2_with_the_right_segment_count() {
    let r = renderer();
    let m = render(&r, "ja-JP", "JPY", "Asia/Tokyo", "reminder", None);
    assert_eq!(m.sms.cost.encoding, cartback::render::sms::Encoding::Ucs2);
    let units: usize = m.sms.text.encode_utf16().count();
    assert_eq!(m.sms.cost.units, units);
    // 70 units fit one SMS; above that every segment carries 67.
    let want = if units <= 70 { 1 } else { units.div_ceil(67) };
    assert_eq!(m.sms.cost.segments, want, "{units} units");
    assert!(m.sms.text.contains("￥13,480"), "{}", m.sms.text);
    assert!(m.sms.text.ends_with("配信停止はSTOPと返信"), "localized opt-out line: {}", m.sms.text);
    // An English SMS stays GSM-7.
    let en = render(&r, "en-US", "USD", "America/New_York", "reminder", None);
    assert_eq!(en.sms.cost.encoding, cartback::render::sms::Encoding::Gsm7);
    assert!(en.sms.text.ends_with("Reply STOP to opt out."));
}

#[test]
fn a_campaign_segment_limit_refuses_a_long_sms() {
    let r = renderer();
    let m = render(&r, "ja-JP", "JPY", "Asia/Tokyo", "incentive", None);
    let segments = m.sms.cost.segments;
    assert!(segments >= 2, "the Japanese incentive SMS is long: {segments}");
    assert!(m.sms.clone().within(Some(u8::try_from(segments).expect("small"))).is_ok());
    let err = m.sms.within(Some(1)).expect_err("over the limit");
    assert!(err.to_string().contains("max_segments of 1"), "{err}");
}

#[test]
fn the_email_parses_as_multipart_alternative_with_one_click_unsubscribe() {
    let r = renderer();
    let m = render(&r, "de-DE", "EUR", "Europe/Berlin", "reminder", None);
    let mut settings = Settings::default();
    settings.shops.insert(
        "demo".into(),
        toml_shop(
            r#"name = "Demo Shop"
webhook_secret = "s3cret-s3cret-s3cret"
timezone = "Europe/Berlin"
locale = "de"
currency = "EUR"
campaign = "default"
from = "Demo Shop <shop@example.com>"
reply_to = "Kundenservice <hilfe@example.com>"
unsubscribe_mailto = "unsubscribe@example.com""#,
        ),
    );
    let shops = settings.shops().expect("valid shop");
    let shop = shops.values().next().expect("shop");
    let to = Email::parse("anna@example.de").expect("email");
    let out =
        OutgoingEmail::compose("0f3a9c".into(), shop, to, m.email.clone(), "https://recover.example/u/TOKEN".into());
    let raw = out.to_message().expect("builds").formatted();

    let parsed = MessageParser::default().parse(&raw).expect("parses");
    assert_eq!(parsed.subject(), Some(m.email.subject.as_str()), "UTF-8 subject survives encoding");
    assert!(m.email.subject.contains("wartet noch auf Sie"));
    assert_eq!(parsed.message_id(), Some("0f3a9c@cartback"));
    assert!(parsed.date().is_some(), "Date header");
    let from = parsed.from().and_then(|a| a.first()).expect("From");
    assert_eq!((from.name(), from.address()), (Some("Demo Shop"), Some("shop@example.com")));
    let reply = parsed.reply_to().and_then(|a| a.first()).expect("Reply-To");
    assert_eq!(reply.address(), Some("hilfe@example.com"));
    // Long headers are folded (CRLF + space); unfold as a reader does.
    let header = |name: &str| parsed.header_raw(name).map(|v| v.replace("\r\n", "").trim().to_owned());
    assert_eq!(
        header("List-Unsubscribe").as_deref(),
        Some("<https://recover.example/u/TOKEN>, <mailto:unsubscribe@example.com?subject=unsubscribe>")
    );
    assert_eq!(header("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    let ct = parsed.content_type().expect("content type");
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("alternative")));
    assert_eq!((parsed.text_body.len(), parsed.html_body.len()), (1, 1));
    let text = parsed.body_text(0).expect("text part");
    let html = parsed.body_html(0).expect("html part");
    assert_eq!(text.replace("\r\n", "\n").trim_end(), m.email.text.trim_end(), "text part round-trips");
    assert!(html.contains("Zurück zum Warenkorb") && html.contains("129,90\u{a0}€"), "HTML part");
}

fn toml_shop(text: &str) -> cartback::config::ShopSettings {
    let v: toml_value::Shop = text.parse().expect("shop toml");
    v.0
}

/// Parse a `[shops.x]` body through figment, as `cartback.toml` is parsed.
mod toml_value {
    pub struct Shop(pub cartback::config::ShopSettings);

    impl std::str::FromStr for Shop {
        type Err = figment::Error;
        fn from_str(s: &str) -> Result<Self, Self::Err> {
            use figment::providers::Format;
            figment::Figment::from(figment::providers::Toml::string(s)).extract().map(Shop)
        }
    }
}
