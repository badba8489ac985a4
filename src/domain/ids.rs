use std::fmt;

/// Error for identifiers that are empty, too long or contain control characters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{what} must be 1 to {max} printable characters, not only spaces")]
pub struct IdError {
    what: &'static str,
    max: usize,
}

fn check(what: &'static str, max: usize, s: &str) -> Result<(), IdError> {
    // Blank ids (only spaces) would name a cart nobody can tell apart in logs or the console.
    if s.trim().is_empty() || s.len() > max || s.chars().any(char::is_control) {
        Err(IdError { what, max })
    } else {
        Ok(())
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parse an identifier, rejecting empty, over-long or control-character input.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check($what, $max, s)?;
                Ok(Self(s.to_owned()))
            }
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A shop's key in the configuration (`[shops.<id>]`) and in webhook URLs.
    ShopId, "shop id", 64
);
id_type!(
    /// The shop's own identifier for a cart (or Shopify checkout token).
    CartId, "cart id", 255
);
id_type!(
    /// The `webhook-id` header of a delivery: the idempotency key for an event.
    WebhookId, "webhook id", 255
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_empty_long_and_control() {
        assert!(CartId::parse("").is_err());
        assert!(CartId::parse("   ").is_err());
        assert!(CartId::parse(&"x".repeat(256)).is_err());
        assert!(CartId::parse("a\nb").is_err());
        assert_eq!(CartId::parse("c_123").map(|c| c.to_string()), Ok("c_123".into()));
    }
}
