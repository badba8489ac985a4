//! Configuration: code defaults → `cartback.toml` → `CARTBACK_*` environment variables.
//!
//! This is the only module that reads configuration files or the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};

use crate::domain::{Currency, Locale, ShopId};

/// A secret string whose `Debug` and `Display` never reveal it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret value; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where emails go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTransportKind {
    /// One `.eml` file per message under `outbox_dir`.
    File,
    /// An SMTP relay at `smtp_url`.
    Smtp,
}

/// `[email]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// `file` or `smtp`.
    pub transport: EmailTransportKind,
    /// Where the file transport writes.
    pub outbox_dir: PathBuf,
    /// `smtp://host:port`, `smtps://user:pass@host:465`, `smtp://…?tls=required` (STARTTLS).
    pub smtp_url: Option<Secret>,
    /// Default sender, `Name <address>`.
    pub from: String,
    /// Timeout for one SMTP conversation.
    #[serde(with = "humantime_serde_compat")]
    pub smtp_timeout: Duration,
    /// SMTP connections per relay at most (a message waits for a free one).
    #[serde(default = "default_smtp_connections")]
    pub smtp_connections: u32,
    /// A second relay used while the primary is down (behind a circuit breaker).
    #[serde(default)]
    pub smtp_secondary_url: Option<Secret>,
    /// Consecutive "relay down" failures of the primary that open the circuit.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open circuit skips the primary before one message probes it again.
    #[serde(with = "humantime_serde_compat", default = "default_breaker_cooldown")]
    pub breaker_cooldown: Duration,
    /// Send again a message a crashed worker had handed to the relay without recording the
    /// answer (at-least-once: it may arrive twice, with the same Message-ID). Off: such a
    /// message is marked `unconfirmed` and not resent (at-most-once for that message).
    #[serde(default)]
    pub resend_unconfirmed: bool,
}

fn default_breaker_failures() -> u32 {
    3
}

fn default_breaker_cooldown() -> Duration {
    Duration::from_secs(30)
}

fn default_smtp_connections() -> u32 {
    32
}

/// Where SMS go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsTransportKind {
    /// One `.json` file per message under `outbox_dir`.
    File,
    /// A Twilio-compatible Messages API at `api_base`.
    Twilio,
}

/// `[sms]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSettings {
    /// `file` or `twilio`.
    pub transport: SmsTransportKind,
    /// Where the file transport writes.
    pub outbox_dir: PathBuf,
    /// Sender number or alphanumeric id.
    pub from: String,
    /// Base URL of the Messages API (any Twilio-compatible provider).
    pub api_base: String,
    /// Account SID (basic-auth user).
    pub account_sid: Option<String>,
    /// Auth token (basic-auth password; also verifies status callbacks).
    pub auth_token: Option<Secret>,
    /// Send through a messaging service instead of `from`.
    pub messaging_service_sid: Option<String>,
    /// Ask the provider for delivery status callbacks at `<public_url>/v1/sms/status`.
    pub status_callbacks: bool,
    /// Timeout for one API call.
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// A request header the provider deduplicates on (e.g. `Idempotency-Key`); the send id
    /// goes in it, so a message retried after a crash is not sent twice. Twilio itself has none.
    #[serde(default)]
    pub idempotency_header: Option<String>,
}

/// `[shops.<id>]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopSettings {
    /// Display name used in messages.
    pub name: String,
    /// Secret for webhook signatures (`whsec_<base64>` per Standard Webhooks, or any string used as raw bytes).
    pub webhook_secret: Secret,
    /// Fallback zone when the customer's is unknown.
    pub timezone: String,
    /// Fallback locale.
    pub locale: String,
    /// The shop's currency, for bare-number campaign thresholds.
    pub currency: String,
    /// The campaign for this shop's carts.
    pub campaign: String,
    /// The shop's home page, for links on friendly error pages.
    pub url: Option<String>,
    /// Sender override for this shop.
    pub from: Option<String>,
    /// `Reply-To` for this shop's emails (e.g. its support address).
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Address for mail-based unsubscribes, offered beside the one-click URL in `List-Unsubscribe`.
    #[serde(default)]
    pub unsubscribe_mailto: Option<String>,
    /// Where Cartback posts events for the shop (`incentive.issued`, `order.expire`), signed
    /// like incoming events with `webhook_secret` (Standard Webhooks) and retried until a 2xx.
    #[serde(default)]
    pub events_url: Option<String>,
    /// Query parameter that applies a discount code on the restore URL (e.g. `discount`).
    #[serde(default)]
    pub restore_code_param: Option<String>,
    /// Send the first reminder email of a sequence without marketing consent, as a
    /// transactional message about the customer's own cart (never later steps, never SMS).
    #[serde(default)]
    pub transactional_first_reminder: bool,
    /// Line appended to every SMS that does not already mention STOP. Unset: the customer's
    /// language from `templates/<locale>/opt_out.sms.txt.hbs`; empty: no line.
    #[serde(default)]
    pub sms_opt_out_line: Option<String>,
}

