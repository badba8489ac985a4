//! A cart's life: where it is ([`CartStatus`]), what kind of sequence it runs
//! ([`CampaignKind`]) and whose it is ([`CustomerRef`]). Each is stored as text and parsed
//! once, at the store's edge.

use std::fmt;

/// A stored value that is not one of the type's spellings (a bug or a manual edit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    what: &'static str,
    value: String,
}

impl UnknownValue {
    /// `value` is not a `what`.
    pub fn new(what: &'static str, value: &str) -> Self {
        Self { what, value: value.to_owned() }
    }
}

/// Where a cart is in its life. Only [`crate::domain`]'s transitions below and the store
/// change it (see `CartRow`'s methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CartStatus {
    /// Recent activity; watched for idleness.
    Active,
    /// In a recovery sequence.
    Abandoned,
    /// In the holdout group: abandoned, receives nothing, counts for lift.
    Holdout,
    /// Did not match the campaign's audience.
    NotEntered,
    /// Every step has been dealt with.
    Completed,
    /// An order was placed.
    Recovered,
    /// The cart was emptied.
    Emptied,
    /// The customer unsubscribed.
    Unsubscribed,
}

impl CartStatus {
    /// Every status, in the order of a cart's life.
    pub const ALL: [Self; 8] = [
        Self::Active,
        Self::Abandoned,
        Self::Holdout,
        Self::NotEntered,
        Self::Completed,
        Self::Recovered,
        Self::Emptied,
        Self::Unsubscribed,
    ];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Abandoned => "abandoned",
            Self::Holdout => "holdout",
            Self::NotEntered => "not_entered",
            Self::Completed => "completed",
            Self::Recovered => "recovered",
            Self::Emptied => "emptied",
            Self::Unsubscribed => "unsubscribed",
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Result<Self, UnknownValue> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownValue { what: "cart status", value: s.to_owned() })
    }

    /// No further messages will be sent for this cart, whatever happens next.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Recovered | Self::Unsubscribed)
    }
}

impl TryFrom<String> for CartStatus {
    type Error = UnknownValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl fmt::Display for CartStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for CartStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What a campaign recovers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignKind {
    /// Abandoned carts (`cart.*` events, Shopify checkouts).
    #[default]
    Cart,
    /// Orders placed but not paid (`order.unpaid`), stopped by `order.paid`.
    UnpaidOrder,
}

impl CampaignKind {
    /// Stored name (`carts.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cart => "cart",
            Self::UnpaidOrder => "unpaid_order",
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Result<Self, UnknownValue> {
        match s {
            "cart" => Ok(Self::Cart),
            "unpaid_order" => Ok(Self::UnpaidOrder),
            other => Err(UnknownValue { what: "campaign kind", value: other.to_owned() }),
        }
    }
}

impl TryFrom<String> for CampaignKind {
    type Error = UnknownValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl serde::Serialize for CampaignKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One way a shop's customer is known, and the key of the person behind a cart: the shop's
/// customer account, an email address or a phone number. A person's key is their first
/// identity, a shop account winning (docs/webhooks.md, Customer identity). Stored as
/// `id:…`, `email:…`, `phone:…`, and `erased:…` for an erased person's anonymous facts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CustomerRef {
    /// The shop's own customer id.
    Account(String),
    /// An email address, in its canonical form ([`super::Email::canonical`]).
    Email(String),
    /// A phone number, E.164.
    Phone(String),
    /// An erased person: a random marker that keeps their anonymous facts together.
    Erased(String),
}

impl CustomerRef {
    /// The shop's customer account `id`.
    pub fn account(id: &str) -> Self {
        Self::Account(id.to_owned())
    }

    /// An email address.
    pub fn email(email: &super::Email) -> Self {
        Self::Email(email.canonical())
    }

    /// A phone number.
    pub fn phone(phone: &super::Phone) -> Self {
        Self::Phone(phone.as_str().to_owned())
    }

    /// The shop's customer id, when this is an account.
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Self::Account(id) => Some(id),
            _ => None,
        }
    }

    /// Whether this is a shop account.
    pub fn is_account(&self) -> bool {
        matches!(self, Self::Account(_))
    }

    /// The stored form.
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// Parse the stored form.
    pub fn parse(s: &str) -> Result<Self, UnknownValue> {
        let (kind, value) = s.split_once(':').ok_or_else(|| UnknownValue { what: "customer key", value: s.into() })?;
        let value = value.to_owned();
        match kind {
            "id" => Ok(Self::Account(value)),
            "email" => Ok(Self::Email(value)),
            "phone" => Ok(Self::Phone(value)),
            "erased" => Ok(Self::Erased(value)),
            _ => Err(UnknownValue { what: "customer key", value: s.to_owned() }),
        }
    }
}

impl fmt::Display for CustomerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Account(v) => write!(f, "id:{v}"),
            Self::Email(v) => write!(f, "email:{v}"),
            Self::Phone(v) => write!(f, "phone:{v}"),
            Self::Erased(v) => write!(f, "erased:{v}"),
        }
    }
}

impl TryFrom<String> for CustomerRef {
    type Error = UnknownValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl serde::Serialize for CustomerRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_forms_round_trip() {
        for st in CartStatus::ALL {
            assert_eq!(CartStatus::parse(st.as_str()), Ok(st));
        }
        assert!(CartStatus::parse("lost").is_err());
        for k in [CampaignKind::Cart, CampaignKind::UnpaidOrder] {
            assert_eq!(CampaignKind::parse(k.as_str()), Ok(k));
        }
        for r in [
            CustomerRef::account("cu:1"),
            CustomerRef::Email("a@b.de".into()),
            CustomerRef::Phone("+4930".into()),
            CustomerRef::Erased("x".into()),
        ] {
            assert_eq!(CustomerRef::parse(&r.key()), Ok(r));
        }
        // A shop's customer id may itself contain a colon.
        assert_eq!(
            CustomerRef::parse("id:gid://shopify/Customer/1").map(|r| r.account_id().map(str::to_owned)),
            Ok(Some("gid://shopify/Customer/1".into()))
        );
        assert!(CustomerRef::parse("nobody").is_err());
    }
}
