//! One channel of a due step: claim the send, render it, hand it to the transport, record the
//! result. Exactly once: the claim (`UNIQUE(cart, step, channel)`) commits before the provider
//! is called, and only the holder of the latest attempt may hand the message over or record
//! its result (the fence against a worker that stalled past its lease).

use std::time::Instant;

use tracing::{info, warn};

use super::StepRun;
use super::decide::{address_for, exit_reason, fmt_local};
use super::faults::{self, Point};
use super::incentive::{self, Issued};
use super::message::{self, Prepared};
use super::{JobError, MAX_SEND_ATTEMPTS, backoff_ms, now_ms};
use crate::campaign::Channel;
use crate::deliver::{DeliveryError, Gate as _};
use crate::domain::{Receipt, mask_email, mask_phone};
use crate::store::{CartRow, Claim, GroupTx, HandOverMark, NewSend, SendRow, SendStatus};

/// How one channel of a step ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Sent, skipped, or dealt with by another attempt.
    Done,
    /// A permanent failure (the step's fallback channel may take over).
    FailedForGood,
    /// The cart left its sequence (or a newer job took over): nothing was sent.
    Exited,
    /// Failed for now: retry the step at this time (Unix ms).
    RetryAt(i64),
}

/// A claimed send, ready to render and deliver.
pub(super) struct Taken {
    pub send: SendRow,
    pub cart: CartRow,
    pub address: String,
    pub incentive: Option<Issued>,
}

/// `step/channel`, for timeline lines.
pub(super) fn label(s: &StepRun<'_>, channel: Channel) -> String {
    format!("{}/{}", s.step().id.value, channel.as_str())
}

/// Send one channel of step `s`. `decided` is the job's own transaction with the cart it
/// holds (the first channel's); `keep_open`: return the transaction holding the result
/// instead of committing it, so the next step's scheduling commits with it.
pub(super) async fn channel(
    s: &StepRun<'_>,
    channel: Channel,
    decided: Option<(GroupTx, CartRow)>,
    keep_open: bool,
) -> Result<(Outcome, Option<GroupTx>), JobError> {
    let taken = match claim(s, channel, decided).await? {
        Ok(taken) => taken,
        Err(outcome) => return Ok((outcome, None)),
    };
    faults::reach(Point::Claimed, &taken.send.public_id).await;
    if let Some(outcome) = in_doubt(s, channel, &taken).await? {
        return Ok((outcome, None));
    }
    let started = Instant::now();
    let Some(result) = deliver(s, channel, &taken).await? else {
        return Ok((Outcome::Done, None));
    };
    let labels = crate::metrics::ChannelLabels { channel: channel.as_str().to_owned() };
    s.app.metrics.provider_latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    record(s, channel, &taken, result, keep_open).await
}

/// Claim the send in the job's transaction (or a new one), after checking that the cart still
/// wants it and that the channel has an address and consent. `Err`: how the channel ended
/// without a claim of ours.
async fn claim(
    s: &StepRun<'_>,
    channel: Channel,
    decided: Option<(GroupTx, CartRow)>,
) -> Result<Result<Taken, Outcome>, JobError> {
    let now = now_ms();
    let (mut tx, cart) = match decided {
        Some(open) => open,
        None => {
            let mut tx = s.app.jobs_tx.begin().await?;
            let Some(cart) = tx.cart_by_id(s.job.cart).await? else {
                tx.commit().await?;
                return Ok(Err(Outcome::Exited));
            };
            (tx, cart)
        }
    };
    if cart.seq != s.job.seq {
        tx.commit().await?;
        return Ok(Err(Outcome::Exited));
    }
    if let Some(why) = exit_reason(&cart, s.campaign) {
        tx.log(cart.id, now, "exit", &format!("{} not sent: {why}", label(s, channel))).await?;
        tx.commit().await?;
        return Ok(Err(Outcome::Exited));
    }
    // Address, consent, suppression — checked at send time, so later changes are honoured.
    let address = match address_for(&cart, s.shop, s.campaign, s.step(), channel) {
        Ok(a) => a.to_owned(),
        Err(why) => return Ok(Err(skip(s, tx, &cart, channel, &why).await?)),
    };
    let lease = i64::try_from(s.app.settings.worker.claim_lease.as_millis()).unwrap_or(60_000);
    let new = NewSend {
        cart_id: cart.id,
        step: &s.step().id.value,
        channel: channel.as_str(),
        due_at: s.due,
        customer_ref: cart.customer_ref.as_ref(),
        to: Some((&cart.shop, &address)),
    };
    let send = match tx.claim_send(&new, now, lease).await? {
        Claim::Claimed(row) => row,
        other => return Ok(Err(settle(s, tx, &cart, channel, other).await?)),
    };
    let incentive = match &s.step().incentive {
        Some(_) => incentive::issue(&mut tx, s, &cart, now).await?,
        None => None,
    };
    tx.commit().await?;
    Ok(Ok(Taken { send, cart, address, incentive }))
}

