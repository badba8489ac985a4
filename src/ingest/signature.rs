//! Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
//!
//! Written on `hmac`/`sha2` rather than the `standardwebhooks` crate: the scheme is a few
//! lines, we need the same HMAC for Shopify and link tokens, and the crate would add a
//! second base64, the `time` crate and another SHA-256 implementation to the build.
//! Comparison is constant-time (`Mac::verify_slice`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};

pub use crate::crypto::{SecretError, hmac_sha256, secret_key, verify_hmac, verify_hmac_truncated};

pub use crate::crypto::TOLERANCE_SECS;

/// Why a signature was refused. Each maps to `401`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// A required header is absent or not text.
    #[error("missing or unreadable {0} header")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not an integer.
    #[error("webhook-timestamp is not a Unix timestamp in seconds")]
    BadTimestamp,
    /// Older than the tolerance.
    #[error("webhook-timestamp is more than 5 minutes old")]
    TooOld,
    /// Newer than the tolerance.
    #[error("webhook-timestamp is more than 5 minutes in the future")]
    TooNew,
    /// No `v1` signature matched.
    #[error("no valid v1 signature in webhook-signature")]
    Mismatch,
}

/// Twilio's `X-Twilio-Signature`: base64 HMAC-SHA1 of the full URL followed by every POST
/// parameter's name and value, sorted by name, keyed with the auth token.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_owned();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut m = <Hmac<sha1::Sha1> as Mac>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(data.as_bytes());
    B64.encode(m.finalize().into_bytes())
}

/// Constant-time check of `X-Twilio-Signature`.
pub fn verify_twilio(auth_token: &str, url: &str, params: &[(String, String)], header: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    let expected = twilio_signature(auth_token, url, params);
    header.is_some_and(|h| bool::from(h.trim().as_bytes().ct_eq(expected.as_bytes())))
}

pub use crate::crypto::sign_webhook as sign;

/// What a shop signs for a request that is not a webhook delivery (the customer erase): the
/// method, the path as Cartback receives it, a newline, then the body. Standard Webhooks signs
/// only `id.timestamp.body`, which would let a signed `DELETE …/customers/A` be replayed
/// against `…/customers/B`; any Standard Webhooks library signs this payload unchanged.
pub fn request_payload(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(method.len() + path.len() + 2 + body.len());
    payload.extend_from_slice(method.to_ascii_uppercase().as_bytes());
    payload.push(b' ');
    payload.extend_from_slice(path.as_bytes());
    payload.push(b'\n');
    payload.extend_from_slice(body);
    payload
}

/// Verify a Standard Webhooks delivery at time `now` (Unix seconds).
pub fn verify(
    key: &[u8],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let id = id.ok_or(SignatureError::MissingHeader("webhook-id"))?;
    let ts_text = timestamp.ok_or(SignatureError::MissingHeader("webhook-timestamp"))?;
    let signatures = signatures.ok_or(SignatureError::MissingHeader("webhook-signature"))?;
    let ts: i64 = ts_text.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    if now - ts > TOLERANCE_SECS {
        return Err(SignatureError::TooOld);
    }
    if ts - now > TOLERANCE_SECS {
        return Err(SignatureError::TooNew);
    }
    let parts: [&[u8]; 5] = [id.as_bytes(), b".", ts_text.trim().as_bytes(), b".", body];
    let ok = signatures
        .split(' ')
        .filter_map(|s| s.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, sig)| B64.decode(sig).ok())
        .any(|sig| verify_hmac(key, &parts, &sig));
    if ok { Ok(()) } else { Err(SignatureError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector published with the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn key() -> Vec<u8> {
        secret_key(SECRET).expect("valid secret")
    }

    #[test]
    fn published_vector_signs_and_verifies() {
        assert_eq!(sign(&key(), ID, TS, BODY), SIG);
        let ts = TS.to_string();
        assert_eq!(verify(&key(), Some(ID), Some(&ts), Some(SIG), BODY, TS), Ok(()));
        // Several signatures, one valid (key rotation on the sender's side).
        let many = format!("v1,Zm9v {SIG}");
        assert_eq!(verify(&key(), Some(ID), Some(&ts), Some(&many), BODY, TS + 10), Ok(()));
    }

    #[test]
    fn tampering_and_replay_are_refused() {
        let ts = TS.to_string();
        let k = key();
        assert_eq!(
            verify(&k, Some(ID), Some(&ts), Some(SIG), br#"{"test": 2432232315}"#, TS),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(&k, Some("msg_other"), Some(&ts), Some(SIG), BODY, TS), Err(SignatureError::Mismatch));
        assert_eq!(verify(&k, Some(ID), Some(&ts), Some("v2,abc"), BODY, TS), Err(SignatureError::Mismatch));
        assert_eq!(verify(&k, Some(ID), Some(&ts), Some(SIG), BODY, TS + 301), Err(SignatureError::TooOld));
        assert_eq!(verify(&k, Some(ID), Some(&ts), Some(SIG), BODY, TS - 301), Err(SignatureError::TooNew));
        assert_eq!(verify(&k, None, Some(&ts), Some(SIG), BODY, TS), Err(SignatureError::MissingHeader("webhook-id")));
        assert_eq!(verify(&k, Some(ID), Some("soon"), Some(SIG), BODY, TS), Err(SignatureError::BadTimestamp));
        let wrong = secret_key("another-secret-of-enough-length").expect("raw secret");
        assert_eq!(verify(&wrong, Some(ID), Some(&ts), Some(SIG), BODY, TS), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_signed_request_covers_its_method_and_path() {
        let k = key();
        let ts = TS.to_string();
        let path = "/v1/shops/s/customers/cu_1";
        let sig = sign(&k, ID, TS, &request_payload("DELETE", path, b""));
        let check = |method: &str, path: &str, body: &[u8]| {
            verify(&k, Some(ID), Some(&ts), Some(&sig), &request_payload(method, path, body), TS)
        };
        assert_eq!(check("DELETE", path, b""), Ok(()));
        assert_eq!(check("DELETE", "/v1/shops/s/customers/cu_2", b""), Err(SignatureError::Mismatch));
        assert_eq!(check("GET", path, b""), Err(SignatureError::Mismatch));
        assert_eq!(check("DELETE", path, b"{}"), Err(SignatureError::Mismatch));
        // The old form (the empty body alone) no longer authorises anything.
        let bare = sign(&k, ID, TS, b"");
        assert_eq!(
            verify(&k, Some(ID), Some(&ts), Some(&bare), &request_payload("DELETE", path, b""), TS),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn twilio_documented_example() {
        // The example from Twilio's webhook-security documentation.
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(twilio_signature("12345", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify_twilio("12345", url, &params, Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ=")));
        assert!(!verify_twilio("12345", url, &params[1..], Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ=")));
        assert!(!verify_twilio("12345", url, &params, None));
    }

    #[test]
    fn secrets_are_checked() {
        assert_eq!(secret_key("whsec_!!!"), Err(SecretError::NotBase64));
        assert_eq!(secret_key("short"), Err(SecretError::TooShort));
    }
}
