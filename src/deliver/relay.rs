//! SMTP relays: a primary and an optional secondary behind a circuit breaker.
//!
//! The breaker counts consecutive "relay down" failures of the primary (connection refused or
//! dropped, TLS failure, timeout, `421 service not available`). A recipient's own trouble (a
//! `450` or `550` at `RCPT`) says the relay is up and never trips it. After `threshold` such
//! failures in a row the circuit opens: messages go straight to the secondary (or, without
//! one, fail fast as transient, so nothing waits out a connect timeout each time) until
//! `cooldown` has passed. Then one message probes the primary: success closes the circuit,
//! failure opens it for another cooldown. While the circuit is closed, a message whose
//! primary attempt found the relay down is handed to the secondary at once.

use crate::domain::Receipt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::transport::smtp::response::Response;
use tracing::{info, warn};

use super::DeliveryError;
use super::smtp_pool::{ConnectError, Gate, PoolSendError, SmtpPool};

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Primary in use; consecutive relay-down failures so far.
    Closed(u32),
    /// Primary skipped until the instant.
    Open(Instant),
    /// One probe of the primary is in flight; another may go after the instant (a probe
    /// whose task was cancelled must not keep the primary skipped forever).
    HalfOpen(Instant),
}

/// A circuit breaker for the primary relay.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

/// What the breaker allows for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Try the primary (circuit closed).
    Primary,
    /// Try the primary as the one probe after a cooldown.
    Probe,
    /// Skip the primary.
    Skip,
}

impl Breaker {
    /// Open after `threshold` consecutive failures, for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self { threshold: threshold.max(1), cooldown, state: Mutex::new(State::Closed(0)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where the next message may go.
    pub fn route(&self, now: Instant) -> Route {
        let mut s = self.lock();
        match *s {
            State::Closed(_) => Route::Primary,
            State::Open(until) | State::HalfOpen(until) if now >= until => {
                *s = State::HalfOpen(now + self.cooldown);
                Route::Probe
            }
            State::Open(_) | State::HalfOpen(_) => Route::Skip,
        }
    }

    /// The primary answered (even with a refusal for one recipient): it is up.
    pub fn succeeded(&self) {
        let mut s = self.lock();
        if *s != State::Closed(0) {
            if !matches!(*s, State::Closed(_)) {
                info!("primary SMTP relay is back; circuit closed");
            }
            *s = State::Closed(0);
        }
    }

    /// The primary was down for one message.
    pub fn failed(&self, now: Instant) {
        let mut s = self.lock();
        let opened = match *s {
            State::Closed(n) if n + 1 < self.threshold => {
                *s = State::Closed(n + 1);
                return;
            }
            State::Closed(_) | State::HalfOpen(_) | State::Open(_) => now + self.cooldown,
        };
        if !matches!(*s, State::Open(_)) {
            warn!(cooldown = ?self.cooldown, "primary SMTP relay is down; circuit open");
        }
        *s = State::Open(opened);
    }

    /// Whether the primary is being skipped.
    pub fn is_open(&self) -> bool {
        !matches!(*self.lock(), State::Closed(_))
    }
}

/// One relay: its name and its connection pool.
pub struct Relay {
    name: &'static str,
    timeout: Duration,
    pool: SmtpPool,
}

impl Relay {
    /// A relay named `name`, sending through `pool`.
    pub fn new(name: &'static str, timeout: Duration, pool: SmtpPool) -> Self {
        Self { name, timeout, pool }
    }

    /// One message, bounded by the timeout (waiting for a free connection, connecting and
    /// the conversation). A relay that stops answering mid-conversation would otherwise hold
    /// the message (and its claim) forever; the connection it was cut off on is closed, and
    /// so are the idle ones, which may be as stuck.
    async fn send(&self, msg: &Message, gate: &impl Gate) -> Result<Response, SendError> {
        let body = msg.formatted();
        match tokio::time::timeout(self.timeout, self.pool.send(msg.envelope(), &body, gate)).await {
            Ok(r) => r.map_err(|e| match e {
                PoolSendError::Smtp(e) | PoolSendError::Connect(ConnectError::Smtp(e)) => SendError::Smtp(e),
                PoolSendError::Connect(e @ ConnectError::Network { .. }) => SendError::Network(e.to_string()),
                e @ PoolSendError::Io(_) => SendError::Network(e.to_string()),
                PoolSendError::NoSmtpUtf8 => SendError::NoSmtpUtf8,
                e @ PoolSendError::No8BitMime => SendError::Refused(e.to_string()),
                PoolSendError::Stopped => SendError::Stopped,
            }),
            Err(_) => {
                self.pool.clear();
                Err(SendError::Timeout(self.timeout))
            }
        }
    }
}

