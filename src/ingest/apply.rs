//! Taking a verified event into a cart, in one transaction with the job it needs.
//!
//! Rules: `occurred_at` decides. Older news never overrides newer state; an event for a
//! recovered cart changes nothing; orders always recover (an order is a fact whatever
//! its timestamp). The delivery record, the cart change and the job commit together, so
//! a `202` means all three are durable.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tracing::{debug, info};

use super::Env;
use super::person;
use crate::campaign::CampaignKind;
use crate::config::Shop;
use crate::domain::CustomerRef;
use crate::domain::{EventKind, ShopEvent, WebhookId, mask_email};
use crate::queue::ensure_job;
use crate::store::history::{HistoryOf, apply_history};
use crate::store::{CartRow, CartStatus, EventRecord, StoreError, Tx};

/// What happened to a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Taken (and applied, or recorded with the reason it changed nothing).
    New {
        /// What it did, in a few words.
        outcome: String,
    },
    /// This `webhook-id` was taken before; nothing changed.
    Duplicate,
}

/// Failures while accepting.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// Storage failed; nothing was stored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The shop's campaign is not loaded (configuration changed under us).
    #[error("campaign {0:?} is not loaded")]
    NoCampaign(String),
    /// The shared transaction of a group commit failed; nothing of this event was stored.
    #[error("storing the event failed: {0}")]
    Batch(String),
    /// Another transaction recorded one of the deliveries while this one applied it (two
    /// machines took the same delivery): nothing of this transaction may be kept.
    #[error("another transaction recorded the same delivery meanwhile")]
    Raced,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// One verified delivery to apply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delivery<'a> {
    /// The shop it came for.
    pub shop: &'a Shop,
    /// Its `webhook-id`.
    pub webhook_id: &'a WebhookId,
    /// The parsed event.
    pub event: &'a ShopEvent,
    /// The raw body, kept as evidence.
    pub body: &'a [u8],
}

/// Apply `deliveries` in order inside `tx` (the caller commits; on `Err` it must roll them
/// all back). One query finds the deliveries taken before and one `INSERT` records the new
/// ones with what they did, and the events' writes are held back to go out together
/// ([`Tx::defer_writes`]): a delivery costs the reads of its cart and customer.
/// [`AcceptError::Raced`] when another transaction recorded one of them meanwhile.
pub(crate) async fn accept_all(
    app: &Env,
    tx: &mut Tx,
    deliveries: &[Delivery<'_>],
) -> Result<Vec<Accepted>, AcceptError> {
    // An event's cart update, job and identity links go out with the batch's other writes.
    tx.defer_writes();
    let mut taken: HashSet<(&str, &str)> = HashSet::new();
    let mut shops: Vec<&str> = deliveries.iter().map(|d| d.shop.id.as_str()).collect();
    shops.sort_unstable();
    shops.dedup();
    for shop in shops {
        let ids: Vec<&str> =
            deliveries.iter().filter(|d| d.shop.id.as_str() == shop).map(|d| d.webhook_id.as_str()).collect();
        let known = tx.recorded_deliveries(shop, &ids).await?;
        taken.extend(ids.into_iter().filter(|id| known.contains(*id)).map(|id| (shop, id)));
    }
    // The batch's carts, read and locked at once (on PostgreSQL in one order, so batches
    // written side by side never wait for each other in a circle).
    let keys: Vec<(&str, &str)> = deliveries
        .iter()
        .filter(|d| !taken.contains(&(d.shop.id.as_str(), d.webhook_id.as_str())))
        .filter(|d| matches!(d.event.kind, EventKind::CartUpdated | EventKind::CartAbandoned | EventKind::CartEmptied))
        .filter_map(|d| Some((d.shop.id.as_str(), d.event.cart_id.as_ref()?.as_str())))
        .collect();
    tx.take_carts(&keys, ms(Utc::now())).await?;
    let mut results = Vec::with_capacity(deliveries.len());
    let mut records = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        // Taken before, or earlier in this same batch.
        if !taken.insert((d.shop.id.as_str(), d.webhook_id.as_str())) {
            debug!(shop = %d.shop.id, webhook_id = %d.webhook_id, "duplicate delivery");
            results.push(Accepted::Duplicate);
            continue;
        }
        let received_at = Utc::now();
        let (cart_id, outcome) = apply(app, tx, d.shop, d.event, received_at).await?;
        info!(shop = %d.shop.id, kind = d.event.kind.as_str(), cart = ?cart_id, %outcome, "event accepted");
        records.push(EventRecord {
            shop: d.shop.id.as_str(),
            webhook_id: d.webhook_id.as_str(),
            kind: d.event.kind.as_str(),
            occurred_at: ms(d.event.occurred_at),
            received_at: ms(received_at),
            cart_id,
            outcome: outcome.clone(),
            body: String::from_utf8_lossy(d.body),
        });
        results.push(Accepted::New { outcome });
    }
    let recorded = tx.record_events(&records).await?;
    if recorded != records.len() as u64 {
        return Err(AcceptError::Raced);
    }
    Ok(results)
}

