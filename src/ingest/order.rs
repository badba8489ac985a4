//! Orders: which carts an order recovers (attribution) and what it stops.
//!
//! Attribution, strongest evidence first: the cart the order names; the cart an issued code on
//! the order was sent for; then the customer's open carts active within
//! `attribution_window`. The customer's carts idle for longer stop too (the customer bought),
//! without the credit. Orders always recover, whatever their timestamp: an order is a fact.

use crate::config::Shop;
use crate::domain::{OrderInfo, ShopEvent};
use crate::incentive::ChosenOffer;
use crate::store::history::PastOrder;
use crate::store::incentives::IncentiveRow;
use crate::store::{CartRow, CartStatus, StoreError, Tx};

/// The carts an order concerns.
#[derive(Default)]
struct Attributed {
    /// Recovered by the order.
    carts: Vec<CartRow>,
    /// The customer's carts idle for longer than the window: they stop, uncredited.
    outside_window: Vec<CartRow>,
    /// Codes on the order that Cartback issued to one of the carts.
    issued: Vec<IncentiveRow>,
}

impl Attributed {
    fn add(&mut self, cart: CartRow) {
        if !self.carts.iter().any(|x| x.id == cart.id) {
            self.carts.push(cart);
        }
    }
}

/// Apply an order event: the cart it names (if any) and what it did.
pub(super) async fn order_event(
    tx: &mut Tx,
    shop: &Shop,
    ev: &ShopEvent,
    window_ms: i64,
    now: i64,
) -> Result<(Option<i64>, String), StoreError> {
    let occurred = ev.occurred_at.timestamp_millis();
    let found = attribute(tx, shop, ev, occurred - window_ms).await?;
    record_history(tx, shop, ev).await?;
    if found.carts.is_empty() && found.outside_window.is_empty() {
        return Ok((None, "no matching cart".into()));
    }
    let first = found.carts.first().or(found.outside_window.first()).map(|c| c.id);
    let label = ev.order.as_ref().and_then(|o| o.order_id.clone()).unwrap_or_else(|| "(no id)".into());
    for cart in found.carts {
        if cart.status() != CartStatus::Recovered {
            let code = found.issued.iter().find(|i| i.cart_id == cart.id);
            recover(tx, cart, ev, code, &label, now).await?;
        }
    }
    for mut cart in found.outside_window {
        cart.set_status(CartStatus::Completed);
        cart.exit_reason = Some("ordered_elsewhere".into());
        cart.next_run_at = None;
        cart.updated_at = now;
        tx.save_cart(&cart).await?;
        let line = format!(
            "the customer placed order {label}; this cart was idle longer than the attribution window, so the order is not credited to it"
        );
        tx.log(cart.id, now, "exit", &line).await?;
    }
    Ok((first, "recovered".into()))
}

/// The carts the order concerns; carts of the customer last active before `active_since`
/// (Unix ms) are outside the attribution window.
async fn attribute(tx: &mut Tx, shop: &Shop, ev: &ShopEvent, active_since: i64) -> Result<Attributed, StoreError> {
    let shop_id = shop.id.as_str();
    let order = ev.order.as_ref();
    let mut found = Attributed::default();
    if let Some(id) = &ev.cart_id
        && let Some(c) = tx.cart_by_external(shop_id, id.as_str()).await?
    {
        found.add(c);
    }
    // An unpaid order tracked under its order id (order.paid names the order, not a cart).
    if let Some(o) = order.and_then(|o| o.order_id.as_deref())
        && let Some(c) = tx.cart_by_external(shop_id, &format!("order:{o}")).await?
    {
        found.add(c);
    }
    for code in order.map(|o| o.discount_codes.as_slice()).unwrap_or_default() {
        if let Some(i) = tx.incentive_by_code(&code.trim().to_uppercase()).await?
            && let Some(c) = tx.cart_by_id(i.cart_id).await?
            && c.shop == shop_id
        {
            found.add(c);
            found.issued.push(i);
        }
    }
    for cart in customers_open_carts(tx, shop_id, ev).await? {
        if found.carts.iter().any(|x| x.id == cart.id) {
            continue;
        }
        if cart.last_activity_at >= active_since {
            found.carts.push(cart);
        } else {
            found.outside_window.push(cart);
        }
    }
    Ok(found)
}