/// Why a claim that was not ours means the channel is skipped, if it does.
pub(super) fn skip_reason(claim: &Claim) -> Option<String> {
    match claim {
        Claim::Suppressed(reason) => Some(format!("suppressed ({reason})")),
        Claim::Claimed(_) | Claim::Done(_) | Claim::Held(..) => None,
    }
}

/// End a channel whose claim was not ours: finished before, held by another attempt, or
/// suppressed.
async fn settle(
    s: &StepRun<'_>,
    tx: GroupTx,
    cart: &CartRow,
    channel: Channel,
    claim: Claim,
) -> Result<Outcome, JobError> {
    if let Some(why) = skip_reason(&claim) {
        return skip(s, tx, cart, channel, &why).await;
    }
    tx.commit().await?;
    Ok(match claim {
        // A permanent failure recorded by an earlier run still lets the fallback channel go.
        Claim::Done(row) if row.status() == SendStatus::Failed => Outcome::FailedForGood,
        Claim::Held(_, until) => Outcome::RetryAt(until),
        Claim::Done(_) | Claim::Claimed(_) | Claim::Suppressed(_) => Outcome::Done,
    })
}

/// Record a deliberate non-send of the channel and commit.
async fn skip(
    s: &StepRun<'_>,
    mut tx: GroupTx,
    cart: &CartRow,
    channel: Channel,
    why: &str,
) -> Result<Outcome, JobError> {
    let now = now_ms();
    s.app.metrics.send(channel.as_str(), "skipped");
    tx.record_skip(cart.id, &s.step().id.value, channel.as_str(), s.due, now, why).await?;
    tx.log(cart.id, now, "skipped", &format!("{}: {why}", label(s, channel))).await?;
    tx.commit().await?;
    Ok(Outcome::Done)
}

/// A claim taken over from a worker that died after handing the message to a provider that
/// cannot deduplicate: it was probably delivered. Not sending it again is the at-most-once
/// choice for this one message (docs/delivery.md); operators may prefer at-least-once
/// (`email.resend_unconfirmed`). `Some`: recorded as unconfirmed, nothing sent.
async fn in_doubt(s: &StepRun<'_>, channel: Channel, taken: &Taken) -> Result<Option<Outcome>, JobError> {
    let resend = channel == Channel::Email && s.app.settings.email.resend_unconfirmed;
    if taken.send.handed_at.is_none() || idempotent(s, channel) || resend {
        return Ok(None);
    }
    let now = now_ms();
    let via = taken.send.reason.as_deref().unwrap_or("handed over");
    let at = taken
        .send
        .handed_at
        .map_or_else(String::new, |t| format!(" at {}", crate::domain::from_millis(t).to_rfc3339()));
    let why = format!(
        "{via}{at}, then the worker stopped before recording the answer; it was probably delivered, so it is not \
         sent a second time (`cartback jobs resend {}` sends it again, `cartback jobs delivered {}` settles it)",
        taken.send.public_id, taken.send.public_id
    );
    let why = why.as_str();
    let mut tx = s.app.jobs_tx.begin().await?;
    if tx.complete_send(taken.send.attempt(), SendStatus::Unconfirmed, Some(why), None, now).await? {
        s.app.metrics.send(channel.as_str(), "unconfirmed");
        tx.log(taken.cart.id, now, "unconfirmed", &format!("{}: {why}", label(s, channel))).await?;
        warn!(step = %s.step().id.value, channel = channel.as_str(), "in-doubt send not repeated");
    }
    tx.commit().await?;
    Ok(Some(Outcome::Done))
}