/// Apply one new event: the cart it names (if any) and what it did.
async fn apply(
    app: &Env,
    tx: &mut Tx,
    shop: &Shop,
    ev: &ShopEvent,
    now: DateTime<Utc>,
) -> Result<(Option<i64>, String), AcceptError> {
    // The idle check runs after the shortest `abandon_after` of the shop's campaigns; the
    // job then picks the campaign whose audience matches and waits for its own delay.
    let kind = if ev.kind == EventKind::OrderUnpaid { CampaignKind::UnpaidOrder } else { CampaignKind::Cart };
    let abandon_after_ms = app
        .campaigns
        .current()
        .for_shop_kind(shop.id.as_str(), &shop.campaign, kind)
        .iter()
        .map(|c| c.abandon_after.get().num_milliseconds())
        .min();
    Ok(match (ev.kind, abandon_after_ms) {
        (EventKind::OrderUnpaid, None) => (None, "recorded: no unpaid_order campaign runs for this shop".to_owned()),
        (
            EventKind::CartUpdated | EventKind::CartAbandoned | EventKind::CartEmptied | EventKind::OrderUnpaid,
            Some(a),
        ) => cart_event(tx, shop, ev, a, ms(now)).await?,
        (EventKind::CartUpdated | EventKind::CartAbandoned | EventKind::CartEmptied, None) => {
            return Err(AcceptError::NoCampaign(shop.campaign.clone()));
        }
        (EventKind::OrderPlaced | EventKind::OrderPaid, _) => {
            super::order::order_event(tx, shop, ev, app.attribution_window_ms, ms(now)).await?
        }
    })
}

async fn cart_event(
    tx: &mut Tx,
    shop: &Shop,
    ev: &ShopEvent,
    abandon_after_ms: i64,
    now: i64,
) -> Result<(Option<i64>, String), StoreError> {
    // An unpaid order without a cart id is tracked under its order id.
    let order_id = ev.order.as_ref().and_then(|o| o.order_id.as_deref());
    let external = match (&ev.cart_id, order_id) {
        (Some(c), _) => c.as_str().to_owned(),
        (None, Some(o)) if ev.kind == EventKind::OrderUnpaid => format!("order:{o}"),
        _ => return Ok((None, "ignored: no cart id".into())),
    };
    let (mut cart, created) = tx.ensure_cart(shop.id.as_str(), &external, now).await?;
    if let Some(why) = ignored(&cart, created, ev) {
        tx.log(cart.id, now, "event", &format!("{} {why}", ev.kind.as_str())).await?;
        return Ok((Some(cart.id), why));
    }
    take_in(tx, shop, &mut cart, ev, now).await?;
    let outcome = transition(tx, &mut cart, ev, abandon_after_ms, now).await?;
    let who = cart.email.as_deref().map(mask_email).unwrap_or_else(|| "no email".into());
    let at = ev.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    tx.log(cart.id, now, "event", &format!("{} at {at} ({who}): {outcome}", ev.kind.as_str())).await?;
    Ok((Some(cart.id), outcome))
}

