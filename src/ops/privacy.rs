//! Erase or export what Cartback holds about a person.

use serde::Serialize;
use serde_json::{Value, json};

use super::OpsError;
use crate::app::App;
use crate::domain::{CustomerRef, Email, Phone, Receipt, from_millis};

/// Who to erase or export: the shop and at least one identifier.
#[derive(Debug, Clone, Default)]
pub struct Person {
    /// Shop id.
    pub shop: String,
    /// Email address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// The shop's customer id.
    pub customer_id: Option<String>,
}

/// What an erasure did.
#[derive(Debug, Serialize)]
pub struct Erasure {
    /// Carts anonymised.
    pub carts: usize,
    /// Rendered messages deleted from the file outbox.
    pub messages_deleted: usize,
    /// Suppression entries kept, as hashes.
    pub suppressions_hashed: usize,
}

impl Person {
    fn normalised(&self) -> Result<(Option<String>, Option<String>), OpsError> {
        let email = match &self.email {
            Some(e) => {
                Some(Email::parse(e).map_err(|e| OpsError::Conflict(format!("--email: {e}")))?.as_str().to_owned())
            }
            None => None,
        };
        let phone = match &self.phone {
            Some(p) => {
                Some(Phone::parse(p).map_err(|e| OpsError::Conflict(format!("--phone: {e}")))?.as_str().to_owned())
            }
            None => None,
        };
        if email.is_none() && phone.is_none() && self.customer_id.is_none() {
            return Err(OpsError::Conflict("name the person by email, phone or customer id".into()));
        }
        Ok((email, phone))
    }
}

/// Remove a person's personal data: contact details, names, cart contents, raw events,
/// rendered messages and timelines. Aggregate facts stay, and suppressions stay as hashes so
/// an unsubscribed person is never messaged again.
pub async fn erase(app: &App, who: &Person) -> Result<Erasure, OpsError> {
    erase_once(app, who, None, false).await
}

/// [`erase`], carried out at most once for the shop-signed request `webhook_id` (a request
/// whose id was seen before is refused with [`OpsError::Replayed`] and changes nothing);
/// `vacuum`: on PostgreSQL, rewrite the tables that held the person ([`crate::store::Db::clear_erased`]).
pub async fn erase_once(app: &App, who: &Person, webhook_id: Option<&str>, vacuum: bool) -> Result<Erasure, OpsError> {
    let (email, phone) = who.normalised()?;
    if app.shop(&who.shop).is_none() {
        return Err(OpsError::NotFound(format!("no shop {:?} is configured", who.shop)));
    }
    let mut tx = app.db.begin().await?;
    tx.zero_what_is_deleted().await?;
    if let Some(id) = webhook_id
        && !tx.remember_request(&who.shop, id, chrono::Utc::now().timestamp_millis()).await?
    {
        return Err(OpsError::Replayed(format!("webhook-id {id:?} was already used for a signed request")));
    }
    let mut carts =
        tx.carts_of_person(&who.shop, email.as_deref(), phone.as_deref(), who.customer_id.as_deref()).await?;
    // Carts filed under the same person by another of their identities.
    let persons = persons_of(&mut tx, who, email.as_deref(), phone.as_deref()).await?;
    for c in tx.carts_of_persons(&who.shop, &persons).await? {
        if !carts.iter().any(|x| x.id == c.id) {
            carts.push(c);
        }
    }
    let mut files = Vec::new();
    let mut addresses: Vec<(&str, String)> = Vec::new();
    for cart in &carts {
        for s in tx.sends_of_cart(cart.id).await? {
            if let Some(path) = s.message_ref.as_ref().and_then(Receipt::file) {
                files.push(path.to_owned());
            }
        }
        if let Some(e) = &cart.email {
            addresses.push(("email", e.clone()));
        }
        if let Some(p) = &cart.phone {
            addresses.push(("sms", p.clone()));
        }
        let marker = format!("erased:{}", &crate::store::public_id()[..12]);
        tx.erase_cart(cart, &marker).await?;
    }
    addresses.extend(email.iter().map(|e| ("email", e.clone())));
    addresses.extend(phone.iter().map(|p| ("sms", p.clone())));
    addresses.sort();
    addresses.dedup();
    tx.erase_identities(&who.shop, &persons, email.as_deref(), phone.as_deref(), who.customer_id.as_deref()).await?;
    let mut hashed = 0;
    for (channel, address) in &addresses {
        if tx.suppression(&who.shop, channel, address).await?.is_some() {
            tx.hash_suppression(&who.shop, channel, address).await?;
            hashed += 1;
        }
    }
    tx.commit().await?;
    app.db.clear_erased(vacuum).await?;
    let mut deleted = 0;
    for f in files {
        if std::fs::remove_file(&f).is_ok() {
            deleted += 1;
        }
    }
    tracing::info!(shop = %who.shop, carts = carts.len(), deleted, hashed, "person erased");
    Ok(Erasure { carts: carts.len(), messages_deleted: deleted, suppressions_hashed: hashed })
}

