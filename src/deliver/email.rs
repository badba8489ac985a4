//! Email composition (lettre's builder) and transports.

use crate::domain::Receipt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::Message;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};

use super::relay::{Breaker, Relay, Relays};
use super::{DeliveryError, write_atomically};
use crate::domain::Email;

/// One email ready to go.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    /// The send-log public id; becomes the Message-ID and the outbox file name.
    pub id: String,
    /// Sender.
    pub from: Mailbox,
    /// Where replies go.
    pub reply_to: Option<Mailbox>,
    /// Recipient.
    pub to: Email,
    /// Subject.
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
    /// One-click unsubscribe URL (RFC 8058).
    pub unsubscribe_url: String,
    /// Mail-based unsubscribe address offered beside the URL (RFC 2369).
    pub unsubscribe_mailto: Option<lettre::Address>,
}

/// RFC 2369 `List-Unsubscribe`: `<https://…>, <mailto:…>`, the URL first as RFC 8058 asks.
#[derive(Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[derive(Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

impl OutgoingEmail {
    /// A rendered email from `shop` to `to`, identified by the send-log id `id`.
    pub fn compose(
        id: String,
        shop: &crate::config::Shop,
        to: Email,
        mail: crate::render::RenderedEmail,
        unsubscribe_url: String,
    ) -> Self {
        Self {
            id,
            from: shop.from.clone(),
            reply_to: shop.reply_to.clone(),
            to,
            subject: mail.subject,
            text: mail.text,
            html: mail.html,
            unsubscribe_url,
            unsubscribe_mailto: shop.unsubscribe_mailto.clone(),
        }
    }

    /// The MIME message: multipart/alternative (text, HTML) with RFC 8058 headers; the subject
    /// is RFC 2047-encoded by lettre when it is not ASCII.
    pub fn to_message(&self) -> Result<Message, DeliveryError> {
        let to: Mailbox = self.to.as_str().parse().map_err(|e| DeliveryError::Permanent(format!("recipient: {e}")))?;
        let mut list = format!("<{}>", self.unsubscribe_url);
        if let Some(m) = &self.unsubscribe_mailto {
            list.push_str(&format!(", <mailto:{m}?subject=unsubscribe>"));
        }
        let mut b = Message::builder()
            .message_id(Some(format!("<{}@cartback>", self.id)))
            .date_now()
            .from(self.from.clone())
            .to(to)
            .subject(self.subject.clone())
            .header(ListUnsubscribe(list))
            .header(ListUnsubscribePost);
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.clone());
        }
        b.multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(self.text.clone()))
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(self.html.clone())),
        )
        .map_err(|e| DeliveryError::Permanent(format!("cannot build message: {e}")))
    }
}

/// Where emails go.
#[derive(Clone)]
pub enum EmailTransport {
    /// `<dir>/<id>.eml`, written atomically.
    File(PathBuf),
    /// SMTP relays (pooled connections; a secondary behind a circuit breaker).
    Smtp(Arc<Relays>),
}

impl std::fmt::Debug for EmailTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "EmailTransport::File({})", p.display()),
            Self::Smtp(_) => f.write_str("EmailTransport::Smtp(..)"),
        }
    }
}

/// A relay URL lettre cannot use, with the configuration key it came from.
#[derive(Debug, thiserror::Error)]
#[error("{key} is not a relay URL Cartback can use (smtp://host:port, smtps://host or smtp://host?tls=required)")]
pub struct SmtpUrlError {
    /// `email.smtp_url` or `email.smtp_secondary_url`.
    pub key: &'static str,
    /// Why (mostly lettre's reason).
    #[source]
    pub source: super::smtp_pool::UrlError,
}

/// How an SMTP transport is built.
#[derive(Debug, Clone)]
pub struct SmtpOptions {
    /// Timeout for one SMTP conversation.
    pub timeout: Duration,
    /// Pooled connections per relay.
    pub connections: u32,
    /// Consecutive relay-down failures that open the circuit.
    pub breaker_failures: u32,
    /// How long an open circuit skips the primary.
    pub breaker_cooldown: Duration,
}

fn relay(name: &'static str, url: &str, o: &SmtpOptions) -> Result<Relay, super::smtp_pool::UrlError> {
    let target = super::smtp_pool::Target::from_url(url)?;
    Ok(Relay::new(name, o.timeout, super::smtp_pool::SmtpPool::new(target, o.connections)))
}

impl EmailTransport {
    /// An SMTP transport from `smtp://`, `smtps://` or `smtp://…?tls=required` URLs, with an
    /// optional secondary relay.
    pub fn smtp(primary: &str, secondary: Option<&str>, options: &SmtpOptions) -> Result<Self, SmtpUrlError> {
        let bad = |key| move |source| SmtpUrlError { key, source };
        let secondary =
            secondary.map(|u| relay("secondary", u, options)).transpose().map_err(bad("email.smtp_secondary_url"))?;
        Ok(Self::Smtp(Arc::new(Relays::new(
            relay("primary", primary, options).map_err(bad("email.smtp_url"))?,
            secondary,
            Breaker::new(options.breaker_failures, options.breaker_cooldown),
        ))))
    }

    /// Whether delivering the same message twice has one effect (the file outbox rewrites
    /// the same file); SMTP has no such guarantee.
    pub fn idempotent(&self) -> bool {
        matches!(self, Self::File(_))
    }

    /// Whether the primary SMTP relay is currently skipped.
    pub fn circuit_open(&self) -> bool {
        matches!(self, Self::Smtp(r) if r.circuit_open())
    }

    /// Deliver; returns where it went (file path or SMTP reply). Over SMTP, `gate` is asked
    /// after the body and before the final `.` (the moment the relay takes responsibility);
    /// the file outbox is idempotent and needs no gate.
    pub async fn send(&self, email: &OutgoingEmail, gate: &impl super::Gate) -> Result<Receipt, DeliveryError> {
        let msg = email.to_message()?;
        match self {
            Self::File(dir) => {
                let path = write_atomically(dir, &format!("{}.eml", email.id), &msg.formatted()).await?;
                Ok(Receipt::File(path))
            }
            Self::Smtp(relays) => relays.send(msg, gate).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{EmailTransport, SmtpOptions};

    #[tokio::test]
    async fn a_relay_url_lettre_refuses_names_its_key() {
        let o = SmtpOptions {
            timeout: Duration::from_secs(1),
            connections: 1,
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(1),
        };
        let Err(e) = EmailTransport::smtp("smtp://127.0.0.1:2525", Some("ftp://relay"), &o) else {
            panic!("ftp:// is not a relay URL");
        };
        assert_eq!(e.key, "email.smtp_secondary_url");
        assert!(e.to_string().starts_with("email.smtp_secondary_url is not a relay URL"), "{e}");
        let Err(e) = EmailTransport::smtp("ftp://relay", None, &o) else { panic!("ftp:// is not a relay URL") };
        assert_eq!(e.key, "email.smtp_url");
    }
}
