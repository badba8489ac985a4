use std::fmt;

/// An ISO 4217 currency with its number of minor-unit digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

/// Why an amount or a currency was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    /// Not an ISO 4217 code.
    #[error("unknown currency code {0:?} (expected ISO 4217, e.g. EUR)")]
    UnknownCurrency(String),
    /// Not a decimal number like `129.90`.
    #[error("amount {0:?} is not a decimal number like \"129.90\"")]
    NotDecimal(String),
    /// More decimals than the currency has minor units.
    #[error("amount {amount:?} has more decimals than {currency} allows ({digits})")]
    TooPrecise {
        /// The amount as given.
        amount: String,
        /// The currency code.
        currency: &'static str,
        /// Allowed decimals.
        digits: u32,
    },
    /// Negative or absurdly large.
    #[error("amount {0:?} is out of range")]
    OutOfRange(String),
}

impl Currency {
    /// Parse an ISO 4217 code such as `EUR` (case-insensitive).
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        iso_currency::Currency::from_code(&code.trim().to_ascii_uppercase())
            .map(Self)
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_owned()))
    }
    /// The three-letter code.
    pub fn code(self) -> &'static str {
        self.0.code()
    }
    /// Number of minor-unit digits (EUR 2, JPY 0, BHD 3).
    pub fn minor_digits(self) -> u32 {
        u32::from(self.0.exponent().unwrap_or(0))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount in integer minor units of a currency. Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// The largest amount accepted, in minor units (10^15: far above any cart, far below
    /// `i64::MAX`, so sums of many of them cannot overflow).
    pub const MAX_MINOR: i64 = 1_000_000_000_000_000;

    /// An amount from minor units.
    pub fn from_minor(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Parse a non-negative decimal string (`"129.90"`, `"1200"`) in `currency`.
    pub fn parse(amount: &str, currency: Currency) -> Result<Self, MoneyError> {
        let digits = currency.minor_digits();
        let s = amount.trim();
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !all_digits(int) || !all_digits(frac) || (s.contains('.') && frac.is_empty()) {
            return Err(MoneyError::NotDecimal(amount.to_owned()));
        }
        let frac_trimmed = frac.trim_end_matches('0');
        if frac_trimmed.len() > digits as usize {
            return Err(MoneyError::TooPrecise { amount: amount.to_owned(), currency: currency.code(), digits });
        }
        let out_of_range = || MoneyError::OutOfRange(amount.to_owned());
        let int: i64 = int.parse().map_err(|_| out_of_range())?;
        let mut frac_val: i64 = 0;
        for i in 0..digits as usize {
            let d = frac_trimmed.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
            frac_val = frac_val * 10 + d;
        }
        let minor = int
            .checked_mul(10_i64.pow(digits))
            .and_then(|v| v.checked_add(frac_val))
            .filter(|v| *v <= Self::MAX_MINOR)
            .ok_or_else(out_of_range)?;
        Ok(Self { minor, currency })
    }

    /// Minor units (cents for EUR).
    pub fn minor(self) -> i64 {
        self.minor
    }
    /// The currency.
    pub fn currency(self) -> Currency {
        self.currency
    }

    /// The plain decimal form, `129.90`.
    pub fn decimal(self) -> String {
        let digits = self.currency.minor_digits();
        if digits == 0 {
            return self.minor.to_string();
        }
        let scale = 10_i64.pow(digits);
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        format!("{sign}{}.{:0width$}", abs / scale as u64, abs % scale as u64, width = digits as usize)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.decimal(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("eur").expect("EUR")
    }

    #[test]
    fn parses_by_minor_units() {
        assert_eq!(Money::parse("129.90", eur()).map(Money::minor), Ok(12990));
        assert_eq!(Money::parse("129.9", eur()).map(Money::minor), Ok(12990));
        assert_eq!(Money::parse("5", eur()).map(Money::minor), Ok(500));
        let jpy = Currency::parse("JPY").expect("JPY");
        assert_eq!(Money::parse("1200", jpy).map(Money::minor), Ok(1200));
        assert_eq!(Money::parse("1200.00", jpy).map(Money::minor), Ok(1200));
        assert!(matches!(Money::parse("1200.5", jpy), Err(MoneyError::TooPrecise { .. })));
        let bhd = Currency::parse("BHD").expect("BHD");
        assert_eq!(Money::parse("1.234", bhd).map(Money::minor), Ok(1234));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "-1", "1e3", "1.", ".5", "12,50", "1.2.3", "99999999999999999999"] {
            assert!(Money::parse(bad, eur()).is_err(), "{bad:?} should be rejected");
        }
        assert!(Currency::parse("XYZ").is_err());
    }

    #[test]
    fn decimal_round_trips() {
        assert_eq!(Money::from_minor(12990, eur()).decimal(), "129.90");
        assert_eq!(Money::from_minor(5, eur()).decimal(), "0.05");
        assert_eq!(Money::from_minor(1200, Currency::parse("JPY").expect("JPY")).to_string(), "1200 JPY");
    }
}