/// Why one relay did not take a message.
enum SendError {
    Smtp(lettre::transport::smtp::Error),
    /// An internationalized address and a relay without SMTPUTF8.
    NoSmtpUtf8,
    /// Cartback's own refusal before the relay was asked (the relay is up).
    Refused(String),
    /// The gate stopped it before the final `.`: nothing was delivered.
    Stopped,
    /// No connection: refused, unreachable, TLS handshake failed.
    Network(String),
    Timeout(Duration),
}

/// The primary and optional secondary relay.
pub struct Relays {
    primary: Relay,
    secondary: Option<Relay>,
    breaker: Breaker,
    /// Whether the primary's last failure was a refused login: messages skipped while its
    /// circuit is open are then waiting for credentials too.
    primary_refused: std::sync::atomic::AtomicBool,
}

/// Whether the relay refused Cartback's login: 530 (authentication or STARTTLS required),
/// 534 and 538 (a mechanism or encryption it insists on), 535 (bad credentials). That is a
/// configuration problem the operator fixes, not a verdict on the message.
fn login_refused(e: &lettre::transport::smtp::Error) -> bool {
    e.status().is_some_and(|c| matches!(c.to_string().as_str(), "530" | "534" | "535" | "538"))
}

/// What to tell the operator about a refused login.
fn login_refused_text(e: &lettre::transport::smtp::Error, relay: &str) -> String {
    format!(
        "SMTP ({relay}): the relay refused Cartback's login ({e}); check the user, password and TLS settings \
         of its URL (email.smtp_url or email.smtp_secondary_url)"
    )
}

/// Whether an SMTP error says the relay itself is unavailable (as opposed to refusing one message).
fn relay_down(e: &lettre::transport::smtp::Error) -> bool {
    if login_refused(e) {
        return true;
    }
    if e.is_permanent() || e.is_client() {
        return false;
    }
    if e.is_transient() {
        // 421: "service not available, closing transmission channel".
        return e.status().is_some_and(|c| c.to_string() == "421");
    }
    true // connection, I/O, TLS, timeout, network
}

/// Turn an SMTP error into a delivery verdict.
fn classify(e: &lettre::transport::smtp::Error, relay: &str) -> DeliveryError {
    let text = e.to_string();
    if login_refused(e) {
        // Retried with backoff, so nothing is lost while the credentials are put right.
        return DeliveryError::CredentialsRefused(login_refused_text(e, relay));
    }
    if e.is_permanent() || e.is_client() {
        DeliveryError::Permanent(format!("SMTP ({relay}): {text}"))
    } else {
        DeliveryError::Transient(format!("SMTP ({relay}): {text}"))
    }
}

impl SendError {
    /// Whether the relay itself is unavailable (as opposed to refusing one message).
    fn relay_down(&self) -> bool {
        match self {
            Self::Smtp(e) => relay_down(e),
            Self::Network(_) | Self::Timeout(_) => true,
            Self::NoSmtpUtf8 | Self::Refused(_) | Self::Stopped => false,
        }
    }

    /// Whether the relay refused Cartback's login.
    fn login_refused(&self) -> bool {
        matches!(self, Self::Smtp(e) if login_refused(e))
    }

    fn verdict(&self, relay: &str) -> DeliveryError {
        match self {
            Self::Smtp(e) => classify(e, relay),
            Self::NoSmtpUtf8 => DeliveryError::Permanent(format!(
                "the address is internationalized (non-ASCII) and the {relay} SMTP relay does not offer SMTPUTF8, so \
                 it cannot carry it; use a relay that supports SMTPUTF8 (RFC 6531)"
            )),
            Self::Refused(why) => DeliveryError::Permanent(format!("SMTP ({relay}): {why}")),
            Self::Stopped => DeliveryError::Withheld,
            Self::Network(_) | Self::Timeout(_) => DeliveryError::Transient(self.text(relay)),
        }
    }

    fn describe(&self, relay: &str, t: &Duration) -> String {
        format!("SMTP ({relay}): no answer within {}", humantime::format_duration(*t))
    }

    fn text(&self, relay: &str) -> String {
        match self {
            Self::Smtp(e) if login_refused(e) => login_refused_text(e, relay),
            Self::Smtp(e) => format!("SMTP ({relay}): {e}"),
            Self::Network(e) | Self::Refused(e) => format!("SMTP ({relay}): {e}"),
            Self::NoSmtpUtf8 | Self::Stopped => self.verdict(relay).to_string(),
            Self::Timeout(t) => self.describe(relay, t),
        }
    }
}

impl Relays {
    /// Relays behind a breaker.
    pub fn new(primary: Relay, secondary: Option<Relay>, breaker: Breaker) -> Self {
        Self { primary, secondary, breaker, primary_refused: std::sync::atomic::AtomicBool::new(false) }
    }