/// Whether the channel's transport deduplicates by the send's id (the file outbox, an SMS
/// provider with an idempotency header): then a crash in delivery is harmless to repeat.
fn idempotent(s: &StepRun<'_>, channel: Channel) -> bool {
    match channel {
        Channel::Email => s.app.email.idempotent(),
        Channel::Sms => s.app.sms.idempotent(),
    }
}

/// Render and hand the message over. `None`: the claim was taken over while this worker
/// stalled, and nothing was sent.
///
/// The fence: only the current holder of the claim may hand the message over. A worker that
/// stalled past its lease (SIGSTOP, a long pause, a frozen VM) finds its claim taken over and
/// sends nothing. The hand-over is recorded at the last moment before the provider can have
/// the message: over SMTP after the body and before the final `.` (a conversation cut off
/// before it leaves nothing at the relay, so an unmarked message is safe to deliver again);
/// for an SMS API, before the one call.
pub(super) async fn deliver(
    s: &StepRun<'_>,
    channel: Channel,
    taken: &Taken,
) -> Result<Option<Result<Receipt, DeliveryError>>, JobError> {
    let message = match message::prepare(s, channel, &taken.cart, &taken.send, taken.incentive.as_ref()) {
        Ok(m) => m,
        Err(e) => return Ok(Some(Err(e))),
    };
    let gate = HandOver {
        s,
        send: &taken.send,
        channel,
        result: std::sync::Mutex::new(None),
        committing: std::sync::Mutex::new(None),
        stopped: std::sync::Mutex::new(None),
    };
    let result = match &message {
        Prepared::Email(m) if idempotent(s, channel) => s.app.email.send(m, &crate::deliver::Open).await,
        Prepared::Email(m) => s.app.email.send(m, &gate).await,
        Prepared::Sms(m) => {
            if !idempotent(s, channel) && !gate.pass("the SMS provider").await {
                return gate.settled().map(|()| None);
            }
            s.app.sms.send(m).await
        }
    };
    // Whatever became of the call, the hand-over's commit is seen through (at once when the
    // transport already did).
    gate.passed().await;
    if gate.taken_over() {
        return gate.settled().map(|()| None);
    }
    if result.is_ok() {
        faults::reach(Point::Accepted, &taken.send.public_id).await;
    }
    Ok(Some(result))
}

/// Records the hand-over of one send, fenced by its attempt, when the transport asks.
struct HandOver<'a> {
    s: &'a StepRun<'a>,
    send: &'a SendRow,
    channel: Channel,
    /// The last hand-over's outcome: `Ok(false)` the claim is another worker's now.
    result: std::sync::Mutex<Option<Result<bool, JobError>>>,
    /// The hand-over's commit, on its way while the final dot goes out.
    committing: std::sync::Mutex<Option<crate::store::Committing>>,
    /// Why the message was stopped at the hand-over (the cart left its sequence meanwhile).
    stopped: std::sync::Mutex<Option<String>>,
}

impl HandOver<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Result<bool, JobError>>> {
        self.result.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the transport was stopped: the claim was lost or could not be checked.
    fn taken_over(&self) -> bool {
        matches!(*self.lock(), Some(Ok(false) | Err(_)))
    }

    /// Why nothing was sent: the store's error, or (`Ok`) the claim was taken over.
    fn settled(&self) -> Result<(), JobError> {
        match self.lock().take() {
            Some(Err(e)) => Err(e),
            _ => {
                let step = &self.s.step().id.value;
                match self.stopped.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                    Some(why) => info!(step = %step, channel = self.channel.as_str(), "{why}"),
                    None => {
                        warn!(step = %step, channel = self.channel.as_str(), "claim was taken over while this worker stalled; not sending");
                    }
                }
                Ok(())
            }
        }
    }
}

