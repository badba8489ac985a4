//! The operator's answer to a message left in doubt: send an `unconfirmed` message again
//! (same `Message-ID`, so a receiver that saw the first copy can tell), or settle it as
//! delivered. Both are the operator's call: Cartback cannot know whether the relay kept it.

use super::decide::{address_for, cart_tz};
use super::incentive;
use super::send::{Taken, deliver, label};
use super::{JobError, StepRun, now_ms};
use crate::app::App;
use crate::campaign::Channel;
use crate::domain::{mask_email, mask_phone};
use crate::queue::RecoveryJob;
use crate::store::{SendRow, SendStatus};

/// How an operator's request about one send ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// Sent again; the transport's answer.
    Resent(String),
    /// Recorded as delivered.
    MarkedDelivered,
    /// Tried and failed; it stays `unconfirmed` with this reason.
    Failed(String),
    /// No send has this id.
    NotFound,
    /// The send is not `unconfirmed` (its status).
    NotInDoubt(SendStatus),
    /// It can no longer be sent, and stays `unconfirmed`: why.
    Refused(String),
}

/// The unconfirmed send `public_id`, if it is one.
async fn in_doubt(app: &App, public_id: &str) -> Result<Result<SendRow, Settled>, JobError> {
    let mut tx = app.db.begin().await?;
    let send = tx.send_by_public_id(public_id).await?;
    tx.commit().await?;
    Ok(match send {
        None => Err(Settled::NotFound),
        Some(s) if s.status() != SendStatus::Unconfirmed => Err(Settled::NotInDoubt(s.status())),
        Some(s) => Ok(s),
    })
}

/// Record the unconfirmed send `public_id` as delivered (the operator checked with the relay
/// or the customer).
pub async fn mark_delivered(app: &App, public_id: &str) -> Result<Settled, JobError> {
    let send = match in_doubt(app, public_id).await? {
        Ok(s) => s,
        Err(settled) => return Ok(settled),
    };
    let now = now_ms();
    let mut tx = app.db.begin().await?;
    let why = "marked delivered by the operator";
    if !tx.complete_send(send.attempt(), SendStatus::Sent, Some(why), None, now).await? {
        tx.commit().await?;
        return Ok(Settled::Refused("it changed meanwhile; look again".into()));
    }
    tx.log(send.cart_id, now, "operator", &format!("{}/{}: {why}", send.step, send.channel)).await?;
    tx.commit().await?;
    app.metrics.send(&send.channel, "sent");
    Ok(Settled::MarkedDelivered)
}

/// Send the unconfirmed send `public_id` again, now, from this process, with the checks a
/// worker makes at send time (the cart still wants it, address, consent). It is claimed as a
/// new attempt first, so a worker cannot send it at the same time.
pub async fn resend(app: &App, public_id: &str) -> Result<Settled, JobError> {
    let send = match in_doubt(app, public_id).await? {
        Ok(s) => s,
        Err(settled) => return Ok(settled),
    };
    let mut tx = app.jobs_tx.begin().await?;
    let refused = |why: &str| Ok(Settled::Refused(why.to_owned()));
    let Some(cart) = tx.cart_by_id(send.cart_id).await? else {
        tx.commit().await?;
        return refused("its cart was erased");
    };
    let (Some(shop), set) = (app.shop(&cart.shop), app.campaigns()) else {
        tx.commit().await?;
        return refused("its shop is no longer configured");
    };
    let Some(campaign) = cart.campaign.as_deref().and_then(|c| set.get(c)) else {
        tx.commit().await?;
        return refused("its campaign is no longer configured");
    };
    let (Some(index), Some(channel)) =
        (campaign.steps.iter().position(|st| st.id.value == send.step), Channel::parse(&send.channel))
    else {
        tx.commit().await?;
        return refused("its step is no longer in the campaign");
    };
    let job = RecoveryJob { cart: cart.id, seq: cart.seq, due_ms: None };
    let abandoned_at = cart.abandoned_at.unwrap_or(cart.last_activity_at);
    let s = StepRun { app, shop, campaign, job, index, due: send.due_at, tz: cart_tz(&cart, shop), abandoned_at };
    let address = match address_for(&cart, shop, campaign, s.step(), channel) {
        Ok(a) => a.to_owned(),
        Err(why) => {
            tx.commit().await?;
            return Ok(Settled::Refused(format!("not sent: {why}")));
        }
    };
    let now = now_ms();
    if !tx.reclaim_unconfirmed(send.id, now).await? {
        tx.commit().await?;
        return refused("it changed meanwhile; look again");
    }
    let incentive = match &s.step().incentive {
        Some(_) => incentive::issue(&mut tx, &s, &cart, now).await?,
        None => None,
    };
    let line = format!("{}: sent again by the operator (same Message-ID)", label(&s, channel));
    tx.log(cart.id, now, "operator", &line).await?;
    let send = tx.send_by_public_id(public_id).await?.unwrap_or(send);
    tx.commit().await?;
    let taken = Taken { send, cart, address, incentive };
    let Some(result) = deliver(&s, channel, &taken).await? else {
        return refused("another worker took it over");
    };
    let done = now_ms();
    let mut tx = app.jobs_tx.begin().await?;
    let settled = match result {
        Ok(receipt) => {
            tx.complete_send(taken.send.attempt(), SendStatus::Sent, None, Some(&receipt), done).await?;
            let to = if channel == Channel::Email { mask_email(&taken.address) } else { mask_phone(&taken.address) };
            tx.log(taken.cart.id, done, "sent", &format!("{} to {to} (resent by the operator)", label(&s, channel)))
                .await?;
            app.metrics.send(channel.as_str(), "sent");
            Settled::Resent(receipt.to_string())
        }
        Err(e) => {
            let why = format!("the operator's resend failed ({e}); it may still have arrived the first time");
            tx.complete_send(taken.send.attempt(), SendStatus::Unconfirmed, Some(&why), None, done).await?;
            tx.log(taken.cart.id, done, "unconfirmed", &format!("{}: {why}", label(&s, channel))).await?;
            Settled::Failed(why)
        }
    };
    tx.commit().await?;
    Ok(settled)
}
