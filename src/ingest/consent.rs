//! Consent belongs to the person, not to one cart: the newest event that carries a customer
//! sets their marketing consent, per channel, for every open cart of theirs, and older news
//! never overrides newer (docs/webhooks.md, Consent). Each cart remembers when the event that
//! set its consent happened and which it was; a cart whose consent another event changed says
//! so on its timeline.

use crate::domain::CustomerRef;
use crate::store::history::Consent;
use crate::store::{CartRow, StoreError, Tx};

/// Weigh the consent `cart`'s event gave against `newest`, the consent the newest event gave
/// with another of the person's carts; `merged`: persons were merged just now, so their carts
/// may disagree.
pub(super) async fn settle(
    tx: &mut Tx,
    cart: &mut CartRow,
    person: &CustomerRef,
    newest: Option<Consent>,
    merged: bool,
    now: i64,
) -> Result<(), StoreError> {
    let Some(newest) = newest else { return Ok(()) };
    let ours = Consent {
        email: cart.accepts_email,
        sms: cart.accepts_sms,
        at: cart.consent_at.unwrap_or(cart.last_activity_at),
        source: cart.consent_source.clone(),
    };
    if newest.at > ours.at {
        // A newer event gave the person's consent: this older one does not override it.
        if (newest.email, newest.sms) != (ours.email, ours.sms) {
            let line = format!("{}; newer than this event", change(&ours, &newest));
            tx.log(cart.id, now, "consent", &line).await?;
        }
        cart.accepts_email = newest.email;
        cart.accepts_sms = newest.sms;
        cart.consent_at = Some(newest.at);
        cart.consent_source = newest.source;
        return Ok(());
    }
    if !merged && (newest.email, newest.sms) == (ours.email, ours.sms) {
        return Ok(()); // the person's open carts already agree with this event
    }
    for (id, email, sms) in tx.spread_consent(&cart.shop, person, cart.id, &ours).await? {
        let before = Consent { email, sms, at: 0, source: None };
        tx.log(id, now, "consent", &change(&before, &ours)).await?;
    }
    Ok(())
}

/// `consent: email marketing withdrawn, SMS marketing given by cart.updated for cart c_2 at …`.
pub(super) fn change(before: &Consent, after: &Consent) -> String {
    let word = |was: bool, is: bool, what: &str| match (was, is) {
        (true, false) => Some(format!("{what} marketing withdrawn")),
        (false, true) => Some(format!("{what} marketing given")),
        _ => None,
    };
    let changes: Vec<String> =
        [word(before.email, after.email, "email"), word(before.sms, after.sms, "SMS")].into_iter().flatten().collect();
    let by = after.source.as_deref().unwrap_or("a newer event");
    let what = if changes.is_empty() { "unchanged".to_owned() } else { changes.join(", ") };
    format!("consent: {what} by {by}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_names_each_channel_and_the_event() {
        let given = Consent { email: true, sms: true, at: 1, source: None };
        let withdrawn = Consent { email: false, sms: true, at: 2, source: Some("cart.updated for cart c2".into()) };
        assert_eq!(change(&given, &withdrawn), "consent: email marketing withdrawn by cart.updated for cart c2");
        assert_eq!(
            change(&withdrawn, &Consent { email: true, sms: false, ..withdrawn.clone() }),
            "consent: email marketing given, SMS marketing withdrawn by cart.updated for cart c2"
        );
    }
}
