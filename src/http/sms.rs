//! `POST /v1/sms/status`: delivery status callbacks from a Twilio-compatible provider,
//! verified with `X-Twilio-Signature` (HMAC-SHA1 with the auth token, constant-time).

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Problem;
use crate::app::App;
use crate::ingest::signature::verify_twilio;

/// Update the send log from a status callback (`MessageSid`, `MessageStatus`, `ErrorCode`).
#[tracing::instrument(skip_all)]
pub async fn status(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    let Some(token) = app.settings.sms.auth_token.as_ref() else {
        return Problem::new(StatusCode::NOT_FOUND, "Not configured", "no SMS provider is configured").into_response();
    };
    let url = format!("{}/v1/sms/status", app.public_base);
    let sig = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok());
    if !verify_twilio(token.expose(), &url, &params, sig) {
        return Problem::new(StatusCode::UNAUTHORIZED, "Invalid signature", "X-Twilio-Signature does not match")
            .into_response();
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
        if let Some(send) = tx.send_by_message_ref(&format!("twilio {sid}")).await? {
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
