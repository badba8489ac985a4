//! Link-signing keys, generated on first start when none is configured.

use super::{StoreError, Tx, on_tx};

impl Tx {
    /// Every stored key as `(kid, base64 secret)`, newest first.
    pub async fn signing_keys(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, (String, String)>(
            "SELECT kid, secret FROM signing_keys ORDER BY created_at DESC, kid"
        )
        .fetch_all(&mut *c)
        .await?))
    }

    /// Store a new key (no-op if the kid exists).
    pub async fn insert_signing_key(&mut self, kid: &str, secret_b64: &str, now_ms: i64) -> Result<(), StoreError> {
        on_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO signing_keys (kid, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (kid) DO NOTHING",
            )
            .bind(kid)
            .bind(secret_b64)
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        Ok(())
    }
}
