//! The send log: claimed before a provider is called, completed after.

use super::{StoreError, Tx, on_tx, on_tx_now};
use crate::domain::{CartStatus, CustomerRef, Receipt};

/// The form an address is compared in on the suppression list: email addresses in lower
/// case (mailbox providers treat the local part as case-insensitive, and an opt-out is the
/// person's, whatever the spelling), phone numbers as given (E.164, parsed at the edge).
pub fn canonical_address(channel: &str, address: &str) -> String {
    if channel == "email" { address.trim().to_lowercase() } else { address.trim().to_owned() }
}

/// How an erased person's address is kept on the suppression list: a hash, not the address.
pub fn address_hash(address: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(address.trim().to_lowercase().as_bytes());
    format!("sha256:{}", crate::crypto::hex(&h))
}

/// State of one `(cart, step, channel)` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// A worker is delivering it (or crashed while doing so).
    Claimed,
    /// The provider accepted it.
    Sent,
    /// Deliberately not sent; `reason` says why.
    Skipped,
    /// Given up on; `reason` says why.
    Failed,
    /// Handed to a provider that cannot deduplicate (SMTP) by a worker that died before it
    /// recorded the answer: probably delivered, deliberately not sent again (see docs/delivery.md).
    Unconfirmed,
}

impl SendStatus {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claimed => "claimed",
            Self::Sent => "sent",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
            Self::Unconfirmed => "unconfirmed",
        }
    }
    /// Parse the stored name.
    pub fn parse(s: &str) -> Result<Self, crate::domain::UnknownValue> {
        [Self::Claimed, Self::Sent, Self::Skipped, Self::Failed, Self::Unconfirmed]
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| crate::domain::UnknownValue::new("send status", s))
    }
}

impl serde::Serialize for SendStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One row of `sends`.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
#[allow(missing_docs)]
pub struct SendRow {
    pub id: i64,
    pub public_id: String,
    pub cart_id: i64,
    pub step: String,
    pub channel: String,
    pub status: SendStatus,
    pub reason: Option<String>,
    pub due_at: i64,
    pub claimed_at: i64,
    pub completed_at: Option<i64>,
    pub attempts: i64,
    pub customer_ref: Option<CustomerRef>,
    /// What the transport answered, once it took the message.
    pub message_ref: Option<Receipt>,
    pub handed_at: Option<i64>,
}

impl SendRow {
    /// The status.
    pub fn status(&self) -> SendStatus {
        self.status
    }
}

/// What became of a hand-over mark ([`Tx::hand_over`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOverMark {
    /// Marked: the message may go.
    Marked,
    /// The claim is another worker's now.
    TakenOver,
    /// The claim is ours but the cart left its sequence (this status) meanwhile.
    CartLeft(CartStatus),
}

/// The outcome of trying to claim a send.
#[derive(Debug)]
pub enum Claim {
    /// Ours to deliver now (new, or taken over after the lease of a crashed attempt ran out).
    Claimed(SendRow),
    /// Already finished (sent, skipped or failed): nothing to do.
    Done(SendRow),
    /// Another attempt holds it and its lease runs until the given time (Unix ms).
    Held(SendRow, i64),
    /// The address is on the shop's suppression list for the channel (the list's reason):
    /// nothing was claimed.
    Suppressed(String),
}

/// A message about to be claimed.
#[derive(Debug, Clone, Copy)]
pub struct NewSend<'a> {
    /// Cart row id.
    pub cart_id: i64,
    /// Step id.
    pub step: &'a str,
    /// `email` or `sms`.
    pub channel: &'a str,
    /// When the message fell due (Unix ms).
    pub due_at: i64,
    /// The person it goes to.
    pub customer_ref: Option<&'a CustomerRef>,
    /// `(shop, address)`: checked against the shop's suppression list with the claim.
    pub to: Option<(&'a str, &'a str)>,
}

/// One attempt at a send: a claim is the send's row at a number of attempts, and only the
/// holder of the latest attempt may record its result (the fence against a stalled worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// The send's row id.
    pub id: i64,
    /// Its attempt number.
    pub attempts: i64,
}

