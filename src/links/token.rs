//! Link tokens: `<kid><base64url(purpose ‖ send id ‖ expiry ‖ mac)>`.
//!
//! * Signed with HMAC-SHA256 (truncated to 128 bits) under a key id, so keys rotate without
//!   breaking links already sent: every stored key verifies, the newest signs.
//! * Bound to one send (which is one cart, step and channel) by its random public id; no
//!   database id appears in a token.
//! * Expiring; verification is constant-time.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::crypto::{hmac_sha256, verify_hmac_truncated};
use crate::store::{Db, StoreError};

const KID_LEN: usize = 8;
const ID_LEN: usize = 16;
const MAC_LEN: usize = 16;
const PAYLOAD_LEN: usize = 1 + ID_LEN + 8;

/// What a link does; a token for one purpose never works for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Back to the cart.
    Restore = 1,
    /// Stop messages.
    Unsubscribe = 2,
    /// Answer "what stopped you?".
    Feedback = 3,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token at all, or signed by no key we know, or for another purpose.
    #[error("link is not valid")]
    Invalid,
    /// Valid but past its expiry.
    #[error("link has expired")]
    Expired,
}

/// The verified content of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The send's public id (hex).
    pub send_public_id: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

/// Signing keys: the newest signs, all verify.
#[derive(Clone)]
pub struct Keyring {
    current: String,
    keys: HashMap<String, Vec<u8>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("current", &self.current).field("keys", &self.keys.len()).finish()
    }
}

fn kid_of(key: &[u8]) -> String {
    crate::crypto::hex(&Sha256::digest(key)[..KID_LEN / 2])
}

