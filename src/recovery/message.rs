//! A step's message for one channel: its signed links, the context templates see, and the
//! rendered email or SMS, addressed and identified by its send's id.

use chrono::Utc;

use super::StepRun;
use super::incentive::Issued;
use crate::campaign::Channel;
use crate::deliver::{DeliveryError, OutgoingEmail, OutgoingSms};
use crate::domain::{CampaignKind, CartItem, Email, Locale, Phone};
use crate::links::Purpose;
use crate::render::context::{IncentiveView, MessageContext};
use crate::store::{CartRow, SendRow};

/// A rendered message ready for its transport.
pub(super) enum Prepared {
    /// An email.
    Email(Box<OutgoingEmail>),
    /// An SMS.
    Sms(OutgoingSms),
}

/// The signed links of one send.
struct Links {
    restore: String,
    unsubscribe: String,
    feedback: String,
}

impl Links {
    fn of(s: &StepRun<'_>, send: &SendRow) -> Self {
        let app = s.app;
        let exp = Utc::now().timestamp() + i64::try_from(app.settings.link_ttl.as_secs()).unwrap_or(0);
        let link = |path: &str, purpose| {
            format!("{}/{path}/{}", app.public_base, app.keys.sign(purpose, &send.public_id, exp))
        };
        Self {
            restore: link("r", Purpose::Restore),
            unsubscribe: link("u", Purpose::Unsubscribe),
            feedback: link("f", Purpose::Feedback),
        }
    }
}

/// Render the message of one channel, addressed and identified by its send id.
pub(super) fn prepare(
    s: &StepRun<'_>,
    channel: Channel,
    cart: &CartRow,
    send: &SendRow,
    incentive: Option<&Issued>,
) -> Result<Prepared, DeliveryError> {
    let (app, shop) = (s.app, s.shop);
    let links = Links::of(s, send);
    let locale = cart
        .locale
        .as_deref()
        .or(cart.cart_locale.as_deref())
        .and_then(|l| Locale::parse(l).ok())
        .unwrap_or_else(|| shop.locale.clone());
    let chain = locale.fallback_chain(&shop.locale);
    let items: Vec<CartItem> = serde_json::from_str(&cart.items).unwrap_or_default();
    let currency = cart.currency.clone().unwrap_or_else(|| shop.currency.code().to_owned());
    let unpaid = cart.kind == CampaignKind::UnpaidOrder;
    let view = MessageContext {
        shop_name: &shop.name,
        shop_url: shop.url.as_deref(),
        first_name: cart.first_name.as_deref(),
        total_minor: cart.total_minor.unwrap_or(0),
        currency: &currency,
        items: &items,
        restore_url: &links.restore,
        unsubscribe_url: &links.unsubscribe,
        feedback_url: &links.feedback,
        incentive: incentive.map(|i| IncentiveView { offer: &i.offer, code: &i.code, expires_at_ms: i.expires_at }),
        timezone: s.tz,
        locale: locale.as_str(),
        step: &s.step().id.value,
        stage: cart.stage.as_deref(),
        reason: cart.reason.as_deref(),
        reason_detail: cart.reason_detail.as_deref(),
        order_id: cart.order_id.as_deref().filter(|_| unpaid),
        order_expires_at_ms: s
            .campaign
            .expire_after
            .as_ref()
            .filter(|_| unpaid)
            .map(|e| cart.last_activity_at + e.value.get().num_milliseconds()),
    };
    let ctx = view.to_json();
    let template = s.step().template.value.as_str();
    match channel {
        Channel::Email => {
            let to = cart
                .email
                .as_deref()
                .and_then(|e| Email::parse(e).ok())
                .ok_or_else(|| DeliveryError::Permanent("invalid email address".into()))?;
            let mail =
                app.renderer.email(&chain, template, &ctx).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
            let email = OutgoingEmail::compose(send.public_id.clone(), shop, to, mail, links.unsubscribe);
            Ok(Prepared::Email(Box::new(email)))
        }
        Channel::Sms => {
            let to = cart
                .phone
                .as_deref()
                .and_then(|p| Phone::parse(p).ok())
                .ok_or_else(|| DeliveryError::Permanent("invalid phone number".into()))?;
            let sms = app
                .renderer
                .sms_message(&chain, template, &ctx, shop.opt_out())
                .and_then(|m| m.within(s.campaign.max_sms_segments()))
                .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
            Ok(Prepared::Sms(OutgoingSms {
                id: send.public_id.clone(),
                from: app.settings.sms.from.clone(),
                to,
                body: sms.text,
            }))
        }
    }
}
