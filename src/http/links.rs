//! Customer links: `/r/{token}` (restore) and `/u/{token}` (unsubscribe, RFC 8058 one-click).
//!
//! Customers never see an error page from a server fault here: every failure is a short,
//! friendly page with a way forward.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;

use crate::app::App;
use crate::domain::Locale;
use crate::links::feedback::{Reported, SCANNER_BURST_MS};
use crate::links::{Purpose, TokenError};
use crate::store::{CartRow, CartStatus, SendRow};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Which page a customer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Expired,
    Invalid,
    Trouble,
    Recovered,
    NoRestore,
    UnsubscribeConfirm,
    Unsubscribed,
    Thanks(Reported),
}

impl Page {
    fn name(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Invalid => "invalid",
            Self::Trouble => "trouble",
            Self::Recovered => "recovered",
            Self::NoRestore => "no_restore",
            Self::UnsubscribeConfirm => "unsubscribe_confirm",
            Self::Unsubscribed => "unsubscribed",
            Self::Thanks(r) => match r {
                Reported::ShippingCost => "thanks_shipping_cost",
                Reported::Price => "thanks_price",
                Reported::Payment => "thanks_payment",
                Reported::DeliveryTime => "thanks_delivery_time",
                Reported::JustBrowsing => "thanks_just_browsing",
            },
        }
    }
    fn status(self) -> StatusCode {
        match self {
            Self::Expired => StatusCode::GONE,
            Self::Invalid => StatusCode::NOT_FOUND,
            Self::Trouble => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::OK,
        }
    }
    /// The last resort when the templates cannot render: plain English.
    fn fallback(self) -> &'static str {
        match self {
            Self::Expired => "<h1>This link has expired</h1><p>Your items may still be in your cart at the shop.</p>",
            Self::Invalid => "<h1>This link doesn't work</h1><p>Please use the button in the message you received.</p>",
            Self::Trouble => "<h1>Something went wrong on our side</h1><p>Please try the link again in a minute.</p>",
            Self::Recovered => "<h1>You've already completed this order</h1><p>Thank you!</p>",
            Self::NoRestore => {
                "<h1>Your cart is waiting at the shop</h1><p>Sign in at the shop to find your saved items.</p>"
            }
            Self::UnsubscribeConfirm => {
                "<h1>Unsubscribe?</h1><form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>"
            }
            Self::Unsubscribed => "<h1>You're unsubscribed</h1>",
            Self::Thanks(_) => "<h1>Thanks for telling us</h1>",
        }
    }
}

/// Who is looking: the cart's locale and shop when the link identifies a cart, else the
/// browser's preferred language.
struct Viewer {
    locale: Locale,
    shop: Option<String>,
}

impl Viewer {
    fn from_headers(headers: &HeaderMap) -> Self {
        // `Accept-Language: de-AT,de;q=0.9,en;q=0.8`: the first tag that parses (browsers list by preference).
        let locale = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').find_map(|tag| Locale::parse(tag.split(';').next().unwrap_or_default()).ok()))
            .unwrap_or_else(Locale::en);
        Self { locale, shop: None }
    }

    fn of_cart(app: &App, cart: &CartRow) -> Self {
        let shop_locale = app.shop(&cart.shop).map_or_else(Locale::en, |s| s.locale.clone());
        let locale = cart
            .locale
            .as_deref()
            .or(cart.cart_locale.as_deref())
            .and_then(|l| Locale::parse(l).ok())
            .unwrap_or(shop_locale);
        Self { locale, shop: Some(cart.shop.clone()) }
    }
}

fn page(app: &App, viewer: &Viewer, kind: Page) -> Response {
    page_with(app, viewer, kind, None)
}

fn page_with(app: &App, viewer: &Viewer, kind: Page, restore_url: Option<&str>) -> Response {
    let shop = viewer.shop.as_deref().and_then(|s| app.shop(s));
    let chain = viewer.locale.fallback_chain(&shop.map_or_else(Locale::en, |s| s.locale.clone()));
    let body = app.renderer.page(
        &chain,
        kind.name(),
        shop.map(|s| s.name.as_str()),
        shop.and_then(|s| s.url.as_deref()),
        restore_url,
    );
    let (lang, body) = match body {
        Ok(b) => (chain.iter().find(|l| app.renderer.has_page(l.as_str())).map_or("en".into(), |l| l.to_string()), b),
        Err(e) => {
            tracing::error!(error = %e, page = kind.name(), "page template failed; showing the built-in English page");
            ("en".to_owned(), kind.fallback().to_owned())
        }
    };
    let title = shop.map_or_else(String::new, |s| escape(&s.name));
    let html = format!(
        "<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:-apple-system,Segoe UI,Roboto,'Hiragino Sans','Microsoft YaHei',sans-serif;max-width:32rem;margin:4rem auto;\
         padding:0 1rem;color:#18181b;line-height:1.5}}a,button{{color:#fff;background:#18181b;padding:.6rem 1rem;border-radius:6px;\
         text-decoration:none;border:0;font-size:1rem;cursor:pointer;display:inline-block}}</style></head><body>{body}</body></html>"
    );
    let mut resp = (kind.status(), Html(html)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::VARY, header::HeaderValue::from_static("Accept-Language"));
    resp
}

