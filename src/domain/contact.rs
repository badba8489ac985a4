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
    fn masks_hide_the_middle() {
        assert_eq!(mask_email("anna@example.de"), "a***@example.de");
        assert_eq!(mask_phone("+4915123456789"), "+49********789");
        assert_eq!(format!("{:?}", Email::parse("anna@example.de").ok()), "Some(Email(a***@example.de))");
    }
}
