//! Pooled SMTP connections that stop before the final dot when asked.
//!
//! A relay takes responsibility for a message only with the final `.` of DATA and its `250`,
//! so Cartback records the hand-over at that moment, not before the conversation
//! (docs/delivery.md). lettre writes the body and the dot in one call, so Cartback speaks
//! `MAIL`, `RCPT` and `DATA` through lettre's commands, writes the body and the dot itself on
//! the same stream ([`super::smtp_stream`]) and asks a [`Gate`] between the two. It also opens
//! the sockets itself, with `TCP_NODELAY` (lettre 0.11.23 leaves Nagle's algorithm on: the
//! five-byte `.` then waited for the relay's delayed ACK, about 45 messages a second per
//! connection into a relay on loopback), does TLS for `smtps://` and STARTTLS, and lets
//! lettre read every reply and authenticate.
//!
//! The pool (deadpool) holds at most `email.smtp_connections` connections per relay: a
//! message waits for a free one instead of opening more. A connection goes back to the
//! pool only when its conversation finished; one left mid-conversation (cut off by the
//! timeout, its task cancelled) or broken by an error is closed. A connection that sat idle
//! for 10 s is checked with `NOOP` before it is used again (relays close idle connections);
//! one idle for a minute is closed when the next message comes.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Starttls};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::net::TcpStream;

use super::smtp_stream::{Shared, Socket, dot_stuffed, tls_handshake};

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
    Opportunistic(Arc<tokio_rustls::TlsConnector>),
    /// `smtp://…?tls=required`: STARTTLS or fail.
    Required(Arc<tokio_rustls::TlsConnector>),
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
    /// The address is internationalized and the relay does not offer SMTPUTF8.
    #[error("the envelope has a non-ASCII address and the relay does not offer SMTPUTF8")]
    NoSmtpUtf8,
    /// The body is not 7-bit and the relay does not offer 8BITMIME.
    #[error("the message has non-ASCII bytes and the relay does not offer 8BITMIME")]
    No8BitMime,
    /// Writing the body or the final `.` failed.
    #[error("connection lost while writing the message: {0}")]
    Io(#[source] io::Error),
    /// The gate said no before the final `.`: the relay discards the message.
    #[error("stopped before the final dot")]
    Stopped,
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
            ("smtp", Some("required")) => (Security::Required(Arc::new(tls_connector())), 587),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic(Arc::new(tls_connector())), 587),
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
    ///
    /// Cartback does STARTTLS itself rather than through lettre, so that the stream lettre
    /// speaks on is always the plaintext one and [`Conn::send`] can write a message's body
    /// and its final `.` on it directly.
    async fn connect(&self) -> Result<(AsyncSmtpConnection, Shared), ConnectError> {
        let addr = format!("{}:{}", self.host, self.port);
        let network = |source| ConnectError::Network { addr: addr.clone(), source };
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(network)?;
        tcp.set_nodelay(true).map_err(network)?;
        let shared = match &self.security {
            Security::Wrapper(tls) => {
                Shared::new(Socket::Tls(Box::new(tls_handshake(tls, &self.host, tcp).await.map_err(network)?)))
            }
            _ => Shared::new(Socket::Plain(tcp)),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(shared.clone()), &self.hello).await?;
        let upgrade = match &self.security {
            Security::Required(tls) => Some(tls),
            Security::Opportunistic(tls) if conn.can_starttls() => Some(tls),
            _ => None,
        };
        if let Some(tls) = upgrade {
            if !conn.can_starttls() {
                let why = "the relay does not offer STARTTLS, which tls=required asks for";
                return Err(network(io::Error::new(io::ErrorKind::Unsupported, why)));
            }
            conn.command(Starttls).await?;
            shared.upgrade(tls, &self.host).await.map_err(network)?;
            // The encrypted session starts over: a fresh EHLO (RFC 3207), answered on the
            // TLS stream; lettre reads the greeting it expects from the preface.
            shared.preface(b"220 TLS session started\r\n");
            conn = AsyncSmtpConnection::connect_with_transport(Box::new(shared.clone()), &self.hello).await?;
        }
        if let Some(c) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, c).await?;
        }
        Ok((conn, shared))
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