/// The open carts of the person behind any identity on the order, under any of their
/// identities.
async fn customers_open_carts(tx: &mut Tx, shop: &str, ev: &ShopEvent) -> Result<Vec<CartRow>, StoreError> {
    let Some(c) = &ev.customer else { return Ok(Vec::new()) };
    let email = c.email.as_ref().map(|e| e.as_str());
    let phone = c.phone.as_ref().map(|p| p.as_str());
    let mut theirs = tx.open_carts_by_contact(shop, email, phone).await?;
    for person in tx.persons_of(shop, &super::person::identities_of(c.id.as_deref(), email, phone)).await? {
        for cart in tx.open_carts_of_person(shop, &person).await? {
            if !theirs.iter().any(|x| x.id == cart.id) {
                theirs.push(cart);
            }
        }
    }
    Ok(theirs)
}

/// Every order is history for the customer's next incentive, matched cart or not.
async fn record_history(tx: &mut Tx, shop: &Shop, ev: &ShopEvent) -> Result<(), StoreError> {
    let order = ev.order.as_ref();
    let (Some(id), Some(total)) = (order.and_then(|o| o.order_id.as_deref()), order.and_then(|o| o.total)) else {
        return Ok(());
    };
    let c = ev.customer.as_ref();
    let email = c.and_then(|c| c.email.as_ref()).map(|e| e.canonical());
    let past = PastOrder {
        order_id: id,
        customer_id: c.and_then(|c| c.id.as_deref()),
        email: email.as_deref(),
        phone: c.and_then(|c| c.phone.as_ref()).map(|p| p.as_str()),
        currency: total.currency().code(),
        total_minor: total.minor(),
        placed_at: ev.occurred_at.timestamp_millis(),
        source: "event",
    };
    tx.record_order(shop.id.as_str(), &past).await?;
    Ok(())
}

/// Recover `cart` by the order: the sequence stops, and the order is credited to the last
/// clicked step and to the code it used, if Cartback issued it for this cart.
async fn recover(
    tx: &mut Tx,
    mut cart: CartRow,
    ev: &ShopEvent,
    code: Option<&IncentiveRow>,
    label: &str,
    now: i64,
) -> Result<(), StoreError> {
    let occurred = ev.occurred_at.timestamp_millis();
    let order = ev.order.as_ref();
    cart.set_status(CartStatus::Recovered);
    cart.exit_reason = Some("order_placed".into());
    cart.recovered_at = Some(occurred);
    cart.order_id = order.and_then(|o| o.order_id.clone());
    cart.order_total_minor = order.and_then(|o| o.total).map(|t| t.minor());
    cart.recovered_step = tx.last_clicked_step(cart.id, occurred).await?;
    let used = match code {
        Some(i) => redeem(tx, &mut cart, order, i, label, occurred).await?,
        None => String::new(),
    };
    cart.updated_at = now;
    tx.save_cart(&cart).await?;
    let step = cart.recovered_step.as_deref().map(|s| format!(", last clicked step {s}")).unwrap_or_default();
    tx.log(cart.id, now, "recovered", &format!("{} {label}: sequence stops{step}{used}", ev.kind.as_str())).await
}

/// Redeem the cart's code used by the order (once: a code is single-use) and credit its
/// discount; the timeline's note.
async fn redeem(
    tx: &mut Tx,
    cart: &mut CartRow,
    order: Option<&OrderInfo>,
    i: &IncentiveRow,
    label: &str,
    occurred: i64,
) -> Result<String, StoreError> {
    if !tx.redeem_incentive(i.id, label, occurred).await? {
        return Ok(format!(
            ", code {} was already used by order {}",
            i.code,
            i.redeemed_order.as_deref().unwrap_or("?")
        ));
    }
    let offer: Option<ChosenOffer> = serde_json::from_str(&i.offer).ok();
    let base = cart.order_total_minor.or(cart.total_minor).unwrap_or(0);
    // The shop's own figure when it sends one, else what the offer gives on this order.
    cart.discount_minor =
        order.and_then(|o| o.discount_total).map(|d| d.minor()).or_else(|| offer.map(|o| o.discount_for(base)));
    cart.incentive_code_used = Some(i.code.clone());
    Ok(format!(", with incentive code {} (tier {})", i.code, i.tier))
}
