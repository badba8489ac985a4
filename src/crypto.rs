//! The keyed hashes every signature in Cartback is made of: webhook signatures (both ways),
//! link tokens and the dashboard's session. Below every other module: it knows no Cartback type.
//!
//! Comparisons are constant-time (`Mac::verify_slice`, `verify_truncated_left`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Standard Webhooks: timestamps further than this from now (either way) are refused, against
/// replay.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// The Standard Webhooks `webhook-signature` value for a message (`v1,<base64>` of the
/// HMAC-SHA256 of `id.timestamp.body`): what shops send Cartback, and what Cartback sends
/// shops.
pub fn sign_webhook(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    format!("v1,{}", B64.encode(hmac_sha256(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body])))
}

/// A secret that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// `whsec_` followed by something that is not base64.
    #[error("secrets starting with whsec_ must be base64 after the prefix")]
    NotBase64,
    /// Too short to be a secret.
    #[error("webhook secrets must be at least 16 bytes")]
    TooShort,
}

/// The HMAC key for a configured secret: `whsec_<base64>` per Standard Webhooks, else the raw bytes.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, SecretError> {
    let key = match secret.strip_prefix("whsec_") {
        Some(b64) => B64.decode(b64).map_err(|_| SecretError::NotBase64)?,
        None => secret.as_bytes().to_vec(),
    };
    if key.len() < 16 { Err(SecretError::TooShort) } else { Ok(key) }
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// HMAC-SHA256 of `parts` concatenated, as raw bytes.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = mac(key);
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// Lower-case hex of `bytes`: how digests and random ids appear in text.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Constant-time check of a raw HMAC-SHA256 over `parts`.
pub fn verify_hmac(key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
    let mut m = mac(key);
    for p in parts {
        m.update(p);
    }
    m.verify_slice(expected).is_ok()
}

/// Constant-time check of the leftmost bytes of an HMAC-SHA256 (link tokens carry 128 bits).
pub fn verify_hmac_truncated(key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
    let mut m = mac(key);
    for p in parts {
        m.update(p);
    }
    expected.len() >= 16 && m.verify_truncated_left(expected).is_ok()
}
