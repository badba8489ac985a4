//! SMS transports. The file outbox writes one JSON document per message.

use std::path::PathBuf;

use super::{DeliveryError, write_atomically};
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

/// Where SMS go.
#[derive(Debug, Clone)]
pub enum SmsTransport {
    /// `<dir>/<id>.json`, written atomically.
    File(PathBuf),
}

impl SmsTransport {
    /// Deliver; returns where it went.
    pub async fn send(&self, sms: &OutgoingSms) -> Result<String, DeliveryError> {
        match self {
            Self::File(dir) => {
                let json = serde_json::to_vec_pretty(sms).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
                let path = write_atomically(dir, &format!("{}.json", sms.id), &json).await?;
                Ok(path.display().to_string())
            }
        }
    }
}
