//! `POST /v1/sms/status`: delivery status callbacks from a Twilio-compatible provider,
//! verified with `X-Twilio-Signature` (HMAC-SHA1 with the auth token, constant-time).

use std::sync::Arc;

use axum::http::header;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Problem;
use crate::app::App;
use crate::ingest::signature::verify_twilio;

/// Checks `X-Twilio-Signature` for a callback posted to `path` (404 when no provider is configured).
fn verified(app: &App, path: &str, headers: &HeaderMap, params: &[(String, String)]) -> Result<(), Problem> {
    let Some(token) = app.settings.sms.auth_token.as_ref() else {
        return Err(Problem::new(StatusCode::NOT_FOUND, "Not configured", "no SMS provider is configured"));
    };
    let url = format!("{}{path}", app.public_base);
    let sig = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok());
    if verify_twilio(token.expose(), &url, params, sig) {
        Ok(())
    } else {
        Err(Problem::new(StatusCode::UNAUTHORIZED, "Invalid signature", "X-Twilio-Signature does not match"))
    }
}

/// Update the send log from a status callback (`MessageSid`, `MessageStatus`, `ErrorCode`).
#[tracing::instrument(skip_all)]
pub async fn status(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(p) = verified(&app, "/v1/sms/status", &headers, &params) {
        return p.into_response();
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (Some(sid), Some(status)) = (get("MessageSid"), get("MessageStatus")) else {
        return Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid callback",
            "MessageSid and MessageStatus are required",
        )
        .field("MessageSid")
        .into_response();
    };
    let code = get("ErrorCode").filter(|c| !c.is_empty() && *c != "0");
    let failure = matches!(status, "failed" | "undelivered")
        .then(|| format!("carrier reported {status}{}", code.map(|c| format!(" (error {c})")).unwrap_or_default()));
    let result: Result<(), crate::store::StoreError> = async {
        let mut tx = app.db.begin().await?;
        if let Some(send) = tx.send_by_message_ref(&crate::domain::Receipt::twilio(sid)).await? {
            tx.set_provider_status(send.id, status, failure.as_deref()).await?;
            let now = chrono::Utc::now().timestamp_millis();
            if let Some(f) = &failure {
                tx.log(send.cart_id, now, "failed", &format!("{}/{}: {f}", send.step, send.channel)).await?;
            }
            if code == Some("21610")
                && let Some(cart) = tx.cart_by_id(send.cart_id).await?
                && let Some(phone) = cart.phone
            {
                tx.suppress(&cart.shop, "sms", &phone, "unsubscribed at the provider", now).await?;
            }
        }
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => Problem::internal(&e).into_response(),
    }
}

/// What an inbound SMS asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT.
    Stop,
    /// START, UNSTOP, YES.
    Start,
    /// HELP, INFO.
    Help,
}

/// The carrier keywords, matched on the whole trimmed message, case-insensitively.
pub fn keyword(body: &str) -> Option<Keyword> {
    match body.trim().trim_end_matches(['.', '!']).to_ascii_uppercase().as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" => Some(Keyword::Stop),
        "START" | "UNSTOP" | "YES" => Some(Keyword::Start),
        "HELP" | "INFO" => Some(Keyword::Help),
        _ => None,
    }
}

fn twiml(message: Option<&str>) -> Response {
    let body = match message {
        Some(m) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
            m.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
        ),
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>".to_owned(),
    };
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

/// `POST /v1/sms/inbound`: STOP/START/HELP replies (Twilio's inbound webhook form, signature-verified).
#[tracing::instrument(skip_all)]
pub async fn inbound(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(p) = verified(&app, "/v1/sms/inbound", &headers, &params) {
        return p.into_response();
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(from) = get("From").and_then(|f| crate::domain::Phone::parse(f).ok()) else {
        return Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid message", "From must be a phone number")
            .field("From")
            .into_response();
    };
    let Some(kw) = get("Body").and_then(keyword) else { return twiml(None) };
    let now = chrono::Utc::now().timestamp_millis();
    let result: Result<Option<String>, crate::store::StoreError> = async {
        let mut tx = app.db.begin().await?;
        let reply = match kw {
            Keyword::Stop => {
                // One sender number serves every shop here: a STOP stops them all.
                for shop in app.shops.keys() {
                    tx.suppress(shop.as_str(), "sms", from.as_str(), "STOP reply", now).await?;
                }
                tracing::info!(from = %crate::domain::mask_phone(from.as_str()), "SMS opt-out");
                None // the provider sends the carrier's own confirmation
            }
            Keyword::Start => {
                tx.unsuppress_everywhere("sms", from.as_str()).await?;
                Some("You're subscribed to cart reminders again. Reply STOP to opt out.".to_owned())
            }
            Keyword::Help => {
                let names: Vec<&str> = app.shops.values().map(|s| s.name.as_str()).collect();
                Some(format!("{}: reminders about carts you left. Reply STOP to opt out.", names.join(", ")))
            }
        };
        tx.commit().await?;
        Ok(reply)
    }
    .await;
    match result {
        Ok(reply) => twiml(reply.as_deref()),
        Err(e) => Problem::internal(&e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carrier_keywords() {
        for k in ["STOP", "stop", " Stop. ", "STOPALL", "unsubscribe", "CANCEL", "end", "QUIT"] {
            assert_eq!(keyword(k), Some(Keyword::Stop), "{k}");
        }
        assert_eq!(keyword("start"), Some(Keyword::Start));
        assert_eq!(keyword("UNSTOP"), Some(Keyword::Start));
        assert_eq!(keyword("help"), Some(Keyword::Help));
        assert_eq!(keyword("please stop sending"), None, "only the whole message counts");
    }
}