/// The person keys behind the given identities.
async fn persons_of(
    tx: &mut crate::store::Tx,
    who: &Person,
    email: Option<&str>,
    phone: Option<&str>,
) -> Result<Vec<CustomerRef>, OpsError> {
    let mut ids = Vec::new();
    if let Some(i) = &who.customer_id {
        ids.push(CustomerRef::account(i));
    }
    if let Some(e) = email {
        ids.push(CustomerRef::Email(e.to_lowercase()));
    }
    if let Some(p) = phone {
        ids.push(CustomerRef::Phone(p.to_owned()));
    }
    Ok(tx.persons_of(&who.shop, &ids).await?)
}

/// Everything held about a person, as JSON.
pub async fn export(app: &App, who: &Person) -> Result<Value, OpsError> {
    let (email, phone) = who.normalised()?;
    let mut tx = app.db.begin().await?;
    let carts = tx.carts_of_person(&who.shop, email.as_deref(), phone.as_deref(), who.customer_id.as_deref()).await?;
    let mut out = Vec::new();
    for c in &carts {
        let sends = tx.sends_of_cart(c.id).await?;
        let events = tx.event_bodies(c.id).await?;
        let timeline = tx.cart_log(c.id).await?;
        out.push(json!({
            "shop": c.shop, "cart": c.external_id, "status": c.status, "created_at": from_millis(c.created_at).to_rfc3339(),
            "email": c.email, "phone": c.phone, "first_name": c.first_name, "customer_ref": c.customer_ref,
            "timezone": c.timezone, "locale": c.locale, "country": c.country,
            "accepts_email_marketing": c.accepts_email, "accepts_sms_marketing": c.accepts_sms,
            "currency": c.currency, "total_minor": c.total_minor,
            "items": serde_json::from_str::<Value>(&c.items).unwrap_or(Value::Null),
            "restore_url": c.restore_url, "order_id": c.order_id,
            "messages": sends.iter().map(|s| json!({
                "step": s.step, "channel": s.channel, "status": s.status, "reason": s.reason,
                "sent_at": s.completed_at.map(|t| from_millis(t).to_rfc3339()),
            })).collect::<Vec<_>>(),
            "events_received": events.iter().map(|(kind, body, at)| json!({
                "type": kind, "received_at": from_millis(*at).to_rfc3339(),
                "body": serde_json::from_str::<Value>(body).unwrap_or(Value::Null),
            })).collect::<Vec<_>>(),
            "timeline": timeline,
        }));
    }
    let mut suppressed = Vec::new();
    for (channel, address) in email.iter().map(|e| ("email", e)).chain(phone.iter().map(|p| ("sms", p))) {
        if let Some(reason) = tx.suppression(&who.shop, channel, address).await? {
            suppressed.push(json!({ "channel": channel, "reason": reason }));
        }
    }
    tx.commit().await?;
    Ok(json!({ "shop": who.shop, "carts": out, "suppressions": suppressed }))
}