impl ShopSettings {
    /// A shop with its required keys (secret, name, zone, locale, currency, campaign) and every
    /// optional key unset, as a `[shops.*]` block with only those keys would give.
    pub fn new(
        name: &str,
        webhook_secret: Secret,
        timezone: &str,
        locale: &str,
        currency: &str,
        campaign: &str,
    ) -> Self {
        Self {
            name: name.into(),
            webhook_secret,
            timezone: timezone.into(),
            locale: locale.into(),
            currency: currency.into(),
            campaign: campaign.into(),
            url: None,
            from: None,
            reply_to: None,
            unsubscribe_mailto: None,
            events_url: None,
            restore_code_param: None,
            transactional_first_reminder: false,
            sms_opt_out_line: None,
        }
    }
}

/// `[worker]`: queue tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// How many jobs are processed at once per process.
    pub concurrency: usize,
    /// How many jobs a worker takes from the queue shortly before they are due (up to 2 s early) and
    /// holds until their exact millisecond; at most `concurrency` of them run at once.
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    /// How often an idle worker looks for due jobs.
    #[serde(with = "humantime_serde_compat")]
    pub poll_interval: Duration,
    /// Worker heartbeat; a worker silent for 3 heartbeats is presumed dead and its jobs re-queued.
    #[serde(with = "humantime_serde_compat")]
    pub heartbeat: Duration,
    /// How long a claimed, unfinished send blocks another attempt (crash recovery).
    #[serde(with = "humantime_serde_compat")]
    pub claim_lease: Duration,
    /// Finished jobs older than this are deleted from the queue tables.
    #[serde(with = "humantime_serde_compat")]
    pub keep_done_jobs: Duration,
    /// Outbound webhooks a shop has not acknowledged after this long are given up (visible
    /// to operators as dead, with the last error; `jobs retry` sends them again).
    #[serde(with = "humantime_serde_compat", default = "default_outbound_give_up")]
    pub outbound_give_up: Duration,
    /// A message still failing transiently this long after it was due is given up (failed,
    /// with the last reason), whatever its attempt count.
    #[serde(with = "humantime_serde_compat", default = "default_send_give_up")]
    pub send_give_up: Duration,
    /// On SIGTERM, how long jobs in hand may take to finish; the rest are left to the
    /// claim lease and the next worker.
    #[serde(with = "humantime_serde_compat", default = "default_shutdown_grace")]
    pub shutdown_grace: Duration,
}

impl WorkerSettings {
    /// Recovery jobs a worker takes from the queue and holds at once: `prefetch`, and at
    /// least `concurrency` (of which `concurrency` do their work at once).
    pub fn in_hand(&self) -> usize {
        self.concurrency.max(1).max(self.prefetch)
    }
}

fn default_prefetch() -> usize {
    512
}

fn default_send_give_up() -> Duration {
    Duration::from_secs(6 * 3600)
}

fn default_shutdown_grace() -> Duration {
    Duration::from_secs(30)
}

fn default_attribution_window() -> Duration {
    Duration::from_secs(7 * 86_400)
}

