//! Pooled SMTP connections with Nagle's algorithm off.
//!
//! lettre 0.11.23 writes a message's body and its final `.` as two writes on a socket without
//! `TCP_NODELAY`. The kernel then holds the five-byte `.` until the relay acknowledges the
//! body, and the relay delays that acknowledgement (40 ms on Linux), so one connection
//! carried about 45 messages a second into a relay on loopback. lettre's own pool makes its
//! sockets itself, so Cartback makes them here: it connects (and, for `smtps://`, wraps
//! TLS) on a socket with `TCP_NODELAY` and hands it to lettre's [`AsyncSmtpConnection`],
//! which speaks SMTP, upgrades with STARTTLS and authenticates as before. The fix is merged
//! upstream (lettre pull request 1159) but not released; when it is, this module can go back
//! to lettre's pool.
//!
//! The pool (deadpool) holds at most `email.smtp_connections` connections per relay: a
//! message waits for a free one instead of opening more. A connection goes back to the
//! pool only when its conversation finished; one left mid-conversation (cut off by the
//! timeout, its task cancelled) or broken by an error is closed. A connection that sat idle
//! for 10 s is checked with `NOOP` before it is used again (relays close idle connections);
//! one idle for a minute is closed when the next message comes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How long a connection may sit idle before it is checked with `NOOP` on reuse.
const IDLE_CHECK: Duration = Duration::from_secs(10);

/// Idle connections older than this are closed (lettre's pool default), so a quiet
/// Cartback does not hold connections the relay counts against it.
const IDLE_CLOSE: Duration = Duration::from_secs(60);

/// How the conversation is encrypted.
#[derive(Clone)]
enum Security {
    /// `smtp://host` without `tls=`: plain (a relay on loopback or a private network).
    None,
    /// `smtp://…?tls=opportunistic`: STARTTLS when the relay offers it.
    Opportunistic(TlsParameters),
    /// `smtp://…?tls=required`: STARTTLS or fail.
    Required(TlsParameters),
    /// `smtps://`: TLS from the first byte.
    Wrapper(Arc<tokio_rustls::TlsConnector>),
}

/// Where and how to connect: what the relay URL says.
#[derive(Clone)]
pub struct Target {
    host: String,
    port: u16,
    security: Security,
    hello: ClientId,
    credentials: Option<Credentials>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No credentials here: this may be logged.
        f.debug_struct("Target").field("host", &self.host).field("port", &self.port).finish_non_exhaustive()
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect failed or the TLS handshake of `smtps://` failed.
    #[error("cannot connect to {addr}: {source}")]
    Network { addr: String, source: io::Error },
    /// The relay's greeting, EHLO, STARTTLS or authentication failed.
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// Why a relay URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// lettre's reason.
    #[error(transparent)]
    Lettre(#[from] lettre::transport::smtp::Error),
    /// A URL lettre took that this module does not read the same way (not expected).
    #[error("unsupported relay URL")]
    Unsupported,
}

/// Why one message did not go through a pooled connection.
#[derive(Debug, thiserror::Error)]
pub enum PoolSendError {
    #[error(transparent)]
    Connect(ConnectError),
    #[error(transparent)]
    Smtp(lettre::transport::smtp::Error),
}

impl Target {
    /// Read a relay URL that lettre accepted (`AsyncSmtpTransport::from_url`), by the same
    /// rules: default ports 25 / 587 (`tls=`) / 465 (`smtps`), credentials from the user
    /// part, the EHLO name from the path.
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        // lettre validates (and words the errors); what it accepted is read again here.
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)?;
        let u = url::Url::parse(url).map_err(|_| UrlError::Unsupported)?;
        let host = u.host_str().ok_or(UrlError::Unsupported)?.to_owned();
        let tls = u.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
        let (security, default_port) = match (u.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::None, 25),
            ("smtp", Some("required")) => (Security::Required(TlsParameters::new(host.clone())?), 587),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic(TlsParameters::new(host.clone())?), 587),
            ("smtps", _) => (Security::Wrapper(Arc::new(tls_connector())), 465),
            _ => return Err(UrlError::Unsupported),
        };
        let hello = match u.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let credentials = u.password().map(|p| Credentials::new(decode(u.username()), decode(p)));
        Ok(Self { port: u.port().unwrap_or(default_port), host, security, hello, credentials })
    }

    /// Open one connection: TCP with `TCP_NODELAY`, TLS as the URL says, EHLO, AUTH.
    async fn connect(&self) -> Result<AsyncSmtpConnection, ConnectError> {
        let addr = format!("{}:{}", self.host, self.port);
        let network = |source| ConnectError::Network { addr: addr.clone(), source };
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(network)?;
        tcp.set_nodelay(true).map_err(network)?;
        let mut conn = match &self.security {
            Security::Wrapper(tls) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| network(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
                let stream = tls.connect(name, tcp).await.map_err(network)?;
                AsyncSmtpConnection::connect_with_transport(Box::new(Tls(stream)), &self.hello).await?
            }
            _ => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await?,
        };
        match &self.security {
            Security::Required(p) => conn.starttls(p.clone(), &self.hello).await?,
            Security::Opportunistic(p) if conn.can_starttls() => conn.starttls(p.clone(), &self.hello).await?,
            _ => {}
        }
        if let Some(c) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, c).await?;
        }
        Ok(conn)
    }
}