/// Asked once a message's body is with the relay and before its final `.`: whether to
/// finish it. The relay takes responsibility for a message only with the final `.` and its
/// `250`, so a conversation stopped before it leaves nothing there; a worker records that it
/// is handing the message over here, the last safe moment (docs/delivery.md).
pub trait Gate: Sync {
    /// `true`: send the final `.`. `false`: drop the connection, so the relay discards it.
    /// `to` names the relay (`host:port`), for the operator.
    fn pass(&self, to: &str) -> impl std::future::Future<Output = bool> + Send;

    /// Called once the final `.` is written: finish what `pass` started and could not wait
    /// for without widening the moment between the two.
    fn passed(&self) -> impl std::future::Future<Output = ()> + Send {
        async {}
    }
}

/// A gate that always passes (messages nobody needs to record the hand-over of).
pub struct Open;

impl Gate for Open {
    async fn pass(&self, _: &str) -> bool {
        true
    }
}

/// A pooled connection and whether it is between conversations.
pub struct Conn {
    smtp: AsyncSmtpConnection,
    raw: Shared,
    /// Set while a message is being sent: a connection dropped with it set was cut off
    /// mid-conversation (or stopped by its gate, or refused) and must not be used again.
    talking: bool,
}

impl Conn {
    /// One message: MAIL, RCPT, DATA and the body through lettre's commands, the gate, then
    /// the final `.` and the relay's answer. On any error `talking` stays set and the
    /// connection is dropped (as lettre's own `send` aborts its connection on one).
    async fn send(
        &mut self,
        envelope: &Envelope,
        body: &[u8],
        gate: &impl Gate,
        relay: &str,
    ) -> Result<Response, PoolSendError> {
        use tokio::io::AsyncWriteExt as _;
        let smtp = PoolSendError::Smtp;
        let mut options = vec![];
        let non_ascii = envelope.from().into_iter().chain(envelope.to()).any(|a| !AsRef::<str>::as_ref(a).is_ascii());
        if non_ascii {
            if !self.smtp.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(PoolSendError::NoSmtpUtf8);
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        if !body.is_ascii() {
            if !self.smtp.server_info().supports_feature(Extension::EightBitMime) {
                return Err(PoolSendError::No8BitMime);
            }
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        self.smtp.command(Mail::new(envelope.from().cloned(), options)).await.map_err(smtp)?;
        for to in envelope.to() {
            self.smtp.command(Rcpt::new(to.clone(), vec![])).await.map_err(smtp)?;
        }
        self.smtp.command(Data).await.map_err(smtp)?;
        let (stuffed, end) = dot_stuffed(body);
        let io = PoolSendError::Io;
        self.raw.write_all(&stuffed).await.map_err(io)?;
        self.raw.flush().await.map_err(io)?;
        if !gate.pass(relay).await {
            return Err(PoolSendError::Stopped);
        }
        self.raw.write_all(end).await.map_err(io)?;
        self.raw.flush().await.map_err(io)?;
        gate.passed().await;
        self.smtp.read_response().await.map_err(smtp)
    }
}

/// Opens and checks connections for deadpool.
pub struct Connector(Target);

impl managed::Manager for Connector {
    type Type = Conn;
    type Error = ConnectError;

    async fn create(&self) -> Result<Conn, ConnectError> {
        // Boxed: connecting (TLS, EHLO, AUTH) is a large future, and rare.
        let (smtp, raw) = Box::pin(self.0.connect()).await?;
        Ok(Conn { smtp, raw, talking: false })
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
pub struct SmtpPool {
    pool: managed::Pool<Connector>,
    /// `host:port`, for errors and the hand-over record.
    relay: String,
}

impl SmtpPool {
    /// At most `max` connections to `target`.
    pub fn new(target: Target, max: u32) -> Self {
        let relay = format!("{}:{}", target.host, target.port);
        let pool = managed::Pool::builder(Connector(target))
            .max_size(usize::try_from(max.max(1)).unwrap_or(1))
            // The most recently used connection first: the others may idle out.
            .queue_mode(managed::QueueMode::Lifo)
            .build()
            .unwrap_or_else(|e| unreachable!("a pool without timeouts needs no runtime: {e}"));
        Self { pool, relay }
    }

    /// Send one message on a pooled connection (opening one if none is free and the pool is
    /// not full). The caller bounds the time; a cancelled send closes its connection.
    pub async fn send(&self, envelope: &Envelope, body: &[u8], gate: &impl Gate) -> Result<Response, PoolSendError> {
        // Dropping a connection closes its socket (without QUIT: that would need a task).
        self.pool.retain(|_, metrics| metrics.last_used() < IDLE_CLOSE);
        let mut conn: Object<Connector> = self.pool.get().await.map_err(|e| match e {
            managed::PoolError::Backend(e) => PoolSendError::Connect(e),
            other => PoolSendError::Connect(ConnectError::Network {
                addr: self.relay.clone(),
                source: io::Error::other(other.to_string()),
            }),
        })?;
        conn.talking = true;
        let result = conn.send(envelope, body, gate, &self.relay).await;
        if result.is_err() {
            // Closed now rather than when the pool next looks at it: a relay keeps a
            // half-finished DATA open (and counts the connection) until the client leaves.
            drop(Object::take(conn));
        } else {
            conn.talking = false;
        }
        result
    }

    /// Close every idle connection (a relay that timed out may have left them out of step).
    pub fn clear(&self) {
        self.pool.retain(|_, _| false);
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

    use super::{Open, SmtpPool, Target};

    /// What the scripted server saw.
    #[derive(Default)]
    pub(crate) struct Seen {
        pub connections: AtomicUsize,
        pub delivered: Mutex<Vec<String>>,
        /// Every line of every message body, as it arrives.
        pub body_lines: Mutex<Vec<String>>,
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
                    seen.body_lines.lock().expect("lock").push(line.clone());
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
        let (a, b, c) =
            tokio::join!(pool.send(&ea, BODY, &Open), pool.send(&eb, BODY, &Open), pool.send(&ec, BODY, &Open));
        for r in [a, b, c] {
            assert_eq!(r.expect("sent").code().to_string(), "250");
        }
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1, "one connection, reused");
        assert_eq!(seen.delivered.lock().expect("lock").len(), 3);

        // A conversation cut off by the caller's timeout leaves its connection out of step:
        // it is closed, and the next message goes on a new one.
        let stalled = envelope("stall@example.com");
        let cut = tokio::time::timeout(Duration::from_millis(300), pool.send(&stalled, BODY, &Open));
        assert!(cut.await.is_err(), "the relay never answers the stalled message");
        let r = pool.send(&envelope("d@example.com"), BODY, &Open).await.expect("sent after the cut-off");
        assert_eq!(r.code().to_string(), "250");
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2, "the cut-off connection was not reused");
        let delivered = seen.delivered.lock().expect("lock").clone();
        assert_eq!(delivered.len(), 4);
        assert!(delivered.last().is_some_and(|r| r.contains("d@example.com")), "{delivered:?}");
    }

    /// A gate that looks at what the relay has before answering.
    struct Peek<'a> {
        seen: &'a Seen,
        go: bool,
        saw: Mutex<Option<(bool, usize)>>,
    }

    impl super::Gate for Peek<'_> {
        async fn pass(&self, _: &str) -> bool {
            // The body was flushed; give the relay a moment to read it.
            let has_body =
                || self.seen.body_lines.lock().expect("lock").iter().any(|l| l.contains("Your cart is waiting."));
            for _ in 0..100 {
                if has_body() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            *self.saw.lock().expect("lock") = Some((has_body(), self.seen.delivered.lock().expect("lock").len()));
            self.go
        }
    }

    #[tokio::test]
    async fn the_gate_is_asked_with_the_body_at_the_relay_and_a_no_leaves_nothing_there() {
        let (port, seen) = serve();
        let pool = SmtpPool::new(Target::from_url(&format!("smtp://127.0.0.1:{port}")).expect("url"), 1);

        let no = Peek { seen: &seen, go: false, saw: Mutex::new(None) };
        let r = pool.send(&envelope("a@example.com"), BODY, &no).await;
        assert!(matches!(r, Err(super::PoolSendError::Stopped)), "{r:?}");
        assert_eq!(*no.saw.lock().expect("lock"), Some((true, 0)), "asked with the body there, nothing delivered");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            seen.delivered.lock().expect("lock").is_empty(),
            "a conversation stopped before the dot delivers nothing"
        );

        let yes = Peek { seen: &seen, go: true, saw: Mutex::new(None) };
        let r = pool.send(&envelope("b@example.com"), BODY, &yes).await.expect("sent");
        assert_eq!(r.code().to_string(), "250");
        assert_eq!(*yes.saw.lock().expect("lock"), Some((true, 0)), "asked before the dot");
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2, "the stopped conversation's connection was closed");
        let delivered = seen.delivered.lock().expect("lock").clone();
        assert_eq!(delivered.len(), 1);
        assert!(delivered[0].contains("b@example.com"), "{delivered:?}");
    }