    /// Whether the primary is being skipped.
    pub fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Send through the primary, or the secondary when the primary is down.
    pub async fn send(&self, msg: Message, gate: &impl Gate) -> Result<Receipt, DeliveryError> {
        use std::sync::atomic::Ordering;
        let route = self.breaker.route(Instant::now());
        let primary_error = if route == Route::Skip {
            "primary relay skipped (circuit open)".to_owned()
        } else {
            match self.primary.send(&msg, gate).await {
                Ok(resp) => {
                    self.breaker.succeeded();
                    self.primary_refused.store(false, Ordering::Relaxed);
                    return Ok(Receipt::Smtp { code: u16::from(resp.code()), secondary: false });
                }
                Err(e) if e.relay_down() => {
                    self.breaker.failed(Instant::now());
                    self.primary_refused.store(e.login_refused(), Ordering::Relaxed);
                    e.text(self.primary.name)
                }
                Err(e) => {
                    self.breaker.succeeded();
                    self.primary_refused.store(false, Ordering::Relaxed);
                    return Err(e.verdict(self.primary.name));
                }
            }
        };
        // Down for refused credentials: the message waits for the operator without using up
        // its attempts (DeliveryError::CredentialsRefused), as long as no relay took it.
        let waiting = |why: String| {
            if self.primary_refused.load(Ordering::Relaxed) {
                DeliveryError::CredentialsRefused(why)
            } else {
                DeliveryError::Transient(why)
            }
        };
        match &self.secondary {
            Some(secondary) => match secondary.send(&msg, gate).await {
                Ok(resp) => Ok(Receipt::Smtp { code: u16::from(resp.code()), secondary: true }),
                Err(e) => match e.verdict(secondary.name) {
                    DeliveryError::Transient(t) => Err(waiting(format!("{primary_error}; {t}"))),
                    DeliveryError::CredentialsRefused(t) => {
                        Err(DeliveryError::CredentialsRefused(format!("{primary_error}; {t}")))
                    }
                    other => Err(other),
                },
            },
            None => Err(waiting(primary_error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::smtp_pool::{Target, tests::serve};

    fn reminder(to: &str) -> Message {
        Message::builder()
            .from("shop@example.com".parse().expect("from"))
            .to(to.parse().expect("to"))
            .subject("Your cart")
            .body(String::from("Still there."))
            .expect("message")
    }

    #[tokio::test]
    async fn a_refused_login_is_the_relays_trouble_not_the_messages() {
        let (port, seen) = serve();
        let target = Target::from_url(&format!("smtp://cartback:wrong@127.0.0.1:{port}")).expect("url");
        let primary = Relay::new("primary", Duration::from_secs(5), SmtpPool::new(target, 1));
        let relays = Relays::new(primary, None, Breaker::new(1, Duration::from_secs(30)));
        let err = relays
            .send(reminder("anna@example.com"), &crate::deliver::smtp_pool::Open)
            .await
            .expect_err("the login is refused");
        let DeliveryError::CredentialsRefused(why) = &err else {
            panic!("a refused login must not fail the message: {err:?}")
        };
        assert!(why.contains("535") && why.contains("email.smtp_url"), "{why}");
        assert!(relays.circuit_open(), "a refused login counts as the relay being down");
        let err = relays
            .send(reminder("ben@example.com"), &crate::deliver::smtp_pool::Open)
            .await
            .expect_err("skipped while the circuit is open");
        assert!(
            matches!(&err, DeliveryError::CredentialsRefused(why) if why.contains("circuit open")),
            "a message skipped because of the refused login waits for the credentials too: {err:?}"
        );
        assert!(seen.delivered.lock().expect("lock").is_empty());
    }

    #[test]
    fn opens_after_threshold_probes_after_cooldown_and_closes_on_success() {
        let b = Breaker::new(3, Duration::from_secs(30));
        let t0 = Instant::now();
        b.failed(t0);
        b.failed(t0);
        assert_eq!(b.route(t0), Route::Primary, "two failures of three: still closed");
        b.succeeded();
        b.failed(t0);
        b.failed(t0);
        assert_eq!(b.route(t0), Route::Primary, "a success resets the count");
        b.failed(t0);
        assert!(b.is_open());
        assert_eq!(b.route(t0 + Duration::from_secs(29)), Route::Skip);
        assert_eq!(b.route(t0 + Duration::from_secs(30)), Route::Probe, "one probe after the cooldown");
        assert_eq!(b.route(t0 + Duration::from_secs(30)), Route::Skip, "only one probe at a time");
        b.failed(t0 + Duration::from_secs(31));
        assert_eq!(b.route(t0 + Duration::from_secs(60)), Route::Skip, "a failed probe opens it again");
        assert_eq!(b.route(t0 + Duration::from_secs(61)), Route::Probe);
        b.succeeded();
        assert!(!b.is_open());
        assert_eq!(b.route(t0 + Duration::from_secs(61)), Route::Primary);
    }
}
