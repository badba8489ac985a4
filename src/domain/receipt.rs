//! What a transport answers when it takes a message: where the message went.

use std::fmt;
use std::path::PathBuf;

/// Proof that a transport took a message: stored with its send, shown on the timeline, and
/// how a provider's later status report finds the send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// Written whole into the file outbox, at this path.
    File(PathBuf),
    /// Accepted by an SMTP relay with this reply code; `secondary`: by the secondary relay,
    /// while the primary's circuit was open.
    Smtp {
        /// The relay's reply code to the message (250).
        code: u16,
        /// Whether the secondary relay took it.
        secondary: bool,
    },
    /// Accepted by an SMS provider under its own message id (Twilio's `SM…` sid).
    Provider {
        /// The provider, as configured (`twilio`).
        provider: String,
        /// Its message id.
        id: String,
    },
}

impl Receipt {
    /// Twilio's message `sid`.
    pub fn twilio(sid: &str) -> Self {
        Self::Provider { provider: "twilio".into(), id: sid.to_owned() }
    }

    /// Whether the secondary relay took the message.
    pub fn via_secondary(&self) -> bool {
        matches!(self, Self::Smtp { secondary: true, .. })
    }

    /// The outbox file, for a message written to one.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            Self::File(p) => Some(p),
            _ => None,
        }
    }

    /// Parse the stored form ([`fmt::Display`]): `smtp 250`, `smtp 250 via secondary`,
    /// `twilio SM…`, else an outbox path.
    pub fn parse(s: &str) -> Result<Self, std::convert::Infallible> {
        let smtp = s.strip_prefix("smtp ").and_then(|rest| {
            let (code, secondary) = match rest.strip_suffix(" via secondary") {
                Some(code) => (code, true),
                None => (rest, false),
            };
            code.parse().ok().map(|code| Self::Smtp { code, secondary })
        });
        if let Some(r) = smtp {
            return Ok(r);
        }
        if let Some(sid) = s.strip_prefix("twilio ") {
            return Ok(Self::twilio(sid));
        }
        Ok(Self::File(PathBuf::from(s)))
    }
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Smtp { code, secondary: false } => write!(f, "smtp {code}"),
            Self::Smtp { code, secondary: true } => write!(f, "smtp {code} via secondary"),
            Self::Provider { provider, id } => write!(f, "{provider} {id}"),
        }
    }
}

impl serde::Serialize for Receipt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_forms_round_trip() {
        for r in [
            Receipt::File("outbox/email/abc.eml".into()),
            Receipt::Smtp { code: 250, secondary: false },
            Receipt::Smtp { code: 250, secondary: true },
            Receipt::twilio("SM0123"),
        ] {
            assert_eq!(Receipt::parse(&r.to_string()), Ok(r));
        }
        assert!(Receipt::parse("smtp 250 via secondary").is_ok_and(|r| r.via_secondary()));
    }
}