    /// A self-signed certificate for `localhost` made by openssl: (cert PEM, key PEM).
    fn localhost_certificate(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let status = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl (Debian's openssl package) makes the test certificate");
        assert!(status.success());
        (std::fs::read(cert).expect("cert"), std::fs::read(key).expect("key"))
    }

    /// An SMTP server on loopback that offers STARTTLS, refuses mail before it, and records
    /// the bodies it was given over TLS (as they came over the wire, dot-stuffed).
    async fn starttls_server(cert: &[u8], key: &[u8]) -> (u16, Arc<Mutex<Vec<String>>>) {
        use rustls::pki_types::pem::PemObject as _;
        use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
        let certs = vec![rustls::pki_types::CertificateDer::from_pem_slice(cert).expect("cert")];
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let b = bodies.clone();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut plain = BufReader::new(tcp);
            let mut line = String::new();
            plain.get_mut().write_all(b"220 tls-test ESMTP\r\n").await.expect("greet");
            loop {
                line.clear();
                plain.read_line(&mut line).await.expect("read");
                let cmd = line.to_ascii_uppercase();
                if cmd.starts_with("EHLO") {
                    plain.get_mut().write_all(b"250-tls-test\r\n250 STARTTLS\r\n").await.expect("ehlo");
                } else if cmd.starts_with("STARTTLS") {
                    plain.get_mut().write_all(b"220 go ahead\r\n").await.expect("starttls");
                    break;
                } else {
                    plain.get_mut().write_all(b"530 5.7.0 must issue STARTTLS first\r\n").await.expect("refuse");
                }
            }
            let tls = acceptor.accept(plain.into_inner()).await.expect("handshake");
            let mut tls = BufReader::new(tls);
            loop {
                line.clear();
                if tls.read_line(&mut line).await.expect("read") == 0 {
                    return;
                }
                let cmd = line.to_ascii_uppercase();
                let reply: &[u8] = if cmd.starts_with("EHLO") {
                    b"250-tls-test\r\n250 8BITMIME\r\n"
                } else if cmd.starts_with("DATA") {
                    tls.get_mut().write_all(b"354 go on\r\n").await.expect("354");
                    let mut body = String::new();
                    loop {
                        line.clear();
                        tls.read_line(&mut line).await.expect("body");
                        if line == ".\r\n" {
                            break;
                        }
                        body.push_str(&line);
                    }
                    b.lock().expect("lock").push(body);
                    b"250 queued\r\n"
                } else if cmd.starts_with("QUIT") {
                    b"221 bye\r\n"
                } else {
                    b"250 ok\r\n"
                };
                tls.get_mut().write_all(reply).await.expect("reply");
            }
        });
        (port, bodies)
    }

    #[tokio::test]
    async fn starttls_encrypts_the_whole_conversation_body_and_dot_included() {
        use rustls::pki_types::pem::PemObject as _;
        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = localhost_certificate(dir.path());
        let (port, bodies) = starttls_server(&cert, &key).await;
        let mut target = Target::from_url(&format!("smtp://localhost:{port}?tls=required")).expect("url");
        // Trust the test certificate only.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from_pem_slice(&cert).expect("cert")).expect("root");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        target.security = super::Security::Required(Arc::new(tokio_rustls::TlsConnector::from(Arc::new(config))));
        let pool = SmtpPool::new(target, 1);
        let r = pool.send(&envelope("a@example.com"), b".dotted\r\nYour cart is waiting.\r\n", &Open).await;
        assert_eq!(r.expect("sent over TLS").code().to_string(), "250");
        assert_eq!(*bodies.lock().expect("lock"), vec!["..dotted\r\nYour cart is waiting.\r\n".to_owned()]);
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
