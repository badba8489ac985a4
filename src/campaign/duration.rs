//! Campaign durations: `30s 10m 1h 2d 1w`, one unit, positive.

use std::fmt;

/// A positive campaign duration, parsed from `30s`, `10m`, `1h`, `2d` or `1w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(chrono::Duration);

/// Why a duration string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a duration like 30s, 10m, 1h, 2d or 1w")]
pub struct SpanError(pub String);

impl Span {
    /// Parse `<positive integer><s|m|h|d|w>`.
    pub fn parse(s: &str) -> Result<Self, SpanError> {
        let err = || SpanError(s.to_owned());
        let s2 = s.trim();
        let unit_at = s2.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (num, unit) = s2.split_at(unit_at);
        let n: i64 = num.parse().map_err(|_| err())?;
        if n <= 0 || n > 100_000 {
            return Err(err());
        }
        let d = match unit {
            "s" => chrono::Duration::seconds(n),
            "m" => chrono::Duration::minutes(n),
            "h" => chrono::Duration::hours(n),
            "d" => chrono::Duration::days(n),
            "w" => chrono::Duration::weeks(n),
            _ => return Err(err()),
        };
        Ok(Self(d))
    }

    /// A span from seconds (for tests and defaults).
    pub fn from_secs(secs: i64) -> Self {
        Self(chrono::Duration::seconds(secs))
    }

    /// As a chrono duration.
    pub fn get(self) -> chrono::Duration {
        self.0
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.num_seconds();
        let (n, u) = [(604_800, "w"), (86_400, "d"), (3_600, "h"), (60, "m")]
            .into_iter()
            .find(|(unit, _)| s % unit == 0)
            .map_or((s, "s"), |(unit, u)| (s / unit, u));
        write!(f, "{n}{u}")
    }
}

impl<'de> serde::Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Span::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Span {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[1-9][0-9]*[smhdw]$",
            "description": "A positive duration with one unit: 30s, 10m, 1h, 2d, 1w"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(Span::parse("30s").map(|s| s.get().num_seconds()), Ok(30));
        assert_eq!(Span::parse("10m").map(|s| s.get().num_seconds()), Ok(600));
        assert_eq!(Span::parse("2d").map(|s| s.get().num_seconds()), Ok(172_800));
        assert_eq!(Span::parse("1w").map(|s| s.to_string()), Ok("1w".into()));
        assert_eq!(Span::parse("90m").map(|s| s.to_string()), Ok("90m".into()));
    }

    #[test]
    fn rejects_zero_negative_and_garbage() {
        for bad in ["0s", "-1h", "1", "h", "1.5h", "1 h x", "1y", ""] {
            assert!(Span::parse(bad).is_err(), "{bad:?}");
        }
    }
}