impl crate::deliver::Gate for HandOver<'_> {
    async fn pass(&self, to: &str) -> bool {
        if self.channel == Channel::Email {
            faults::reach(Point::BodySent, &self.send.public_id).await;
        }
        let result = async {
            let mut tx = self.s.app.jobs_tx.begin().await?;
            match tx.hand_over(self.send.attempt(), now_ms(), &format!("handed over to {to}")).await? {
                HandOverMark::Marked => {}
                HandOverMark::TakenOver => {
                    tx.commit().await?;
                    return Ok(false);
                }
                HandOverMark::CartLeft(status) => {
                    let why = format!("cart {} while the message was on its way; not sent", status.as_str());
                    tx.complete_send(self.send.attempt(), SendStatus::Skipped, Some(&why), None, now_ms()).await?;
                    tx.log(self.send.cart_id, now_ms(), "exit", &format!("{} {why}", label(self.s, self.channel)))
                        .await?;
                    tx.commit().await?;
                    *self.stopped.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
                    return Ok(false);
                }
            }
            // A worker frozen past its lease here may have had this transaction, and the mark
            // in it, ended by PostgreSQL (`Db::connect_with`) while another worker took the
            // claim over: the final dot must not follow a commit that cannot happen.
            if !within_lease(self.send.claimed_at, self.s.app.settings.worker.claim_lease, now_ms()) {
                drop(tx);
                return Err(JobError::LeaseRanOut);
            }
            // The final dot follows COMMIT's way out without waiting for its answer: a worker
            // killed while PostgreSQL commits the mark would otherwise leave a mark and no
            // message (docs/delivery.md). The answer is awaited in `passed`.
            let committing = tx.commit_sent().await?;
            *self.committing.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(committing);
            Ok::<_, JobError>(true)
        }
        .await;
        let go = matches!(result, Ok(true));
        *self.lock() = Some(result);
        if go {
            faults::reach(Point::HandedOver, &self.send.public_id).await;
        }
        go
    }

    async fn passed(&self) {
        let committing = self.committing.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let Some(committing) = committing else { return };
        if let Err(e) = committing.finish().await {
            // The dot is out and its mark may not be: whoever takes the claim over sends the
            // message again (with the same Message-ID).
            tracing::error!(step = %self.s.step().id.value, error = %e, "the hand-over was not recorded after the final dot; the message may be sent twice");
            *self.lock() = Some(Err(e.into()));
        }
    }
}

/// Whether a claim made at `claimed_at` (Unix ms) is still its holder's at `now`: its lease
/// has not run out, with a tenth of it to spare for clocks that differ between machines.
pub(super) fn within_lease(claimed_at: i64, lease: std::time::Duration, now: i64) -> bool {
    let lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    now < claimed_at.saturating_add(lease - lease / 10)
}

/// What a delivery's result means for its send.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The transport took it.
    Sent(Receipt),
    /// Given up: `reason` is recorded, `line` goes on the timeline; `suppress`: the
    /// recipient opted out at the provider; `for_good`: a fallback channel may take over.
    Failed { reason: String, line: String, suppress: bool, for_good: bool },
    /// Failed for now: retry at `at` (Unix ms).
    Retry { reason: String, at: i64 },
}

/// The verdict on a delivery's `result`, for attempt `attempts` of a send due at `due`,
/// finished at `done`; a retry waits `backoff` (ms) or the provider's hint, whichever is
/// longer, but never past `worker.send_give_up` (`give_up_after`).
pub(super) fn verdict(
    result: Result<Receipt, DeliveryError>,
    attempts: i64,
    (due, done): (i64, i64),
    give_up_after: std::time::Duration,
    backoff: i64,
) -> Verdict {
    let give_up_at = due + i64::try_from(give_up_after.as_millis()).unwrap_or(i64::MAX / 4);
    let err = match result {
        Ok(receipt) => return Verdict::Sent(receipt),
        Err(DeliveryError::Unsubscribed(e)) => {
            let line = format!("{e}; the number is now suppressed");
            return Verdict::Failed { reason: e, line, suppress: true, for_good: true };
        }
        Err(DeliveryError::Permanent(e)) => {
            return Verdict::Failed { line: e.clone(), reason: e, suppress: false, for_good: true };
        }
        Err(err) => err,
    };
    if let Some(why) = give_up(&err, attempts, done, give_up_at, give_up_after) {
        return Verdict::Failed { line: why.clone(), reason: why, suppress: false, for_good: false };
    }
    let hint = match &err {
        DeliveryError::Throttled(_, Some(d)) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4),
        _ => 0,
    };
    let at = (done + backoff.max(hint)).min(give_up_at.max(done + 1_000));
    Verdict::Retry { reason: err.to_string(), at }
}