/// Why an event changes nothing of its cart: the cart is recovered or unsubscribed, or the
/// event is older than what the cart already knows.
fn ignored(cart: &CartRow, created: bool, ev: &ShopEvent) -> Option<String> {
    let status = cart.status();
    if status.is_final() {
        return Some(format!("ignored: cart is already {}", status.as_str()));
    }
    let occurred = ms(ev.occurred_at);
    (!created && occurred < cart.last_activity_at).then(|| {
        format!(
            "ignored: occurred_at {} is older than the cart's last activity {}",
            ev.occurred_at.to_rfc3339(),
            crate::domain::from_millis(cart.last_activity_at).to_rfc3339()
        )
    })
}

/// What the event tells about the cart and its customer: contents, contact, consent, the
/// person behind them, their order history and zone.
async fn take_in(tx: &mut Tx, shop: &Shop, cart: &mut CartRow, ev: &ShopEvent, now: i64) -> Result<(), StoreError> {
    cart.last_activity_at = ms(ev.occurred_at);
    cart.updated_at = now;
    apply_snapshot(cart, ev);
    let merged = person::resolve_person(tx, cart, ev.customer.as_ref().and_then(|c| c.id.as_deref())).await?;
    // The customer's order history, the zone they reported with another cart, and the consent
    // the newest event that carried them gave: one query.
    let key = HistoryOf::new(cart);
    let person = cart.customer_ref.clone();
    let facts =
        tx.customer_facts(&cart.shop, key.as_ref().map(HistoryOf::key), person.as_ref().map(|p| (p, cart.id))).await?;
    if let Some(orders) = facts.orders {
        apply_history(cart, orders);
    }
    let earlier_zone = facts.zone.filter(|_| earlier_zone_wanted(cart, ev));
    resolve_zone(cart, shop, ev, earlier_zone);
    if let (Some(person), Some(_)) = (&person, &ev.customer) {
        super::consent::settle(tx, cart, person, facts.consent, merged, now).await?;
    }
    Ok(())
}

/// Where the event moves the cart, and the job that watches it; the outcome in a few words.
async fn transition(
    tx: &mut Tx,
    cart: &mut CartRow,
    ev: &ShopEvent,
    abandon_after_ms: i64,
    now: i64,
) -> Result<String, StoreError> {
    let occurred = ms(ev.occurred_at);
    Ok(match ev.kind {
        EventKind::CartUpdated => {
            cart.set_status(CartStatus::Active);
            ensure_job(tx, cart, occurred + abandon_after_ms).await?;
            "active: watching for inactivity".to_owned()
        }
        EventKind::CartAbandoned => {
            cart.set_status(CartStatus::Abandoned);
            cart.abandoned_at = Some(occurred);
            ensure_job(tx, cart, now).await?;
            "abandoned (declared by the shop)".to_owned()
        }
        EventKind::OrderUnpaid => {
            // Runs an unpaid_order campaign; order.paid (matched by order id) stops it.
            let order_id = ev.order.as_ref().and_then(|o| o.order_id.clone());
            cart.kind = CampaignKind::UnpaidOrder;
            cart.order_id.clone_from(&order_id);
            if let Some(total) = ev.order.as_ref().and_then(|o| o.total)
                && ev.cart.is_none()
            {
                cart.currency = Some(total.currency().code().to_owned());
                cart.total_minor = Some(total.minor());
            }
            cart.set_status(CartStatus::Active);
            ensure_job(tx, cart, occurred + abandon_after_ms).await?;
            let id = order_id.as_deref().unwrap_or("(no id)");
            format!("unpaid order {id}: payment reminders start if it stays unpaid")
        }
        _ => {
            cart.set_status(CartStatus::Emptied);
            cart.exit_reason = Some("cart_emptied".into());
            tx.save_cart(cart).await?;
            "emptied: sequence stops".to_owned()
        }
    })
}