fn token_page(app: &App, viewer: &Viewer, e: TokenError) -> Response {
    match e {
        TokenError::Expired => page(app, viewer, Page::Expired),
        TokenError::Invalid => page(app, viewer, Page::Invalid),
    }
}

async fn send_for(
    app: &App,
    headers: &HeaderMap,
    purpose: Purpose,
    token: &str,
) -> Result<(SendRow, Viewer), Response> {
    let anonymous = Viewer::from_headers(headers);
    let claims = app.keys.verify(purpose, token, Utc::now().timestamp()).map_err(|e| token_page(app, &anonymous, e))?;
    let found: Result<_, crate::store::StoreError> = async {
        let mut tx = app.db.begin().await?;
        let send = tx.send_by_public_id(&claims.send_public_id).await?;
        let cart = match &send {
            Some(s) => tx.cart_by_id(s.cart_id).await?,
            None => None,
        };
        tx.commit().await?;
        Ok((send, cart))
    }
    .await;
    match found {
        Ok((Some(send), Some(cart))) => {
            let viewer = Viewer::of_cart(app, &cart);
            Ok((send, viewer))
        }
        Ok(_) => Err(token_page(app, &anonymous, TokenError::Invalid)),
        Err(e) => {
            tracing::error!(error = %e, "link lookup failed");
            Err(page(app, &anonymous, Page::Trouble))
        }
    }
}

/// The shop's restore URL with the incentive code applied (when the shop names a parameter
/// for it) and the campaign's UTM parameters.
pub fn restore_target(
    url: &str,
    code: Option<&(String, String)>,
    utm: Option<&(String, crate::campaign::Utm)>,
    channel: &str,
    step: &str,
) -> String {
    let Ok(mut u) = reqwest::Url::parse(url) else { return url.to_owned() };
    // `query_pairs_mut` adds a `?` even when nothing is appended: the shop's URL stays as it is.
    if code.is_some() || utm.is_some() {
        let mut q = u.query_pairs_mut();
        if let Some((param, code)) = code {
            q.append_pair(param, code);
        }
        if let Some((campaign, utm)) = utm {
            q.append_pair("utm_source", &utm.source);
            q.append_pair("utm_medium", channel);
            q.append_pair("utm_campaign", utm.campaign.as_deref().unwrap_or(campaign));
            q.append_pair("utm_content", step);
        }
    }
    u.to_string()
}

/// Record the click and send the customer back to their cart.
#[tracing::instrument(skip_all)]
pub async fn restore(State(app): State<Arc<App>>, Path(token): Path<String>, headers: HeaderMap) -> Response {
    let (send, viewer) = match send_for(&app, &headers, Purpose::Restore, &token).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let result: Result<Response, crate::store::StoreError> = async {
        let mut tx = app.db.begin().await?;
        let now = Utc::now().timestamp_millis();
        tx.record_click(send.id, now).await?;
        let cart = tx.cart_by_id(send.cart_id).await?;
        let Some(cart) = cart else {
            tx.commit().await?;
            return Ok(token_page(&app, &viewer, TokenError::Invalid));
        };
        tx.log(cart.id, now, "click", &format!("restore link of {}/{}", send.step, send.channel)).await?;
        tx.commit().await?;
        tracing::info!(cart = cart.id, step = %send.step, channel = %send.channel, "restore click");
        if cart.status() == CartStatus::Recovered {
            return Ok(page(&app, &viewer, Page::Recovered));
        }
        let code = match app.shop(&cart.shop).and_then(|s| s.restore_code_param.clone()) {
            Some(param) => {
                let mut tx = app.db.begin().await?;
                let code = tx.latest_incentive(cart.id).await?.filter(|(_, exp)| *exp > now).map(|(c, _)| (param, c));
                tx.commit().await?;
                code
            }
            None => None,
        };
        let utm = cart
            .campaign
            .as_deref()
            .and_then(|c| app.campaigns().get(c).and_then(|c| c.utm.clone().map(|u| (c.name.value.clone(), u))));
        Ok(match cart.restore_url.as_deref() {
            Some(url) => {
                let target = restore_target(url, code.as_ref(), utm.as_ref(), &send.channel, &send.step);
                (StatusCode::SEE_OTHER, [(header::LOCATION, target)]).into_response()
            }
            None => page(&app, &viewer, Page::NoRestore),
        })
    }
    .await;
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "restore failed");
        page(&app, &viewer, Page::Trouble)
    })
}