fn default_outbound_give_up() -> Duration {
    Duration::from_secs(3 * 86_400)
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `sqlite://cartback.db` or `postgres://user@host/db`.
    pub database_url: Secret,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Base of restore/unsubscribe links; defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// Campaign YAML directory.
    pub campaigns_dir: PathBuf,
    /// Template directory.
    pub templates_dir: PathBuf,
    /// Bearer token for `/ops`.
    pub ops_token: Option<Secret>,
    /// Link-signing key (base64, ≥ 32 bytes); generated and stored in the database when absent.
    pub signing_key: Option<Secret>,
    /// How long restore and feedback links stay valid. Unsubscribe links never expire: they
    /// are signed with the same keys, so a retired signing key stays in the keyring.
    #[serde(with = "humantime_serde_compat")]
    pub link_ttl: Duration,
    /// An order found by the customer's email or phone (not by cart id or code) recovers the
    /// customer's carts active within this time before it; older ones just stop.
    #[serde(with = "humantime_serde_compat", default = "default_attribution_window")]
    pub attribution_window: Duration,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// `[email]`.
    pub email: EmailSettings,
    /// `[sms]`.
    pub sms: SmsSettings,
    /// `[worker]`.
    pub worker: WorkerSettings,
    /// `[shops.<id>]`.
    pub shops: BTreeMap<String, ShopSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: Secret::new("sqlite://cartback.db"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            campaigns_dir: "campaigns".into(),
            templates_dir: "templates".into(),
            ops_token: None,
            signing_key: None,
            link_ttl: Duration::from_secs(30 * 86_400),
            attribution_window: default_attribution_window(),
            log_format: LogFormat::Text,
            email: EmailSettings {
                transport: EmailTransportKind::File,
                outbox_dir: "outbox/email".into(),
                smtp_url: None,
                from: "Cartback <cartback@localhost>".into(),
                smtp_timeout: Duration::from_secs(30),
                smtp_connections: default_smtp_connections(),
                smtp_secondary_url: None,
                breaker_failures: default_breaker_failures(),
                breaker_cooldown: default_breaker_cooldown(),
                resend_unconfirmed: false,
            },
            sms: SmsSettings {
                transport: SmsTransportKind::File,
                outbox_dir: "outbox/sms".into(),
                from: "Cartback".into(),
                api_base: "https://api.twilio.com".into(),
                account_sid: None,
                auth_token: None,
                messaging_service_sid: None,
                status_callbacks: true,
                timeout: Duration::from_secs(10),
                idempotency_header: None,
            },
            worker: WorkerSettings {
                concurrency: 32,
                prefetch: default_prefetch(),
                poll_interval: Duration::from_millis(250),
                heartbeat: Duration::from_secs(5),
                claim_lease: Duration::from_secs(60),
                keep_done_jobs: Duration::from_secs(86_400),
                outbound_give_up: default_outbound_give_up(),
                send_give_up: default_send_give_up(),
                shutdown_grace: default_shutdown_grace(),
            },
            shops: BTreeMap::new(),
        }
    }
}

/// Configuration problems, reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable could not be read or has the wrong shape.
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value has the right shape but is not acceptable.
    #[error("configuration: {key}: {message}")]
    Invalid {
        /// The key, e.g. `shops.demo.timezone`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A shop's settings, parsed.
#[derive(Debug, Clone)]
pub struct Shop {
    /// Its id.
    pub id: ShopId,
    /// Display name.
    pub name: String,
    /// Webhook secret key bytes.
    pub webhook_key: Vec<u8>,
    /// Fallback zone.
    pub timezone: chrono_tz::Tz,
    /// Fallback locale.
    pub locale: Locale,
    /// Currency for bare campaign amounts.
    pub currency: Currency,
    /// Campaign name.
    pub campaign: String,
    /// Home page.
    pub url: Option<String>,
    /// Sender.
    pub from: Mailbox,
    /// Reply-To.
    pub reply_to: Option<Mailbox>,
    /// `mailto:` unsubscribe address.
    pub unsubscribe_mailto: Option<lettre::Address>,
    /// Where outbound events go.
    pub events_url: Option<reqwest::Url>,
    /// Query parameter that applies a discount code on the restore URL.
    pub restore_code_param: Option<String>,
    /// First reminder email allowed without marketing consent.
    pub transactional_first_reminder: bool,
    /// Appended to SMS that do not mention STOP (`None`: the localized template line).
    pub sms_opt_out_line: Option<String>,
}

impl Shop {
    /// How this shop's SMS end.
    pub fn opt_out(&self) -> OptOut<'_> {
        match self.sms_opt_out_line.as_deref() {
            None => OptOut::Localized,
            Some("") => OptOut::None,
            Some(line) => OptOut::Line(line),
        }
    }
}

