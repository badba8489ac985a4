//! "What stopped you?": the answers a message offers as one-tap links (`/f/{token}?reason=…`).

/// A reason a customer can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// Shipping was too expensive.
    ShippingCost,
    /// The price.
    Price,
    /// Paying did not work or the wanted method was missing.
    Payment,
    /// It would arrive too late.
    DeliveryTime,
    /// Only looking.
    JustBrowsing,
}

impl Reported {
    /// Every answer, in the order messages offer them.
    pub const ALL: [Reported; 5] =
        [Self::ShippingCost, Self::Price, Self::Payment, Self::DeliveryTime, Self::JustBrowsing];

    /// Parse the `reason` query value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The query value and stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ShippingCost => "shipping_cost",
            Self::Price => "price",
            Self::Payment => "payment",
            Self::DeliveryTime => "delivery_time",
            Self::JustBrowsing => "just_browsing",
        }
    }
}

/// Link scanners (mail security gateways) open every link of a message within seconds; a
/// person taps one. Several different answers for one message this close together are
/// treated as a scanner's and not counted.
pub const SCANNER_BURST_MS: i64 = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_and_unknown_ones_are_refused() {
        for r in Reported::ALL {
            assert_eq!(Reported::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reported::parse("SHIPPING_COST"), None);
        assert_eq!(Reported::parse("<script>"), None);
    }
}