/// TLS for `smtps://`: the same roots and crypto provider as lettre's (webpki roots, ring).
fn tls_connector() -> tokio_rustls::TlsConnector {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| unreachable!("ring offers the default TLS versions: {e}"))
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// An `smtps://` stream as lettre takes it.
#[derive(Debug)]
struct Tls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for Tls {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// A pooled connection and whether it is between conversations.
pub struct Conn {
    smtp: AsyncSmtpConnection,
    /// Set while a message is being sent: a connection dropped with it set was cut off
    /// mid-conversation and must not be used again.
    talking: bool,
}

/// Opens and checks connections for deadpool.
pub struct Connector(Target);

impl managed::Manager for Connector {
    type Type = Conn;
    type Error = ConnectError;

    async fn create(&self) -> Result<Conn, ConnectError> {
        // Boxed: connecting (TLS, EHLO, AUTH) is a large future, and rare.
        Ok(Conn { smtp: Box::pin(self.0.connect()).await?, talking: false })
    }

    async fn recycle(&self, conn: &mut Conn, metrics: &Metrics) -> RecycleResult<ConnectError> {
        if conn.talking || conn.smtp.has_broken() {
            return Err(RecycleError::message("left mid-conversation or broken"));
        }
        if metrics.last_used() > IDLE_CHECK && !conn.smtp.test_connected().await {
            return Err(RecycleError::message("closed while idle"));
        }
        Ok(())
    }
}

/// The connections to one relay.
pub struct SmtpPool(managed::Pool<Connector>);

impl SmtpPool {
    /// At most `max` connections to `target`.
    pub fn new(target: Target, max: u32) -> Self {
        let pool = managed::Pool::builder(Connector(target))
            .max_size(usize::try_from(max.max(1)).unwrap_or(1))
            // The most recently used connection first: the others may idle out.
            .queue_mode(managed::QueueMode::Lifo)
            .build()
            .unwrap_or_else(|e| unreachable!("a pool without timeouts needs no runtime: {e}"));
        Self(pool)
    }

    /// Send one message on a pooled connection (opening one if none is free and the pool is
    /// not full). The caller bounds the time; a cancelled send closes its connection.
    pub async fn send(&self, envelope: &Envelope, body: &[u8]) -> Result<Response, PoolSendError> {
        // Dropping a connection closes its socket (without QUIT: that would need a task).
        self.0.retain(|_, metrics| metrics.last_used() < IDLE_CLOSE);
        let mut conn: Object<Connector> = self.0.get().await.map_err(|e| match e {
            managed::PoolError::Backend(e) => PoolSendError::Connect(e),
            other => PoolSendError::Connect(ConnectError::Network {
                addr: format!("{}:{}", self.0.manager().0.host, self.0.manager().0.port),
                source: io::Error::other(other.to_string()),
            }),
        })?;
        conn.talking = true;
        let result = conn.smtp.send(envelope, body).await;
        conn.talking = false;
        result.map_err(PoolSendError::Smtp)
    }

    /// Close every idle connection (a relay that timed out may have left them out of step).
    pub fn clear(&self) {
        self.0.retain(|_, _| false);
    }
}

#[cfg(test)]
pub(super) mod tests {
    //! Against a scripted SMTP server on loopback that counts its connections.

    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use lettre::Address;
    use lettre::address::Envelope;

    use super::{SmtpPool, Target};

    /// What the scripted server saw.
    #[derive(Default)]
    pub(crate) struct Seen {
        pub connections: AtomicUsize,
        pub delivered: Mutex<Vec<String>>,
    }