/// `CARTBACK_TEST_*` and `CARTBACK_BENCH_*` configure the test suite and the bench, not the
/// service: they are not read as settings.
fn reserved_env(key_after_prefix: &str) -> bool {
    let k = key_after_prefix.to_ascii_lowercase();
    k.starts_with("test_") || k.starts_with("bench_")
}

/// Every other `CARTBACK_*` variable must name a setting: a misspelt
/// `CARTBACK_OPS_TOKN` would otherwise leave operations open to a default. The error names
/// the variable (docs/operations.md, "Configuration from the environment").
fn check_env_names(names: impl Iterator<Item = String>) -> Result<(), ConfigError> {
    let defaults = serde_json::to_value(Settings::default()).unwrap_or_default();
    for name in names {
        let Some(rest) = name.strip_prefix("CARTBACK_") else { continue };
        if reserved_env(rest) {
            continue;
        }
        let top = rest.split("__").next().unwrap_or_default().to_ascii_lowercase();
        if defaults.get(&top).is_none() {
            return Err(ConfigError::Invalid {
                key: name.clone(),
                message: format!(
                    "is not a setting ({top:?} is not a key of cartback.toml); every CARTBACK_ variable is read as one, so unset it or rename it"
                ),
            });
        }
    }
    Ok(())
}

impl Settings {
    /// Load defaults, then `path` (required if given explicitly, optional `cartback.toml` otherwise), then the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        match path {
            Some(p) => {
                if !p.exists() {
                    return Err(ConfigError::Invalid {
                        key: "--config".into(),
                        message: format!("{} does not exist", p.display()),
                    });
                }
                fig = fig.merge(Toml::file_exact(p));
            }
            // Only the working directory's file: figment's `Toml::file` would also search
            // every parent directory and read a stranger's settings.
            None if Path::new("cartback.toml").exists() => fig = fig.merge(Toml::file_exact("cartback.toml")),
            None => {}
        }
        check_env_names(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()))?;
        fig = fig.merge(Env::prefixed("CARTBACK_").filter(|k| !reserved_env(k.as_str())).split("__"));
        let settings: Settings = fig.extract().map_err(Box::new)?;
        settings.shops()?;
        settings.check_delivery()?;
        Ok(settings)
    }

    /// Delivery settings that would break the exactly-once rules.
    pub fn check_delivery(&self) -> Result<(), ConfigError> {
        // A claim must outlive the provider call it protects, or a slow send could be taken
        // over while still in flight and go out twice.
        let lease = self.worker.claim_lease;
        let calls = [
            (self.email.transport == EmailTransportKind::Smtp, "email.smtp_timeout", self.email.smtp_timeout),
            (self.sms.transport == SmsTransportKind::Twilio, "sms.timeout", self.sms.timeout),
        ];
        for (used, key, timeout) in calls {
            if used && lease <= timeout {
                return Err(ConfigError::Invalid {
                    key: "worker.claim_lease".into(),
                    message: format!(
                        "{} must be longer than {key} ({}), or a slow send could be taken over while still in flight",
                        humantime::format_duration(lease),
                        humantime::format_duration(timeout)
                    ),
                });
            }
        }
        if let Some(h) = &self.sms.idempotency_header
            && reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            return Err(ConfigError::Invalid {
                key: "sms.idempotency_header".into(),
                message: format!("{h:?} is not a valid HTTP header name"),
            });
        }
        Ok(())
    }

    /// Base URL for links, without a trailing slash.
    pub fn public_base(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen)).trim_end_matches('/').to_owned()
    }

    /// Parse every `[shops.*]` block.
    pub fn shops(&self) -> Result<BTreeMap<ShopId, Shop>, ConfigError> {
        let invalid =
            |id: &str, key: &str, message: String| ConfigError::Invalid { key: format!("shops.{id}.{key}"), message };
        let mut out = BTreeMap::new();
        for (id, s) in &self.shops {
            let shop_id = ShopId::parse(id).map_err(|e| invalid(id, "", e.to_string()))?;
            let timezone = s
                .timezone
                .parse()
                .map_err(|_| invalid(id, "timezone", format!("{:?} is not an IANA time zone", s.timezone)))?;
            let locale = Locale::parse(&s.locale).map_err(|e| invalid(id, "locale", e.to_string()))?;
            let currency = Currency::parse(&s.currency).map_err(|e| invalid(id, "currency", e.to_string()))?;
            let webhook_key = crate::crypto::secret_key(s.webhook_secret.expose())
                .map_err(|e| invalid(id, "webhook_secret", e.to_string()))?;
            let mailbox = |key: &str, v: &str| -> Result<Mailbox, ConfigError> {
                v.parse().map_err(|e| {
                    invalid(id, key, format!("{v:?} is not an address like \"Shop <shop@example.com>\": {e}"))
                })
            };
            let from = match &s.from {
                Some(f) => mailbox("from", f)?,
                None => self.email.from.parse().map_err(|e| ConfigError::Invalid {
                    key: "email.from".into(),
                    message: format!("{:?} is not an address like \"Shop <shop@example.com>\": {e}", self.email.from),
                })?,
            };
            let reply_to = s.reply_to.as_deref().map(|r| mailbox("reply_to", r)).transpose()?;
            let events_url = s
                .events_url
                .as_deref()
                .map(|u| {
                    reqwest::Url::parse(u)
                        .ok()
                        .filter(|p| matches!(p.scheme(), "http" | "https"))
                        .ok_or_else(|| invalid(id, "events_url", format!("{u:?} is not an http(s) URL")))
                })
                .transpose()?;
            let unsubscribe_mailto = s
                .unsubscribe_mailto
                .as_deref()
                .map(|a| a.parse().map_err(|e| invalid(id, "unsubscribe_mailto", format!("{a:?}: {e}"))))
                .transpose()?;
            out.insert(
                shop_id.clone(),
                Shop {
                    id: shop_id,
                    name: s.name.clone(),
                    webhook_key,
                    timezone,
                    locale,
                    currency,
                    campaign: s.campaign.clone(),
                    url: s.url.clone(),
                    from,
                    reply_to,
                    unsubscribe_mailto,
                    events_url,
                    restore_code_param: s.restore_code_param.clone(),
                    transactional_first_reminder: s.transactional_first_reminder,
                    sms_opt_out_line: s.sms_opt_out_line.clone(),
                },
            );
        }
        Ok(out)
    }
}