/// Show the unsubscribe confirmation (a GET must not change anything: mail scanners follow links).
pub async fn unsubscribe_page(State(app): State<Arc<App>>, Path(token): Path<String>, headers: HeaderMap) -> Response {
    match send_for(&app, &headers, Purpose::Unsubscribe, &token).await {
        Ok((_, viewer)) => page(&app, &viewer, Page::UnsubscribeConfirm),
        Err(page) => page,
    }
}

/// RFC 8058 one-click unsubscribe; takes effect before the response.
#[tracing::instrument(skip_all)]
pub async fn unsubscribe(State(app): State<Arc<App>>, Path(token): Path<String>, headers: HeaderMap) -> Response {
    let (send, viewer) = match send_for(&app, &headers, Purpose::Unsubscribe, &token).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let result: Result<(), crate::store::StoreError> = async {
        let mut tx = app.db.begin().await?;
        let now = Utc::now().timestamp_millis();
        if let Some(mut cart) = tx.cart_by_id(send.cart_id).await? {
            let address = if send.channel == "sms" { cart.phone.clone() } else { cart.email.clone() };
            if let Some(a) = address {
                tx.suppress(&cart.shop, &send.channel, &a, "unsubscribed", now).await?;
            }
            if !cart.status().is_final() {
                cart.set_status(CartStatus::Unsubscribed);
                cart.exit_reason = Some("unsubscribed".into());
                tx.save_cart(&cart).await?;
            }
            tx.log(cart.id, now, "unsubscribed", &format!("via the {} link of {}", send.channel, send.step)).await?;
        }
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => page(&app, &viewer, Page::Unsubscribed),
        Err(e) => {
            tracing::error!(error = %e, "unsubscribe failed");
            page(&app, &viewer, Page::Trouble)
        }
    }
}

/// `?reason=` of a feedback link.
#[derive(Debug, serde::Deserialize)]
pub struct FeedbackQuery {
    reason: Option<String>,
}

/// "What stopped you?": record the tapped answer and answer with the fitting help and a way
/// back to the cart. A person taps one answer; a mail scanner that opens every link within
/// seconds is recognised by its several different answers, and none of them counts.
#[tracing::instrument(skip_all)]
pub async fn feedback(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    axum::extract::Query(q): axum::extract::Query<FeedbackQuery>,
    headers: HeaderMap,
) -> Response {
    let (send, viewer) = match send_for(&app, &headers, Purpose::Feedback, &token).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let Some(reason) = q.reason.as_deref().and_then(Reported::parse) else {
        return page(&app, &viewer, Page::Invalid);
    };
    let result: Result<(), crate::store::StoreError> = async {
        let mut tx = app.db.begin().await?;
        let now = Utc::now().timestamp_millis();
        let distinct = tx.record_feedback(send.id, reason.as_str(), now, SCANNER_BURST_MS).await?;
        if let Some(mut cart) = tx.cart_by_id(send.cart_id).await? {
            if distinct > 1 {
                cart.reported_reason = None;
                tx.log(cart.id, now, "feedback", "several answers within seconds: a link scanner, not counted").await?;
            } else {
                cart.reported_reason = Some(reason.as_str().to_owned());
                tx.log(
                    cart.id,
                    now,
                    "feedback",
                    &format!("the customer says: {} (via {})", reason.as_str(), send.step),
                )
                .await?;
            }
            tx.save_cart(&cart).await?;
        }
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "recording feedback failed");
        return page(&app, &viewer, Page::Trouble);
    }
    let exp = Utc::now().timestamp() + i64::try_from(app.settings.link_ttl.as_secs()).unwrap_or(0);
    let restore = format!("{}/r/{}", app.public_base, app.keys.sign(Purpose::Restore, &send.public_id, exp));
    page_with(&app, &viewer, Page::Thanks(reason), Some(&restore))
}

#[cfg(test)]
mod tests {
    use super::restore_target;

    #[test]
    fn a_restore_target_with_nothing_to_add_is_the_shops_url() {
        let url = "https://shop.example/cart/recover";
        assert_eq!(restore_target(url, None, None, "email", "reminder"), url);
        let code = ("discount".to_owned(), "SAVE10".to_owned());
        assert_eq!(
            restore_target(url, Some(&code), None, "email", "reminder"),
            "https://shop.example/cart/recover?discount=SAVE10"
        );
        assert_eq!(
            restore_target("https://shop.example/r?key=a", Some(&code), None, "email", "reminder"),
            "https://shop.example/r?key=a&discount=SAVE10"
        );
    }
}