    /// Accept connections forever; a message to `stall@…` gets no answer after its `.`,
    /// and every login is refused (`535`).
    pub(crate) fn serve() -> (u16, Arc<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Seen::default());
        let s = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                s.connections.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                std::thread::spawn(move || session(stream, &s));
            }
        });
        (port, seen)
    }

    fn session(stream: std::net::TcpStream, seen: &Seen) {
        let mut w = stream.try_clone().expect("clone");
        let mut r = BufReader::new(stream);
        let mut say = |text: &str| w.write_all(text.as_bytes()).is_ok();
        say("220 scripted ESMTP\r\n");
        let (mut line, mut rcpt) = (String::new(), String::new());
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let cmd = line.to_ascii_uppercase();
            let ok = if cmd.starts_with("EHLO") {
                say("250-scripted\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
            } else if cmd.starts_with("AUTH") {
                say("535 5.7.8 authentication credentials invalid\r\n")
            } else if cmd.starts_with("RCPT") {
                rcpt = line.trim().to_owned();
                say("250 ok\r\n")
            } else if cmd.starts_with("DATA") {
                say("354 go on\r\n");
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                }
                if rcpt.contains("stall@") {
                    std::thread::sleep(Duration::from_secs(30));
                    return;
                }
                seen.delivered.lock().expect("lock").push(rcpt.clone());
                say("250 queued\r\n")
            } else if cmd.starts_with("QUIT") {
                say("221 bye\r\n");
                return;
            } else {
                say("250 ok\r\n") // MAIL, NOOP, RSET
            };
            if !ok {
                return;
            }
        }
    }

    fn envelope(to: &str) -> Envelope {
        let from: Address = "shop@example.com".parse().expect("from");
        Envelope::new(Some(from), vec![to.parse().expect("to")]).expect("envelope")
    }

    const BODY: &[u8] = b"Subject: hi\r\n\r\nYour cart is waiting.\r\n";

    #[tokio::test]
    async fn connections_are_reused_capped_and_closed_when_cut_off_mid_conversation() {
        let (port, seen) = serve();
        let target = Target::from_url(&format!("smtp://127.0.0.1:{port}")).expect("url");
        let pool = SmtpPool::new(target, 1);

        // Three messages at once through a pool of one: one connection carries them all.
        let (ea, eb, ec) = (envelope("a@example.com"), envelope("b@example.com"), envelope("c@example.com"));
        let (a, b, c) = tokio::join!(pool.send(&ea, BODY), pool.send(&eb, BODY), pool.send(&ec, BODY));
        for r in [a, b, c] {
            assert_eq!(r.expect("sent").code().to_string(), "250");
        }
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1, "one connection, reused");
        assert_eq!(seen.delivered.lock().expect("lock").len(), 3);

        // A conversation cut off by the caller's timeout leaves its connection out of step:
        // it is closed, and the next message goes on a new one.
        let stalled = envelope("stall@example.com");
        let cut = tokio::time::timeout(Duration::from_millis(300), pool.send(&stalled, BODY));
        assert!(cut.await.is_err(), "the relay never answers the stalled message");
        let r = pool.send(&envelope("d@example.com"), BODY).await.expect("sent after the cut-off");
        assert_eq!(r.code().to_string(), "250");
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2, "the cut-off connection was not reused");
        let delivered = seen.delivered.lock().expect("lock").clone();
        assert_eq!(delivered.len(), 4);
        assert!(delivered.last().is_some_and(|r| r.contains("d@example.com")), "{delivered:?}");
    }

    #[test]
    fn the_relay_url_is_read_as_lettre_reads_it() {
        let t = Target::from_url("smtp://user:p%40ss@relay.example:2525/mx.shop.example").expect("url");
        assert_eq!((t.host.as_str(), t.port), ("relay.example", 2525));
        assert!(matches!(t.security, super::Security::None));
        assert!(matches!(&t.hello, lettre::transport::smtp::extension::ClientId::Domain(d) if d == "mx.shop.example"));
        assert!(t.credentials.is_some());
        assert!(!format!("{t:?}").contains("p@ss"), "credentials stay out of Debug");
        let t = Target::from_url("smtp://relay.example?tls=required").expect("url");
        assert_eq!(t.port, 587);
        assert!(matches!(t.security, super::Security::Required(_)));
        let t = Target::from_url("smtps://relay.example").expect("url");
        assert_eq!(t.port, 465);
        assert!(matches!(t.security, super::Security::Wrapper(_)));
        assert!(Target::from_url("ftp://relay.example").is_err());
    }
}