fn apply_snapshot(cart: &mut CartRow, ev: &ShopEvent) {
    // Why the customer stopped, as the newest event tells it (unknown reasons are kept).
    if ev.stage.is_some() || ev.reason.is_some() {
        cart.stage.clone_from(&ev.stage);
        cart.reason.clone_from(&ev.reason);
        cart.reason_detail.clone_from(&ev.reason_detail);
    }
    if let Some(snap) = &ev.cart {
        cart.currency = Some(snap.total.currency().code().to_owned());
        cart.total_minor = Some(snap.total.minor());
        cart.items = serde_json::to_string(&snap.items).unwrap_or_else(|_| "[]".into());
        if snap.restore_url.is_some() {
            cart.restore_url.clone_from(&snap.restore_url);
        }
        if let Some(l) = &snap.locale {
            cart.cart_locale = Some(l.to_string());
        }
    }
    if let Some(c) = &ev.customer {
        if let Some(id) = &c.id {
            cart.customer_ref = Some(CustomerRef::account(id));
        }
        if let Some(e) = &c.email {
            cart.email = Some(e.as_str().to_owned());
        }
        if let Some(p) = &c.phone {
            cart.phone = Some(p.as_str().to_owned());
        }
        if c.first_name.is_some() {
            cart.first_name.clone_from(&c.first_name);
        }
        if let Some(l) = &c.locale {
            cart.locale = Some(l.to_string());
        }
        if c.country.is_some() {
            cart.country.clone_from(&c.country);
        }
        cart.orders_count = i64::from(c.orders_count);
        if c.total_spent_minor.is_some() {
            cart.total_spent_minor = c.total_spent_minor;
        }
        // Consent as of this event; `settle_consent` weighs it against the person's newest.
        cart.accepts_email = c.accepts_email;
        cart.accepts_sms = c.accepts_sms;
        cart.consent_at = Some(ms(ev.occurred_at));
        cart.consent_source = Some(format!(
            "{} for cart {} at {}",
            ev.kind.as_str(),
            cart.external_id,
            ev.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    if cart.customer_ref.is_none() {
        cart.customer_ref = person::first_identity(cart);
    }
}

/// Whether the zone an event reported with another of the customer's carts is wanted:
/// neither this event nor an earlier one for this cart reported one.
fn earlier_zone_wanted(cart: &CartRow, ev: &ShopEvent) -> bool {
    let reported = ev.customer.as_ref().and_then(|c| c.timezone).is_some()
        || cart.timezone_source.as_deref().is_some_and(|s| s.starts_with("event"));
    !reported
}

/// The customer's zone, by the first source that knows it: the event → the zone reported for
/// this customer before (`earlier`, see [`earlier_zone_wanted`]) → the phone number's country
/// → the customer's country → the shop.
fn resolve_zone(cart: &mut CartRow, shop: &Shop, ev: &ShopEvent, earlier: Option<String>) {
    use crate::campaign::zones::country_zone;
    fn set(cart: &mut CartRow, tz: chrono_tz::Tz, source: String) {
        cart.timezone = Some(tz.name().to_owned());
        cart.timezone_source = Some(source);
    }
    if let Some(tz) = ev.customer.as_ref().and_then(|c| c.timezone) {
        set(cart, tz, "event: customer.timezone".into());
        return;
    }
    if cart.timezone_source.as_deref().is_some_and(|s| s.starts_with("event")) {
        return; // reported by an earlier event for this cart
    }
    if let Some(tz) = earlier.and_then(|z| z.parse().ok()) {
        set(cart, tz, "customer history: zone reported with an earlier cart".into());
        return;
    }
    let phone_country = cart
        .phone
        .as_deref()
        .and_then(|p| crate::domain::Phone::parse(p).ok())
        .and_then(|p| p.country().map(str::to_owned));
    if let Some(cc) = phone_country
        && let Some(tz) = country_zone(&cc)
    {
        set(cart, tz, format!("phone number country {cc}"));
        return;
    }
    if let Some(cc) = cart.country.clone()
        && let Some(tz) = country_zone(&cc)
    {
        set(cart, tz, format!("customer country {cc}"));
        return;
    }
    set(cart, shop.timezone, format!("shop default ({})", shop.id));
}