/// Why a message that failed for now (`err`, on attempt `attempts`, at `done`) is given up,
/// or `None` to retry it. Every such failure is given up `worker.send_give_up`
/// (`give_up_after`) after the message was due (`give_up_at`); a transient or throttled one
/// also after [`MAX_SEND_ATTEMPTS`]. Refused credentials are the operator's to fix, not the
/// message's fault: they use up no attempts, only time.
fn give_up(
    err: &DeliveryError,
    attempts: i64,
    done: i64,
    give_up_at: i64,
    give_up_after: std::time::Duration,
) -> Option<String> {
    let counts = !matches!(err, DeliveryError::CredentialsRefused(_));
    if counts && attempts >= MAX_SEND_ATTEMPTS {
        return Some(format!("gave up after {attempts} attempts: {err}"));
    }
    (done >= give_up_at).then(|| {
        format!(
            "gave up {} after it was due (worker.send_give_up), after {attempts} attempts: {err}",
            humantime::format_duration(give_up_after)
        )
    })
}

/// Record a delivery's result, fenced by the attempt: a worker whose claim was taken over
/// records nothing.
async fn record(
    s: &StepRun<'_>,
    channel: Channel,
    taken: &Taken,
    result: Result<Receipt, DeliveryError>,
    keep_open: bool,
) -> Result<(Outcome, Option<GroupTx>), JobError> {
    let (send, cart) = (&taken.send, &taken.cart);
    let mut tx = s.app.jobs_tx.begin().await?;
    let done = now_ms();
    let give_up_after = s.app.settings.worker.send_give_up;
    let label = label(s, channel);
    let ch = channel.as_str();
    let (outcome, ours) = match verdict(result, send.attempts, (s.due, done), give_up_after, backoff_ms(send.attempts))
    {
        Verdict::Sent(receipt) => {
            let ours = tx.complete_send(send.attempt(), SendStatus::Sent, None, Some(&receipt), done).await?;
            if ours {
                let to =
                    if channel == Channel::Email { mask_email(&taken.address) } else { mask_phone(&taken.address) };
                let late = done - s.due;
                s.app.metrics.send(ch, "sent");
                s.app.metrics.lateness.observe(late as f64 / 1000.0);
                let via = if receipt.via_secondary() { " via the secondary relay" } else { "" };
                let line = format!("{label} to {to}{via} ({:.1}s after due)", late as f64 / 1000.0);
                tx.log(cart.id, done, "sent", &line).await?;
                info!(step = %s.step().id.value, channel = ch, to = %to, lateness_ms = late, "sent");
            }
            (Outcome::Done, ours)
        }
        Verdict::Failed { reason, line, suppress, for_good } => {
            let ours = tx.complete_send(send.attempt(), SendStatus::Failed, Some(&reason), None, done).await?;
            if ours {
                s.app.metrics.send(ch, "failed");
                if suppress {
                    tx.suppress(&cart.shop, ch, &taken.address, "unsubscribed at the provider", done).await?;
                }
                tx.log(cart.id, done, "failed", &format!("{label}: {line}")).await?;
                if for_good && !suppress {
                    warn!(step = %s.step().id.value, channel = ch, error = %reason, "permanent delivery failure");
                }
            }
            (if for_good { Outcome::FailedForGood } else { Outcome::Done }, ours)
        }
        Verdict::Retry { reason, at } => {
            let ours = tx.release_claim(send.attempt(), &reason).await?;
            if ours {
                s.app.metrics.send(ch, "retry");
                let line =
                    format!("{label}: {reason}; attempt {} failed, retrying at {}", send.attempts, fmt_local(at, s.tz));
                tx.log(cart.id, done, "retry", &line).await?;
            }
            (Outcome::RetryAt(at), ours)
        }
    };
    if !ours {
        // Another worker holds or finished this send (this one stalled past its lease).
        tx.commit().await?;
        warn!(step = %s.step().id.value, channel = ch, "send was taken over while in flight; result not recorded");
        return Ok((Outcome::Done, None));
    }
    if keep_open {
        return Ok((outcome, Some(tx)));
    }
    tx.commit().await?;
    faults::reach(Point::Completed, &send.public_id).await;
    Ok((outcome, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIX_HOURS: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

    #[test]
    fn refused_credentials_use_up_time_not_attempts() {
        let (due, give_up_at) = (0, 6 * 3_600_000);
        let refused = DeliveryError::CredentialsRefused("535 auth failed".into());
        let transient = DeliveryError::Transient("421 busy".into());
        assert_eq!(give_up(&refused, MAX_SEND_ATTEMPTS * 3, due + 60_000, give_up_at, SIX_HOURS), None);
        let late = give_up(&refused, 2, give_up_at, give_up_at, SIX_HOURS).expect("given up at send_give_up");
        assert!(late.contains("worker.send_give_up") && late.contains("535"), "{late}");
        assert_eq!(give_up(&transient, MAX_SEND_ATTEMPTS - 1, due + 60_000, give_up_at, SIX_HOURS), None);
        let spent = give_up(&transient, MAX_SEND_ATTEMPTS, due + 60_000, give_up_at, SIX_HOURS).expect("attempts");
        assert!(spent.starts_with(&format!("gave up after {MAX_SEND_ATTEMPTS} attempts")), "{spent}");
    }

    #[test]
    fn a_claim_is_its_holders_until_nine_tenths_of_its_lease() {
        let lease = std::time::Duration::from_secs(60);
        assert!(super::within_lease(1_000, lease, 1_000));
        assert!(super::within_lease(1_000, lease, 54_999));
        assert!(!super::within_lease(1_000, lease, 55_000), "the last tenth is left for clock differences");
        assert!(!super::within_lease(1_000, lease, 3_600_000));
    }

    #[test]
    fn each_delivery_result_has_its_verdict() {
        let sent = Receipt::Smtp { code: 250, secondary: false };
        assert_eq!(verdict(Ok(sent.clone()), 1, (0, 10), SIX_HOURS, 30_000), Verdict::Sent(sent));
        let opted_out = verdict(Err(DeliveryError::Unsubscribed("21610".into())), 1, (0, 10), SIX_HOURS, 30_000);
        assert!(matches!(opted_out, Verdict::Failed { suppress: true, for_good: true, .. }), "{opted_out:?}");
        let bad = verdict(Err(DeliveryError::Permanent("550 no such user".into())), 1, (0, 10), SIX_HOURS, 30_000);
        assert!(matches!(bad, Verdict::Failed { suppress: false, for_good: true, .. }), "{bad:?}");
        // A transient failure waits its backoff, or the provider's longer hint.
        let busy = verdict(Err(DeliveryError::Transient("421".into())), 1, (0, 10), SIX_HOURS, 30_000);
        assert!(matches!(busy, Verdict::Retry { at: 30_010, .. }), "{busy:?}");
        let hint = Some(std::time::Duration::from_secs(120));
        let slow = verdict(Err(DeliveryError::Throttled("429".into(), hint)), 1, (0, 10), SIX_HOURS, 30_000);
        assert!(matches!(slow, Verdict::Retry { at: 120_010, .. }), "{slow:?}");
        // Never retried past send_give_up; given up once it has passed.
        let near = 6 * 3_600_000 - 5_000;
        let capped = verdict(Err(DeliveryError::Transient("421".into())), 1, (0, near), SIX_HOURS, 30_000);
        assert!(matches!(capped, Verdict::Retry { at: 21_600_000, .. }), "{capped:?}");
        let late = verdict(Err(DeliveryError::Transient("421".into())), 2, (0, 6 * 3_600_000), SIX_HOURS, 30_000);
        assert!(matches!(late, Verdict::Failed { for_good: false, .. }), "{late:?}");
    }
}