/// Why the keyring could not be built.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The configured key is unusable.
    #[error("signing_key must be base64 of at least 32 bytes")]
    BadConfiguredKey,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Keyring {
    /// A keyring from raw keys, the first one signing (tests).
    pub fn from_keys(keys: &[Vec<u8>]) -> Self {
        let current = keys.first().map(|k| kid_of(k)).unwrap_or_default();
        Self { current, keys: keys.iter().map(|k| (kid_of(k), k.clone())).collect() }
    }

    /// The configured key (if any) signs; stored keys keep verifying. With no configured key,
    /// the newest stored key signs, and one is generated and stored on first start.
    pub async fn load(db: &Db, configured_b64: Option<&str>) -> Result<Self, KeyringError> {
        let mut tx = db.begin().await?;
        let mut stored = tx.signing_keys().await?;
        if stored.is_empty() && configured_b64.is_none() {
            let mut key = vec![0u8; 32];
            rand::rng().fill_bytes(&mut key);
            let b64 = B64.encode(&key);
            tx.insert_signing_key(&kid_of(&key), &b64, chrono::Utc::now().timestamp_millis()).await?;
            stored.push((kid_of(&key), b64));
        }
        tx.commit().await?;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        if let Some(cfg) = configured_b64 {
            let key = B64.decode(cfg.trim()).map_err(|_| KeyringError::BadConfiguredKey)?;
            if key.len() < 32 {
                return Err(KeyringError::BadConfiguredKey);
            }
            keys.push(key);
        }
        for (_, b64) in stored {
            keys.push(B64.decode(b64).map_err(|_| StoreError::Corrupt("signing key is not base64".into()))?);
        }
        Ok(Self::from_keys(&keys))
    }

    /// A token for `send_public_id` (32 hex chars) valid until `expires_at` (Unix seconds).
    pub fn sign(&self, purpose: Purpose, send_public_id: &str, expires_at: i64) -> String {
        let mut payload = Vec::with_capacity(PAYLOAD_LEN + MAC_LEN);
        payload.push(purpose as u8);
        let mut id = [0u8; ID_LEN];
        for (i, chunk) in send_public_id.as_bytes().chunks(2).take(ID_LEN).enumerate() {
            id[i] = std::str::from_utf8(chunk).ok().and_then(|h| u8::from_str_radix(h, 16).ok()).unwrap_or(0);
        }
        payload.extend_from_slice(&id);
        payload.extend_from_slice(&expires_at.to_be_bytes());
        let key = &self.keys[&self.current];
        let mac = hmac_sha256(key, &[self.current.as_bytes(), &payload]);
        payload.extend_from_slice(&mac[..MAC_LEN]);
        format!("{}{}", self.current, B64URL.encode(payload))
    }

    /// Check a token for `purpose` at `now` (Unix seconds).
    pub fn verify(&self, purpose: Purpose, token: &str, now: i64) -> Result<Claims, TokenError> {
        if token.len() <= KID_LEN || !token.is_char_boundary(KID_LEN) {
            return Err(TokenError::Invalid);
        }
        let (kid, rest) = token.split_at(KID_LEN);
        let key = self.keys.get(kid).ok_or(TokenError::Invalid)?;
        let raw = B64URL.decode(rest).map_err(|_| TokenError::Invalid)?;
        if raw.len() != PAYLOAD_LEN + MAC_LEN {
            return Err(TokenError::Invalid);
        }
        let (payload, mac) = raw.split_at(PAYLOAD_LEN);
        if !verify_hmac_truncated(key, &[kid.as_bytes(), payload], mac) {
            return Err(TokenError::Invalid);
        }
        if payload[0] != purpose as u8 {
            return Err(TokenError::Invalid);
        }
        let id = crate::crypto::hex(&payload[1..=ID_LEN]);
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&payload[1 + ID_LEN..]);
        let expires_at = i64::from_be_bytes(exp);
        // Unsubscribing keeps working for good (RFC 8058, CAN-SPAM, the mailbox providers'
        // bulk-sender rules): the expiry only limits restore and feedback links.
        if now > expires_at && purpose != Purpose::Unsubscribe {
            return Err(TokenError::Expired);
        }
        Ok(Claims { send_public_id: id, expires_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn ring(seed: u8) -> Keyring {
        Keyring::from_keys(&[vec![seed; 32]])
    }

    #[test]
    fn round_trip() {
        let r = ring(1);
        let t = r.sign(Purpose::Restore, ID, 2_000);
        assert_eq!(r.verify(Purpose::Restore, &t, 1_000), Ok(Claims { send_public_id: ID.into(), expires_at: 2_000 }));
        assert!(t.len() < 64, "short enough for SMS: {}", t.len());
    }

    #[test]
    fn expiry_purpose_key_and_tampering() {
        let r = ring(1);
        let t = r.sign(Purpose::Restore, ID, 2_000);
        assert_eq!(r.verify(Purpose::Restore, &t, 2_001), Err(TokenError::Expired));
        assert_eq!(r.verify(Purpose::Unsubscribe, &t, 1_000), Err(TokenError::Invalid));
        assert_eq!(r.verify(Purpose::Feedback, &t, 1_000), Err(TokenError::Invalid));
        assert_eq!(ring(2).verify(Purpose::Restore, &t, 1_000), Err(TokenError::Invalid));
        for i in KID_LEN..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(b).expect("ascii");
            if forged != t {
                assert!(r.verify(Purpose::Restore, &forged, 1_000).is_err(), "flipped byte {i} accepted");
            }
        }
        assert_eq!(r.verify(Purpose::Restore, "", 0), Err(TokenError::Invalid));
        let unsubscribe = r.sign(Purpose::Unsubscribe, ID, 2_000);
        assert!(r.verify(Purpose::Unsubscribe, &unsubscribe, 2_000 + 10 * 365 * 86_400).is_ok(), "never expires");
        assert_eq!(r.verify(Purpose::Feedback, &r.sign(Purpose::Feedback, ID, 2_000), 2_001), Err(TokenError::Expired));
        assert_eq!(r.verify(Purpose::Restore, "ééééééééé", 0), Err(TokenError::Invalid));
    }

    #[test]
    fn rotated_keys_keep_verifying_old_links() {
        let old = ring(1);
        let t = old.sign(Purpose::Restore, ID, 2_000);
        let rotated = Keyring::from_keys(&[vec![9; 32], vec![1; 32]]);
        assert!(rotated.verify(Purpose::Restore, &t, 1_000).is_ok());
        assert_ne!(rotated.sign(Purpose::Restore, ID, 2_000)[..KID_LEN], t[..KID_LEN]);
    }
}