impl SendRow {
    /// This row's attempt.
    pub fn attempt(&self) -> Attempt {
        Attempt { id: self.id, attempts: self.attempts }
    }
}

/// An issued incentive code.
#[derive(Debug, Clone, Copy)]
pub struct NewIncentive<'a> {
    /// Cart row id.
    pub cart_id: i64,
    /// Step id.
    pub step: &'a str,
    /// Whom it was issued to.
    pub customer_ref: Option<&'a CustomerRef>,
    /// Tier name.
    pub tier: &'a str,
    /// The code.
    pub code: &'a str,
    /// The offer, as JSON.
    pub offer_json: &'a str,
    /// When it was issued (Unix ms).
    pub issued_at: i64,
    /// When it expires (Unix ms).
    pub expires_at: i64,
}

impl Tx {
    /// Claim `(cart, step, channel)` for delivery, unless `send.to`'s address is suppressed
    /// for its shop on this channel ([`Claim::Suppressed`], nothing written). A claim left by a
    /// crashed attempt is taken over once `lease_ms` has passed since it was made. A new claim
    /// to an address that is not suppressed, the common case, takes one statement.
    pub async fn claim_send(&mut self, send: &NewSend<'_>, now_ms: i64, lease_ms: i64) -> Result<Claim, StoreError> {
        let NewSend { cart_id, step, channel, due_at, customer_ref, to } = *send;
        let public_id = super::public_id();
        let (shop, address) = to.unzip();
        let hashed = address.map(address_hash);
        let address = address.map(|a| canonical_address(channel, a));
        // Without `to`, `shop = NULL` matches no suppression: a plain claim.
        const CLAIM: &str =
            "INSERT INTO sends (public_id, cart_id, step, channel, status, due_at, claimed_at, customer_ref)
             SELECT $1, $2, $3, $4, 'claimed', $5, $6, $7
             WHERE NOT EXISTS (SELECT 1 FROM suppressions WHERE shop = $8 AND channel = $4 AND address IN ($9, $10))
             ON CONFLICT (cart_id, step, channel) DO NOTHING RETURNING *";
        macro_rules! bind_claim {
            ($q:expr) => {
                $q.bind(&public_id)
                    .bind(cart_id)
                    .bind(step)
                    .bind(channel)
                    .bind(due_at)
                    .bind(now_ms)
                    .bind(customer_ref.map(CustomerRef::key))
                    .bind(shop)
                    .bind(&address)
                    .bind(&hashed)
            };
        }
        // What the job decided about its cart (held back on SQLite) goes in the same command as
        // the claim: one round trip to SQLite's thread instead of two.
        let fresh = match self.sqlite_with_held() {
            Some((c, held)) => {
                let sql = format!("{}{}", held.sql, super::sqlite::shift_params(CLAIM, held.params));
                let q = sqlx::query_as::<_, SendRow>(sqlx::AssertSqlSafe(sql)).persistent(held.repeats());
                bind_claim!(super::sqlite::bind_held_back!(q, held)).fetch_optional(c).await?
            }
            None => {
                on_tx_now!(self, |c| bind_claim!(sqlx::query_as::<_, SendRow>(CLAIM)).fetch_optional(&mut *c).await?)
            }
        };
        if let Some(row) = fresh {
            return Ok(Claim::Claimed(row));
        }
        // Suppressed, or claimed before: the suppression is checked first, as before a new claim.
        if let Some((shop, address)) = to
            && let Some(reason) = self.suppression(shop, channel, address).await?
        {
            return Ok(Claim::Suppressed(reason));
        }
        let existing = on_tx!(self, |c| sqlx::query_as::<_, SendRow>(
            "SELECT * FROM sends WHERE cart_id = $1 AND step = $2 AND channel = $3"
        )
        .bind(cart_id)
        .bind(step)
        .bind(channel)
        .fetch_one(&mut *c)
        .await?);
        if existing.status() != SendStatus::Claimed {
            return Ok(Claim::Done(existing));
        }
        let lease_end = existing.claimed_at + lease_ms;
        if now_ms < lease_end {
            return Ok(Claim::Held(existing, lease_end));
        }
        let taken = on_tx!(self, |c| sqlx::query_as::<_, SendRow>(
            "UPDATE sends SET claimed_at = $2, attempts = attempts + 1
             WHERE id = $1 AND status = 'claimed' AND claimed_at = $3 RETURNING *"
        )
        .bind(existing.id)
        .bind(now_ms)
        .bind(existing.claimed_at)
        .fetch_optional(&mut *c)
        .await?);
        Ok(match taken {
            Some(row) => Claim::Claimed(row),
            None => Claim::Held(existing, lease_end),
        })
    }

