//! Customer links: `/r/{token}` (restore) and `/u/{token}` (unsubscribe, RFC 8058 one-click).
//!
//! Customers never see an error page from a server fault here: every failure is a short,
//! friendly page with a way forward.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;

use crate::app::App;
use crate::links::{Purpose, TokenError};
use crate::store::{CartStatus, SendRow};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>body{{font-family:-apple-system,Segoe UI,Roboto,sans-serif;max-width:32rem;margin:4rem auto;\
         padding:0 1rem;color:#18181b;line-height:1.5}}a,button{{color:#fff;background:#18181b;padding:.6rem 1rem;border-radius:6px;\
         text-decoration:none;border:0;font-size:1rem;cursor:pointer}}</style></head><body><h1>{t}</h1>{body_html}</body></html>",
        t = escape(title)
    );
    let mut resp = (status, Html(html)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    resp
}

fn shop_link(app: &App, shop: &str) -> String {
    match app.shop(shop).and_then(|s| s.url.clone()) {
        Some(url) => format!("<p><a href=\"{}\">Go to the shop</a></p>", escape(&url)),
        None => String::new(),
    }
}

fn token_page(e: TokenError) -> Response {
    match e {
        TokenError::Expired => page(
            StatusCode::GONE,
            "This link has expired",
            "<p>Links in our emails stay valid for a while, and this one has run out. Your items may still be in your cart at the shop.</p>",
        ),
        TokenError::Invalid => page(
            StatusCode::NOT_FOUND,
            "This link doesn't work",
            "<p>The link may have been cut short when it was copied. Please use the button in the message you received.</p>",
        ),
    }
}

fn trouble() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Something went wrong on our side",
        "<p>Please try the link again in a minute.</p>",
    )
}

async fn send_for(app: &App, purpose: Purpose, token: &str) -> Result<SendRow, Response> {
    let claims = app.keys.verify(purpose, token, Utc::now().timestamp()).map_err(token_page)?;
    let mut tx = app.db.begin().await.map_err(|e| {
        tracing::error!(error = %e, "link lookup failed");
        trouble()
    })?;
    let send = tx.send_by_public_id(&claims.send_public_id).await.map_err(|_| trouble())?;
    tx.commit().await.map_err(|_| trouble())?;
    send.ok_or_else(|| token_page(TokenError::Invalid))
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
    {
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
pub async fn restore(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let send = match send_for(&app, Purpose::Restore, &token).await {
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
            return Ok(token_page(TokenError::Invalid));
        };
        tx.log(cart.id, now, "click", &format!("restore link of {}/{}", send.step, send.channel)).await?;
        tx.commit().await?;
        tracing::info!(cart = cart.id, step = %send.step, channel = %send.channel, "restore click");
        if cart.status()? == CartStatus::Recovered {
            return Ok(page(
                StatusCode::OK,
                "You've already completed this order",
                &format!("<p>Thank you! There's nothing left to do for this cart.</p>{}", shop_link(&app, &cart.shop)),
            ));
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
            None => page(
                StatusCode::OK,
                "Your cart is waiting at the shop",
                &format!("<p>Sign in at the shop to find your saved items.</p>{}", shop_link(&app, &cart.shop)),
            ),
        })
    }
    .await;
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "restore failed");
        trouble()
    })
}

/// Show the unsubscribe confirmation (a GET must not change anything: mail scanners follow links).
pub async fn unsubscribe_page(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    match send_for(&app, Purpose::Unsubscribe, &token).await {
        Ok(_) => page(
            StatusCode::OK,
            "Unsubscribe?",
            "<p>You'll no longer receive reminders about carts from this shop.</p><form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>",
        ),
        Err(page) => page,
    }
}

/// RFC 8058 one-click unsubscribe; takes effect before the response.
#[tracing::instrument(skip_all)]
pub async fn unsubscribe(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let send = match send_for(&app, Purpose::Unsubscribe, &token).await {
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
            if !cart.status()?.is_final() {
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
        Ok(()) => page(
            StatusCode::OK,
            "You're unsubscribed",
            "<p>You won't receive any more cart reminders from this shop.</p>",
        ),
        Err(e) => {
            tracing::error!(error = %e, "unsubscribe failed");
            trouble()
        }
    }
}
