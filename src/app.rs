//! Everything a request or a job needs, built once at start-up.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;

use crate::campaign::{CampaignSet, Campaigns};
use crate::config::{EmailTransportKind, Settings, Shop, SmsTransportKind};
use crate::deliver::{EmailTransport, SmsTransport};
use crate::domain::ShopId;
use crate::links::Keyring;
use crate::render::Renderer;
use crate::store::Db;

/// The application context shared by HTTP handlers and jobs.
#[derive(Debug)]
pub struct App {
    /// The configuration as loaded.
    pub settings: Settings,
    /// The database.
    pub db: Db,
    /// Shops by id.
    pub shops: BTreeMap<ShopId, Shop>,
    /// Loaded campaigns; replaced whole on reload, so a job sees one consistent set.
    pub campaign_set: Campaigns,
    /// Templates.
    pub renderer: Renderer,
    /// Link-signing keys.
    pub keys: Keyring,
    /// Email delivery.
    pub email: EmailTransport,
    /// SMS delivery.
    pub sms: SmsTransport,
    /// Base URL of links.
    pub public_base: String,
    /// Prometheus metrics of this process.
    pub metrics: crate::metrics::Metrics,
    /// HTTP client for outbound webhooks to shops.
    pub http: reqwest::Client,
    /// Recovery jobs' transactions, committed in groups on SQLite.
    pub jobs_tx: crate::store::TxGroup,
}

impl App {
    /// Connect, migrate, load templates and campaigns, and check that every shop's campaign exists.
    pub async fn build(settings: Settings) -> anyhow::Result<Arc<Self>> {
        // One TLS crypto provider for the whole process (sqlx and lettre use ring too).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shops = settings.shops()?;
        settings.check_delivery()?;
        let renderer = Renderer::load(&settings.templates_dir)
            .with_context(|| format!("loading templates from {}", settings.templates_dir.display()))?;
        let campaigns = load_campaigns(&settings, &renderer, &shops)?;
        let db = Db::connect_with(settings.database_url.expose(), Some(settings.worker.claim_lease))
            .await
            .context("connecting to the database")?;
        crate::queue::migrate(&db).await.context("applying migrations")?;
        let keys = Keyring::load(&db, settings.signing_key.as_ref().map(|s| s.expose())).await?;
        let email = match settings.email.transport {
            EmailTransportKind::File => EmailTransport::File(settings.email.outbox_dir.clone()),
            EmailTransportKind::Smtp => {
                let url = settings
                    .email
                    .smtp_url
                    .as_ref()
                    .context("configuration: email.smtp_url is required for the smtp transport")?;
                let e = &settings.email;
                let options = crate::deliver::SmtpOptions {
                    timeout: e.smtp_timeout,
                    connections: e.smtp_connections,
                    breaker_failures: e.breaker_failures,
                    breaker_cooldown: e.breaker_cooldown,
                };
                EmailTransport::smtp(url.expose(), e.smtp_secondary_url.as_ref().map(|u| u.expose()), &options)
                    .context("configuration")?
            }
        };
        let sms = match settings.sms.transport {
            SmsTransportKind::File => SmsTransport::File(settings.sms.outbox_dir.clone()),
            SmsTransportKind::Twilio => {
                let s = &settings.sms;
                let sid = s
                    .account_sid
                    .clone()
                    .context("configuration: sms.account_sid is required for the twilio transport")?;
                let token = s
                    .auth_token
                    .clone()
                    .context("configuration: sms.auth_token is required for the twilio transport")?;
                let callback = s.status_callbacks.then(|| format!("{}/v1/sms/status", settings.public_base()));
                let idempotency = s
                    .idempotency_header
                    .as_deref()
                    .map(|h| reqwest::header::HeaderName::from_bytes(h.as_bytes()))
                    .transpose()
                    .context("configuration: sms.idempotency_header")?;
                SmsTransport::twilio(
                    &s.api_base,
                    sid,
                    token,
                    s.messaging_service_sid.clone(),
                    callback,
                    idempotency,
                    s.timeout,
                )
                .context("building the SMS provider client")?
            }
        };
        let public_base = settings.public_base();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client for outbound webhooks")?;
        let jobs_tx = crate::store::TxGroup::new(db.clone());
        let app = Arc::new(Self {
            settings,
            db,
            jobs_tx,
            shops,
            campaign_set: Campaigns::new(campaigns),
            renderer,
            keys,
            email,
            sms,
            public_base,
            metrics: crate::metrics::Metrics::default(),
            http,
        });
        Ok(app)
    }

    /// The shop with id `id`.
    pub fn shop(&self, id: &str) -> Option<&Shop> {
        ShopId::parse(id).ok().and_then(|id| self.shops.get(&id))
    }

    /// The campaigns in force now.
    pub fn campaigns(&self) -> Arc<CampaignSet> {
        self.campaign_set.current()
    }

    /// Re-read the campaign files. A set with any error is refused as a whole and the one in
    /// force stays; carts mid-sequence continue at their step index with the new timings.
    pub fn reload_campaigns(&self) -> anyhow::Result<usize> {
        let set = load_campaigns(&self.settings, &self.renderer, &self.shops)?;
        let n = set.names().count();
        self.campaign_set.replace(set);
        Ok(n)
    }
}

/// Load and validate every campaign file, and check them against the shops.
pub fn load_campaigns(
    settings: &Settings,
    renderer: &Renderer,
    shops: &BTreeMap<ShopId, Shop>,
) -> anyhow::Result<CampaignSet> {
    let set = CampaignSet::load_dir(&settings.campaigns_dir, &|name, channel| renderer.has("en", name, channel))?;
    let problems = set.check_shops(shops.values().map(|s| (s.id.as_str(), s.campaign.as_str())));
    if !problems.is_empty() {
        anyhow::bail!("configuration: {}", problems.join("; "));
    }
    // What `campaign check` reports about templates, for operators who did not run it.
    for finding in crate::render::lint::lint(renderer, set.campaigns()) {
        tracing::warn!(%finding, "template check");
    }
    Ok(set)
}
