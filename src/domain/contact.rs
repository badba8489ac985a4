use std::fmt;

/// A syntactically valid email address (checked with lettre's RFC 5322 parser).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Why an email address was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a valid email address")]
pub struct EmailError;

impl Email {
    /// Parse and normalise (trim, lower-case the domain) an address.
    pub fn parse(s: &str) -> Result<Self, EmailError> {
        let s = s.trim();
        let addr: lettre::Address = s.parse().map_err(|_| EmailError)?;
        // RFC 5321 allows domain literals (`anna@[127.0.0.1]`) and dotless hosts, but no
        // relay a shop uses delivers to them: every step would fail, so they are refused.
        let domain = addr.domain();
        if domain.starts_with('[') || !domain.contains('.') || domain.ends_with('.') {
            return Err(EmailError);
        }
        Ok(Self(format!("{}@{}", addr.user(), addr.domain().to_ascii_lowercase())))
    }
    /// The address as text, as the customer gave it (domain in lower case).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form addresses are compared in: all lower case. RFC 5321 lets a mailbox's local
    /// part be case-sensitive, but the providers shops send to treat it as case-insensitive,
    /// and an unsubscribe is the person's, whatever the spelling (docs/webhooks.md).
    pub fn canonical(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", mask_email(&self.0))
    }
}

/// A valid phone number in E.164 form, with the country it belongs to.
///
/// Parsed and validated with the `phonenumber` crate (libphonenumber's metadata): a number
/// that merely has the right shape but no valid range in its country is refused.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone {
    e164: String,
    country: Option<String>,
}

/// Why a phone number was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a valid phone number in international form, e.g. +4915123456789")]
pub struct PhoneError;

impl Phone {
    /// Parse `+<country><number>` (spaces, dashes, dots and parentheses allowed) and validate it.
    pub fn parse(s: &str) -> Result<Self, PhoneError> {
        let s = s.trim();
        if !s.starts_with('+') || s.len() > 32 {
            return Err(PhoneError);
        }
        let n = phonenumber::parse(None, s).map_err(|_| PhoneError)?;
        if !n.is_valid() {
            return Err(PhoneError);
        }
        let e164 = n.format().mode(phonenumber::Mode::E164).to_string();
        let country = n.country().id().map(|id| id.as_ref().to_owned());
        Ok(Self { e164, country })
    }
    /// The number as `+` and digits.
    pub fn as_str(&self) -> &str {
        &self.e164
    }
    /// ISO 3166 alpha-2 country of the number, when the number identifies one.
    pub fn country(&self) -> Option<&str> {
        self.country.as_deref()
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", mask_phone(&self.e164))
    }
}

/// Every officially assigned ISO 3166-1 alpha-2 code, and `XK` (Kosovo, user-assigned but
/// used by shop systems). Sorted, so a code is found by binary search.
const COUNTRIES: [&str; 250] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ", "BA", "BB", "BD",
    "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS", "BT", "BV", "BW", "BY", "BZ", "CA",
    "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE",
    "DJ", "DK", "DM", "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA",
    "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK",
    "HM", "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM", "JO", "JP",
    "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT",
    "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS",
    "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ",
    "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS",
    "RU", "RW", "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST",
    "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR", "TT", "TV", "TW",
    "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI", "VN", "VU", "WF", "WS", "XK", "YE", "YT",
    "ZA", "ZM", "ZW",
];

/// `de` → `DE` when it is an assigned country code (see [`COUNTRIES`]); `ZZ`, `EU` or `D1` → `None`.
pub fn country_code(s: &str) -> Option<&'static str> {
    let upper = s.trim().to_ascii_uppercase();
    COUNTRIES.binary_search(&upper.as_str()).ok().map(|i| COUNTRIES[i])
}

/// `anna@example.de` → `a***@example.de`: enough to tell cases apart in logs, not to contact anyone.
pub fn mask_email(s: &str) -> String {
    match s.split_once('@') {
        Some((user, domain)) => {
            let first: String = user.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// `+4915123456789` → `+49*******789`.
pub fn mask_phone(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 6 {
        return "***".into();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_parses_and_normalises_domain() {
        assert_eq!(Email::parse(" Anna@Example.DE ").map(|e| e.0), Ok("Anna@example.de".into()));
        assert!(Email::parse("not-an-address").is_err());
        assert!(Email::parse("a@").is_err());
    }

    #[test]
    fn phone_is_normalised_validated_and_knows_its_country() {
        let p = Phone::parse("+49 151 2345-6789").expect("valid German mobile");
        assert_eq!((p.as_str(), p.country()), ("+4915123456789", Some("DE")));
        assert_eq!(
            Phone::parse("+1 (212) 555-0123").ok().and_then(|p| p.country().map(str::to_owned)),
            Some("US".into())
        );
        assert!(Phone::parse("015123456789").is_err(), "national form is ambiguous");
        assert!(Phone::parse("+0123456789").is_err());
        assert!(Phone::parse("+49abc").is_err());
        assert!(Phone::parse("+49 1").is_err(), "right shape, no valid range");
    }

    #[test]
    fn domain_literals_and_dotless_hosts_are_refused() {
        for bad in ["anna@[127.0.0.1]", "anna@[IPv6:::1]", "anna@localhost", "anna@example."] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn country_codes_are_the_assigned_ones() {
        assert!(COUNTRIES.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        assert_eq!(country_code("de"), Some("DE"));
        assert_eq!(country_code("XK"), Some("XK"));
        for bad in ["ZZ", "EU", "UK", "D1", "DEU", ""] {
            assert_eq!(country_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn masks_hide_the_middle() {
        assert_eq!(mask_email("anna@example.de"), "a***@example.de");
        assert_eq!(mask_phone("+4915123456789"), "+49********789");
        assert_eq!(format!("{:?}", Email::parse("anna@example.de").ok()), "Some(Email(a***@example.de))");
    }
}