/// `"250ms"`, `"5s"`, `"1h"` in TOML and env, via humantime.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
    }
}

/// How the opt-out line of an SMS is chosen (per shop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOut<'a> {
    /// The localized `opt_out` SMS template (`templates/<locale>/opt_out.sms.txt.hbs`).
    Localized,
    /// This exact line.
    Line(&'a str),
    /// No opt-out line (only where the shop's law and provider allow it).
    None,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let s = Settings { ops_token: Some(Secret::new("hunter2")), ..Settings::default() };
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn cartback_variables_must_name_a_setting() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>().into_iter();
        assert!(check_env_names(names(&["CARTBACK_OPS_TOKEN", "CARTBACK_EMAIL__TRANSPORT", "PATH"])).is_ok());
        assert!(check_env_names(names(&["CARTBACK_TEST_POSTGRES_URL", "CARTBACK_BENCH_ONLY"])).is_ok(), "reserved");
        let e = check_env_names(names(&["CARTBACK_OPS_TOKN"])).expect_err("a typo");
        assert!(e.to_string().contains("CARTBACK_OPS_TOKN"), "{e}");
        assert!(check_env_names(names(&["CARTBACK_VERSION"])).is_err());
    }

    #[test]
    fn only_the_named_file_is_read_never_a_parents() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("cartback.toml"), "listen = \"not an address\"\n").expect("write");
        let child = dir.path().join("child");
        std::fs::create_dir(&child).expect("mkdir");
        // (tests/config_discovery.rs runs the binary in `child`: the parent's file is not read.)
        let exact = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file_exact(dir.path().join("cartback.toml")))
            .extract::<Settings>();
        assert!(exact.is_err(), "the named file itself is read");
    }

    #[test]
    fn defaults_round_trip_through_figment() {
        let s: Settings = Figment::from(Serialized::defaults(Settings::default())).extract().expect("defaults extract");
        assert_eq!(s.worker.poll_interval, Duration::from_millis(250));
        assert_eq!(s.public_base(), "http://127.0.0.1:8080");
    }
}
