//! SMS transports: a file outbox (one JSON document per message) and any Twilio-compatible
//! Messages API (`POST {api_base}/2010-04-01/Accounts/{sid}/Messages.json`, form-encoded,
//! HTTP basic auth, `201` with a `sid`).

use crate::domain::Receipt;
use std::path::PathBuf;
use std::time::Duration;

use super::{DeliveryError, write_atomically};
use crate::config::Secret;
use crate::domain::Phone;

/// One SMS ready to go.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutgoingSms {
    /// The send-log public id.
    pub id: String,
    /// Sender.
    pub from: String,
    /// Recipient in E.164.
    #[serde(serialize_with = "phone_str")]
    pub to: Phone,
    /// Text.
    pub body: String,
}

fn phone_str<S: serde::Serializer>(p: &Phone, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

/// A Twilio-compatible provider.
#[derive(Clone)]
pub struct Twilio {
    /// HTTP client (rustls, ring).
    pub client: reqwest::Client,
    /// API base, e.g. `https://api.twilio.com`.
    pub api_base: String,
    /// Account SID.
    pub account_sid: String,
    /// Auth token.
    pub auth_token: Secret,
    /// Messaging service (used instead of `From` when set).
    pub messaging_service_sid: Option<String>,
    /// Where the provider posts delivery status.
    pub status_callback: Option<String>,
    /// The header that carries the send id for providers that deduplicate on it.
    pub idempotency_header: Option<reqwest::header::HeaderName>,
}

/// Where SMS go.
#[derive(Clone)]
pub enum SmsTransport {
    /// `<dir>/<id>.json`, written atomically.
    File(PathBuf),
    /// A Twilio-compatible Messages API.
    Twilio(Box<Twilio>),
}

impl std::fmt::Debug for SmsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "SmsTransport::File({})", p.display()),
            Self::Twilio(t) => write!(f, "SmsTransport::Twilio({})", t.api_base),
        }
    }
}

#[derive(serde::Deserialize)]
struct ApiError {
    code: Option<i64>,
    message: Option<String>,
}

#[derive(serde::Deserialize)]
struct Created {
    sid: String,
}

/// The provider's error codes Cartback treats specially.
pub fn classify(http: u16, code: Option<i64>, message: &str, retry_after: Option<Duration>) -> DeliveryError {
    let what = match code {
        Some(c) => format!("provider error {c}: {message}"),
        None => format!("provider answered HTTP {http}: {message}"),
    };
    match (code, http) {
        (Some(21610), _) => DeliveryError::Unsubscribed(what),
        (Some(21211 | 21408 | 21612 | 21614), _) => DeliveryError::Permanent(what),
        (Some(20429), _) | (_, 429) => DeliveryError::Throttled(what, retry_after),
        // Cartback's credentials (or the account) are refused: the operator's to fix, and
        // the messages wait for it with backoff rather than fail.
        (Some(20003), _) | (_, 401) => DeliveryError::CredentialsRefused(format!(
            "{what}; the provider refuses Cartback's credentials: check sms.account_sid and sms.auth_token"
        )),
        (_, 500..=599) => DeliveryError::Transient(what),
        _ => DeliveryError::Permanent(what),
    }
}

impl SmsTransport {
    /// A Twilio-compatible transport.
    pub fn twilio(
        api_base: &str,
        account_sid: String,
        auth_token: Secret,
        messaging_service_sid: Option<String>,
        status_callback: Option<String>,
        idempotency_header: Option<reqwest::header::HeaderName>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Self::Twilio(Box::new(Twilio {
            client,
            api_base: api_base.trim_end_matches('/').to_owned(),
            account_sid,
            auth_token,
            messaging_service_sid,
            status_callback,
            idempotency_header,
        })))
    }

    /// Whether delivering the same message twice has one effect: the file outbox rewrites
    /// the same file; a provider deduplicates on the idempotency header when one is configured.
    pub fn idempotent(&self) -> bool {
        match self {
            Self::File(_) => true,
            Self::Twilio(t) => t.idempotency_header.is_some(),
        }
    }

    /// Deliver; returns where it went (the outbox file, or the provider's message id).
    pub async fn send(&self, sms: &OutgoingSms) -> Result<Receipt, DeliveryError> {
        match self {
            Self::File(dir) => {
                let json = serde_json::to_vec_pretty(sms).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
                let path = write_atomically(dir, &format!("{}.json", sms.id), &json).await?;
                Ok(Receipt::File(path))
            }
            Self::Twilio(t) => {
                let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", t.api_base, t.account_sid);
                let mut form: Vec<(&str, &str)> = vec![("To", sms.to.as_str()), ("Body", &sms.body)];
                match &t.messaging_service_sid {
                    Some(ms) => form.push(("MessagingServiceSid", ms)),
                    None => form.push(("From", &sms.from)),
                }
                if let Some(cb) = &t.status_callback {
                    form.push(("StatusCallback", cb));
                }
                let mut request =
                    t.client.post(&url).basic_auth(&t.account_sid, Some(t.auth_token.expose())).form(&form);
                if let Some(h) = &t.idempotency_header {
                    request = request.header(h, &sms.id);
                }
                let resp = request
                    .send()
                    .await
                    .map_err(|e| DeliveryError::Transient(format!("SMS provider unreachable: {e}")))?;
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let text = resp.text().await.map_err(|e| DeliveryError::Transient(format!("SMS provider: {e}")))?;
                if (200..300).contains(&status) {
                    let created: Created = serde_json::from_str(&text).map_err(|_| {
                        DeliveryError::Transient(format!("SMS provider answered {status} without a sid"))
                    })?;
                    return Ok(Receipt::twilio(&created.sid));
                }
                let err: Option<ApiError> = serde_json::from_str(&text).ok();
                let code = err.as_ref().and_then(|e| e.code);
                let message = err.and_then(|e| e.message).unwrap_or_else(|| text.chars().take(200).collect());
                Err(classify(status, code, &message, retry_after))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_errors_are_classified_by_code() {
        assert!(matches!(classify(400, Some(21211), "invalid To", None), DeliveryError::Permanent(_)));
        assert!(matches!(classify(400, Some(21610), "unsubscribed", None), DeliveryError::Unsubscribed(_)));
        for c in [21408, 21612, 21614] {
            assert!(matches!(classify(400, Some(c), "x", None), DeliveryError::Permanent(_)), "{c}");
        }
        assert!(
            matches!(classify(429, Some(20429), "slow down", Some(Duration::from_secs(7))), DeliveryError::Throttled(_, Some(d)) if d.as_secs() == 7)
        );
        assert!(matches!(classify(429, None, "slow down", None), DeliveryError::Throttled(_, None)));
        assert!(matches!(classify(503, None, "unavailable", None), DeliveryError::Transient(_)));
        assert!(
            matches!(classify(401, Some(20003), "auth", None), DeliveryError::CredentialsRefused(t) if t.contains("sms.auth_token"))
        );
        assert!(matches!(classify(401, None, "unauthorized", None), DeliveryError::CredentialsRefused(_)));
        assert!(matches!(classify(403, None, "forbidden", None), DeliveryError::Permanent(_)));
    }
}