    /// Record a deliberate non-send (no consent, no address, holdout, …) for the send log.
    pub async fn record_skip(
        &mut self,
        cart_id: i64,
        step: &str,
        channel: &str,
        due_at: i64,
        now_ms: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let public_id = super::public_id();
        on_tx!(self, |c| {
            sqlx::query(
            "INSERT INTO sends (public_id, cart_id, step, channel, status, reason, due_at, claimed_at, completed_at)
             VALUES ($1, $2, $3, $4, 'skipped', $5, $6, $7, $7) ON CONFLICT (cart_id, step, channel) DO NOTHING"
        )
        .bind(&public_id)
        .bind(cart_id)
        .bind(step)
        .bind(channel)
        .bind(reason)
        .bind(due_at)
        .bind(now_ms)
        .execute(&mut *c)
        .await?
        .rows_affected()
        });
        Ok(())
    }

    /// Record that the claim `attempt` is being handed to a provider that cannot deduplicate
    /// (`via` names it, for the operator), unless the claim is no longer ours (another worker
    /// took it over while this one stalled) or the cart left its sequence meanwhile (an order,
    /// an emptied cart or an unsubscribe that arrived during the conversation with the
    /// provider). Either way the caller must not send.
    pub async fn hand_over(
        &mut self,
        Attempt { id, attempts }: Attempt,
        now_ms: i64,
        via: &str,
    ) -> Result<HandOverMark, StoreError> {
        let n = on_tx!(self, |c| sqlx::query(
            "UPDATE sends SET handed_at = $3, reason = $4 WHERE id = $1 AND attempts = $2 AND status = 'claimed'
               AND NOT EXISTS (SELECT 1 FROM carts c WHERE c.id = sends.cart_id
                               AND c.status IN ('recovered', 'emptied', 'unsubscribed'))"
        )
        .bind(id)
        .bind(attempts)
        .bind(now_ms)
        .bind(via)
        .execute(&mut *c)
        .await?
        .rows_affected());
        if n == 1 {
            return Ok(HandOverMark::Marked);
        }
        // The rare path: tell a cart that moved on from a claim that is not ours.
        let left = on_tx!(self, |c| sqlx::query_scalar::<_, String>(
            "SELECT c.status FROM sends s JOIN carts c ON c.id = s.cart_id
             WHERE s.id = $1 AND s.attempts = $2 AND s.status = 'claimed'"
        )
        .bind(id)
        .bind(attempts)
        .fetch_optional(&mut *c)
        .await?);
        Ok(match left.map(|s| CartStatus::parse(&s)) {
            Some(Ok(status)) => HandOverMark::CartLeft(status),
            _ => HandOverMark::TakenOver,
        })
    }

