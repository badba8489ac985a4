//! Everything a request or a job needs, built once at start-up.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;

use crate::campaign::{Campaign, CampaignSet};
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
    /// Loaded campaigns.
    pub campaigns: CampaignSet,
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
}

impl App {
    /// Connect, migrate, load templates and campaigns, and check that every shop's campaign exists.
    pub async fn build(settings: Settings) -> anyhow::Result<Arc<Self>> {
        let shops = settings.shops()?;
        let renderer = Renderer::load(&settings.templates_dir)
            .with_context(|| format!("loading templates from {}", settings.templates_dir.display()))?;
        let campaigns =
            CampaignSet::load_dir(&settings.campaigns_dir, &|name, channel| renderer.has("en", name, channel))?;
        for shop in shops.values() {
            if campaigns.get(&shop.campaign).is_none() {
                anyhow::bail!(
                    "configuration: shops.{}.campaign: no campaign named {:?} in {} (found: {})",
                    shop.id,
                    shop.campaign,
                    settings.campaigns_dir.display(),
                    campaigns.names().collect::<Vec<_>>().join(", ")
                );
            }
        }
        let db = Db::connect(settings.database_url.expose()).await.context("connecting to the database")?;
        db.migrate().await.context("applying migrations")?;
        let keys = Keyring::load(&db, settings.signing_key.as_ref().map(|s| s.expose())).await?;
        let email = match settings.email.transport {
            EmailTransportKind::File => EmailTransport::File(settings.email.outbox_dir.clone()),
            EmailTransportKind::Smtp => {
                let url = settings
                    .email
                    .smtp_url
                    .as_ref()
                    .context("configuration: email.smtp_url is required for the smtp transport")?;
                EmailTransport::smtp(url.expose(), settings.email.smtp_timeout)
                    .context("configuration: email.smtp_url")?
            }
        };
        let sms = match settings.sms.transport {
            SmsTransportKind::File => SmsTransport::File(settings.sms.outbox_dir.clone()),
        };
        let public_base = settings.public_base();
        Ok(Arc::new(Self { settings, db, shops, campaigns, renderer, keys, email, sms, public_base }))
    }

    /// The shop with id `id`.
    pub fn shop(&self, id: &str) -> Option<&Shop> {
        ShopId::parse(id).ok().and_then(|id| self.shops.get(&id))
    }

    /// The campaign a cart of `shop` runs, or the one it already entered.
    pub fn campaign_for(&self, shop: &Shop, entered: Option<&str>) -> Option<&Campaign> {
        self.campaigns.get(entered.unwrap_or(&shop.campaign))
    }
}
