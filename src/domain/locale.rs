use std::fmt;

/// A BCP 47 language tag reduced to what template lookup needs: language, optional script and region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Locale(String);

/// Why a locale tag was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a locale tag like \"de\", \"de-AT\" or \"zh-Hans-CN\"")]
pub struct LocaleError(String);

impl Locale {
    /// Parse `de`, `de-AT`, `de_AT`, `zh-Hans-CN`; normalises case (`de-AT`, `zh-Hans-CN`).
    pub fn parse(s: &str) -> Result<Self, LocaleError> {
        let err = || LocaleError(s.to_owned());
        let mut out = Vec::new();
        for (i, part) in s.trim().split(['-', '_']).enumerate() {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(err());
            }
            let norm = match (i, part.len()) {
                (0, 2..=3) if part.bytes().all(|b| b.is_ascii_alphabetic()) => part.to_ascii_lowercase(),
                (0, _) => return Err(err()),
                (_, 4) => {
                    let mut c = part.to_ascii_lowercase();
                    c[..1].make_ascii_uppercase();
                    c
                }
                (_, 2) | (_, 3) => part.to_ascii_uppercase(),
                _ => return Err(err()),
            };
            out.push(norm);
            if out.len() > 3 {
                return Err(err());
            }
        }
        Ok(Self(out.join("-")))
    }

    /// English, the end of every fallback chain.
    pub fn en() -> Self {
        Self("en".into())
    }

    /// The normalised tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This tag and its truncations, most specific first: `zh-Hans-CN`, `zh-Hans`, `zh`.
    pub fn truncations(&self) -> Vec<Locale> {
        let parts: Vec<&str> = self.0.split('-').collect();
        (1..=parts.len()).rev().map(|n| Locale(parts[..n].join("-"))).collect()
    }

    /// The lookup chain `customer → its truncations → shop locale (and truncations) → en`, without repeats.
    pub fn fallback_chain(&self, shop: &Locale) -> Vec<Locale> {
        let mut chain: Vec<Locale> = Vec::new();
        let en = Locale::en();
        for l in self.truncations().into_iter().chain(shop.truncations()).chain([en]) {
            if !chain.contains(&l) {
                chain.push(l);
            }
        }
        chain
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> Locale {
        Locale::parse(s).expect("locale")
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(l("de_at").as_str(), "de-AT");
        assert_eq!(l("ZH-hans-cn").as_str(), "zh-Hans-CN");
        assert!(Locale::parse("").is_err());
        assert!(Locale::parse("german").is_err());
        assert!(Locale::parse("de--AT").is_err());
    }

    #[test]
    fn fallback_chain_is_specific_first_without_repeats() {
        let chain: Vec<String> = l("de-AT").fallback_chain(&l("fr")).iter().map(|l| l.to_string()).collect();
        assert_eq!(chain, ["de-AT", "de", "fr", "en"]);
        let chain: Vec<String> = l("en-GB").fallback_chain(&l("en")).iter().map(|l| l.to_string()).collect();
        assert_eq!(chain, ["en-GB", "en"]);
    }
}