    /// Finish the claim `attempt`. `false` when the claim is no longer ours: a worker that
    /// stalled past its lease finds its send taken over (or finished) by another.
    pub async fn complete_send(
        &mut self,
        Attempt { id, attempts }: Attempt,
        status: SendStatus,
        reason: Option<&str>,
        message_ref: Option<&Receipt>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        // A zombie whose message was accepted after all still records it over the in-doubt verdict.
        let n = on_tx!(self, |c| {
            sqlx::query(
                "UPDATE sends SET status = $3, reason = $4, message_ref = COALESCE($5, message_ref), completed_at = $6
                 WHERE id = $1 AND (status = 'claimed' AND attempts = $2 OR status = 'unconfirmed' AND $3 = 'sent')",
            )
            .bind(id)
            .bind(attempts)
            .bind(status.as_str())
            .bind(reason)
            .bind(message_ref.map(Receipt::to_string))
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Release the claim `attempt` after a transient failure so a later attempt can take it at once.
    pub async fn release_claim(&mut self, Attempt { id, attempts }: Attempt, reason: &str) -> Result<bool, StoreError> {
        let n = on_tx!(self, |c| sqlx::query(
            "UPDATE sends SET claimed_at = 0, handed_at = NULL, reason = $3
             WHERE id = $1 AND attempts = $2 AND status = 'claimed'"
        )
        .bind(id)
        .bind(attempts)
        .bind(reason)
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Completion times of messages sent to a customer since `since_ms`, oldest first.
    pub async fn sent_to_customer_since(
        &mut self,
        customer_ref: &CustomerRef,
        since_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(on_tx!(self, |c| {
            sqlx::query_scalar::<_, i64>(
            "SELECT completed_at FROM sends WHERE customer_ref = $1 AND status = 'sent' AND completed_at >= $2 ORDER BY completed_at"
        )
        .bind(customer_ref.key())
        .bind(since_ms)
        .fetch_all(&mut *c)
        .await?
        }))
    }

    /// The send with public id `public_id`.
    pub async fn send_by_public_id(&mut self, public_id: &str) -> Result<Option<SendRow>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, SendRow>("SELECT * FROM sends WHERE public_id = $1")
            .bind(public_id)
            .fetch_optional(&mut *c)
            .await?))
    }

    /// Every send of a cart, in claim order.
    pub async fn sends_of_cart(&mut self, cart_id: i64) -> Result<Vec<SendRow>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, SendRow>("SELECT * FROM sends WHERE cart_id = $1 ORDER BY id")
            .bind(cart_id)
            .fetch_all(&mut *c)
            .await?))
    }

    /// Record a restore-link click.
    pub async fn record_click(&mut self, send_id: i64, now_ms: i64) -> Result<(), StoreError> {
        on_tx!(self, |c| sqlx::query("INSERT INTO clicks (send_id, clicked_at) VALUES ($1, $2)")
            .bind(send_id)
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Clicks recorded for a send.
    pub async fn clicks_of_send(&mut self, send_id: i64) -> Result<i64, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM clicks WHERE send_id = $1")
            .bind(send_id)
            .fetch_one(&mut *c)
            .await?))
    }

    /// Put an address on a shop's suppression list for a channel.
    pub async fn suppress(
        &mut self,
        shop: &str,
        channel: &str,
        address: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        on_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO suppressions (shop, channel, address, reason, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (shop, channel, address) DO NOTHING",
            )
            .bind(shop)
            .bind(channel)
            .bind(canonical_address(channel, address))
            .bind(reason)
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Why an address is suppressed for a channel, if it is.
    pub async fn suppression(
        &mut self,
        shop: &str,
        channel: &str,
        address: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_scalar::<_, String>(
            "SELECT reason FROM suppressions WHERE shop = $1 AND channel = $2 AND address IN ($3, $4)"
        )
        .bind(shop)
        .bind(channel)
        .bind(canonical_address(channel, address))
        .bind(address_hash(address))
        .fetch_optional(&mut *c)
        .await?))
    }

    /// The incentive already issued for `(cart, step)`: `(tier, code, offer JSON, expires_at)`.
    pub async fn incentive_for(
        &mut self,
        cart_id: i64,
        step: &str,
    ) -> Result<Option<(String, String, String, i64)>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, (String, String, String, i64)>(
            "SELECT tier, code, offer, expires_at FROM incentives WHERE cart_id = $1 AND step = $2"
        )
        .bind(cart_id)
        .bind(step)
        .fetch_optional(&mut *c)
        .await?))
    }

    /// When a customer last received an incentive, if ever.
    pub async fn last_incentive_of(&mut self, customer_ref: &CustomerRef) -> Result<Option<i64>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MAX(issued_at) FROM incentives WHERE customer_ref = $1"
        )
        .bind(customer_ref.key())
        .fetch_one(&mut *c)
        .await?))
    }

    /// Record an issued incentive.
    pub async fn insert_incentive(&mut self, i: &NewIncentive<'_>) -> Result<(), StoreError> {
        let NewIncentive { cart_id, step, customer_ref, tier, code, offer_json, issued_at: now_ms, expires_at } = *i;
        on_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO incentives (cart_id, step, customer_ref, tier, code, offer, issued_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(cart_id)
            .bind(step)
            .bind(customer_ref.map(CustomerRef::key))
            .bind(tier)
            .bind(code)
            .bind(offer_json)
            .bind(now_ms)
            .bind(expires_at)
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        Ok(())
    }
}

