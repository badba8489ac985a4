//! One person behind a customer's identities: the shop's customer account, email addresses
//! and phone numbers seen together belong to one person, whose key every cart of theirs
//! carries (docs/webhooks.md, Customer identity).

use chrono::Utc;

use crate::domain::CustomerRef;
use crate::store::{CartRow, StoreError, Tx};

/// The identities an event shows for its customer: account, email (canonical), phone.
pub(super) fn identities_of(customer_id: Option<&str>, email: Option<&str>, phone: Option<&str>) -> Vec<CustomerRef> {
    let mut out = Vec::new();
    if let Some(id) = customer_id {
        out.push(CustomerRef::account(id));
    }
    if let Some(e) = email {
        out.push(CustomerRef::Email(e.to_lowercase()));
    }
    if let Some(p) = phone {
        out.push(CustomerRef::Phone(p.to_owned()));
    }
    out
}

/// The identity a cart's customer is known by when no person was found for them: the shop's
/// account, else email, else phone.
pub(super) fn first_identity(cart: &CartRow) -> Option<CustomerRef> {
    cart.customer_ref
        .clone()
        .or_else(|| identities_of(None, cart.email.as_deref(), cart.phone.as_deref()).into_iter().next())
}

/// One person behind every identity the cart shows: known persons met again are merged (their
/// carts, sends and incentives follow), new identities join, and the cart carries the person.
/// The person key is its first identity (a shop customer id wins), so it stays stable.
/// `true` when persons were merged.
pub(super) async fn resolve_person(tx: &mut Tx, cart: &mut CartRow, account: Option<&str>) -> Result<bool, StoreError> {
    let ids = identities_of(account, cart.email.as_deref(), cart.phone.as_deref());
    if ids.is_empty() {
        return Ok(false);
    }
    // One lookup: who owns each identity, and where the cart's own person key now points.
    let mut lookup = ids.clone();
    lookup.extend(cart.customer_ref.clone().filter(|c| !ids.contains(c)));
    let owners = tx.identity_owners(&cart.shop, &lookup).await?;
    let mut persons: Vec<CustomerRef> = Vec::new();
    let known = ids.iter().filter_map(|i| owners.get(i).cloned());
    let current = cart.customer_ref.as_ref().map(|c| owners.get(c).cloned().unwrap_or_else(|| c.clone()));
    for p in known.chain(current) {
        if !persons.contains(&p) {
            persons.push(p);
        }
    }
    // The event's own shop account wins; otherwise a known account, else the first identity.
    let canonical = account
        .map(CustomerRef::account)
        .or_else(|| persons.iter().min_by_key(|p| (!p.is_account(), p.key())).cloned())
        .unwrap_or_else(|| ids[0].clone());
    // Two different shop accounts stay two customers (a household may share a phone); persons
    // known only by email or phone join the account.
    let apart = |p: &CustomerRef| p.is_account() && *p != canonical;
    let mut merged = false;
    for other in persons.iter().filter(|p| **p != canonical && !apart(p)) {
        merged = true;
        tx.merge_person(&cart.shop, other, &canonical).await?;
        let line = "the same customer as an earlier one: their histories are merged";
        tx.log(cart.id, Utc::now().timestamp_millis(), "identity", line).await?;
    }
    // Identities nobody owns yet join; merged ones already point at `canonical`.
    let new: Vec<CustomerRef> = ids.iter().filter(|i| !owners.contains_key(*i)).cloned().collect();
    tx.link_identities(&cart.shop, &new, &canonical).await?;
    cart.customer_ref = Some(canonical);
    Ok(merged)
}
