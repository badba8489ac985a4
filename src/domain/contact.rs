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
    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", mask_email(&self.0))
    }
}

/// A phone number as written by the shop, normalised to `+` and digits.
///
/// Full E.164 validation per country comes with SMS delivery; here we only
/// insist on the international form so that nothing ambiguous is stored.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

/// Why a phone number was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("phone numbers must be in international form, e.g. +4915123456789")]
pub struct PhoneError;

impl Phone {
    /// Parse `+<country><number>`, allowing spaces, dashes, dots and parentheses.
    pub fn parse(s: &str) -> Result<Self, PhoneError> {
        let s = s.trim();
        let rest = s.strip_prefix('+').ok_or(PhoneError)?;
        let mut digits = String::with_capacity(16);
        digits.push('+');
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(PhoneError),
            }
        }
        // E.164: at most 15 digits, and no country code starts with 0.
        let n = digits.len() - 1;
        if !(8..=15).contains(&n) || digits.as_bytes()[1] == b'0' {
            return Err(PhoneError);
        }
        Ok(Self(digits))
    }
    /// The number as `+` and digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", mask_phone(&self.0))
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
    fn phone_requires_international_form() {
        assert_eq!(Phone::parse("+49 151 2345-6789").map(|p| p.0), Ok("+4915123456789".into()));
        assert!(Phone::parse("015123456789").is_err());
        assert!(Phone::parse("+0123456789").is_err());
        assert!(Phone::parse("+49abc").is_err());
    }

    #[test]
    fn masks_hide_the_middle() {
        assert_eq!(mask_email("anna@example.de"), "a***@example.de");
        assert_eq!(mask_phone("+4915123456789"), "+49********789");
        assert_eq!(format!("{:?}", Email::parse("anna@example.de").ok()), "Some(Email(a***@example.de))");
    }
}
