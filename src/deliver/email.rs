//! Email composition (lettre's builder) and transports.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{DeliveryError, write_atomically};
use crate::domain::Email;

/// One email ready to go.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    /// The send-log public id; becomes the Message-ID and the outbox file name.
    pub id: String,
    /// `Name <address>`.
    pub from: String,
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
}

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
        HeaderValue::new(Self::name(), format!("<{}>", self.0))
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
    /// The MIME message: multipart/alternative (text, HTML) with RFC 8058 headers.
    pub fn to_message(&self) -> Result<Message, DeliveryError> {
        let from: Mailbox =
            self.from.parse().map_err(|e| DeliveryError::Permanent(format!("sender {:?}: {e}", self.from)))?;
        let to: Mailbox = self.to.as_str().parse().map_err(|e| DeliveryError::Permanent(format!("recipient: {e}")))?;
        Message::builder()
            .message_id(Some(format!("<{}@cartback>", self.id)))
            .from(from)
            .to(to)
            .subject(self.subject.clone())
            .header(ListUnsubscribe(self.unsubscribe_url.clone()))
            .header(ListUnsubscribePost)
            .multipart(
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
    /// An SMTP relay (pooled connections).
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl std::fmt::Debug for EmailTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "EmailTransport::File({})", p.display()),
            Self::Smtp(_) => f.write_str("EmailTransport::Smtp(..)"),
        }
    }
}

impl EmailTransport {
    /// An SMTP transport from `smtp://`, `smtps://` or `smtp://…?tls=required` URLs.
    pub fn smtp(url: &str, timeout: Duration) -> Result<Self, lettre::transport::smtp::Error> {
        Ok(Self::Smtp(AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.timeout(Some(timeout)).build()))
    }

    /// Deliver; returns where it went (file path or SMTP reply).
    pub async fn send(&self, email: &OutgoingEmail) -> Result<String, DeliveryError> {
        let msg = email.to_message()?;
        match self {
            Self::File(dir) => {
                let path = write_atomically(dir, &format!("{}.eml", email.id), &msg.formatted()).await?;
                Ok(path.display().to_string())
            }
            Self::Smtp(t) => match t.send(msg).await {
                Ok(resp) => Ok(format!("smtp {}", resp.code())),
                Err(e) if e.is_permanent() => Err(DeliveryError::Permanent(format!("SMTP: {e}"))),
                Err(e) => Err(DeliveryError::Transient(format!("SMTP: {e}"))),
            },
        }
    }
}