impl Tx {
    /// Sends handed over (their final `.` may have reached the relay) whose worker never
    /// recorded the relay's answer, claimed before `before_ms`: `unconfirmed` now, so the
    /// operator sees them. A live worker takes such a claim over itself and finds it in doubt;
    /// this finds the ones nobody will take over because their cart left its sequence meanwhile
    /// (an order after the message went out). A late answer still records `sent` over it.
    pub async fn strand_hand_overs(&mut self, before_ms: i64, now_ms: i64) -> Result<u64, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query(
            "UPDATE sends SET status = 'unconfirmed', completed_at = $2,
                    reason = COALESCE(reason, 'handed over') || '; its worker stopped before the answer was recorded'
             WHERE status = 'claimed' AND handed_at IS NOT NULL AND claimed_at < $1"
        )
        .bind(before_ms)
        .bind(now_ms)
        .execute(&mut *c)
        .await?
        .rows_affected()))
    }
}

impl Tx {
    /// Claim an `unconfirmed` send again for the operator's resend: a new attempt, held from
    /// `now_ms`, not handed over. `false` when it is no longer unconfirmed.
    pub async fn reclaim_unconfirmed(&mut self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let n = on_tx!(self, |c| sqlx::query(
            "UPDATE sends SET status = 'claimed', attempts = attempts + 1, claimed_at = $2, handed_at = NULL,
                    reason = NULL, completed_at = NULL
             WHERE id = $1 AND status = 'unconfirmed'"
        )
        .bind(id)
        .bind(now_ms)
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// The send a provider reference (`twilio SM…`) belongs to.
    pub async fn send_by_message_ref(&mut self, message_ref: &Receipt) -> Result<Option<SendRow>, StoreError> {
        let message_ref = message_ref.to_string();
        Ok(on_tx!(self, |c| sqlx::query_as::<_, SendRow>(
            "SELECT id, public_id, cart_id, step, channel, status, reason, due_at, claimed_at, completed_at, attempts,
                    customer_ref, message_ref, handed_at FROM sends WHERE message_ref = $1"
        )
        .bind(&message_ref)
        .fetch_optional(&mut *c)
        .await?))
    }

    /// Record the provider's later verdict; a carrier failure turns a sent message into a failed one.
    pub async fn set_provider_status(
        &mut self,
        id: i64,
        status: &str,
        failure: Option<&str>,
    ) -> Result<(), StoreError> {
        on_tx!(self, |c| sqlx::query(
            "UPDATE sends SET provider_status = $2,
                    status = CASE WHEN CAST($3 AS TEXT) IS NULL THEN status ELSE 'failed' END,
                    reason = COALESCE(CAST($3 AS TEXT), reason) WHERE id = $1"
        )
        .bind(id)
        .bind(status)
        .bind(failure)
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(())
    }
}

impl Tx {
    /// Lift an address's suppressions for a channel in every shop; returns how many were lifted.
    pub async fn unsuppress_everywhere(&mut self, channel: &str, address: &str) -> Result<u64, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query("DELETE FROM suppressions WHERE channel = $1 AND address = $2")
            .bind(channel)
            .bind(canonical_address(channel, address))
            .execute(&mut *c)
            .await?
            .rows_affected()))
    }
}

impl Tx {
    /// The newest incentive code issued for a cart, with its expiry (Unix ms).
    pub async fn latest_incentive(&mut self, cart_id: i64) -> Result<Option<(String, i64)>, StoreError> {
        Ok(on_tx!(self, |c| sqlx::query_as::<_, (String, i64)>(
            "SELECT code, expires_at FROM incentives WHERE cart_id = $1 ORDER BY issued_at DESC LIMIT 1"
        )
        .bind(cart_id)
        .fetch_optional(&mut *c)
        .await?))
    }
}
