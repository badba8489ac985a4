//! The campaign file format (SPEC §4) as it appears in YAML, and its validated form.

use std::collections::BTreeMap;

use chrono::{NaiveTime, Weekday};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::duration::Span;
pub use crate::domain::CampaignKind;
use crate::domain::{Currency, Money};

/// A delivery channel.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Email over SMTP or the file outbox.
    Email,
    /// SMS over the provider API or the file outbox.
    Sms,
}

impl Channel {
    /// `email` / `sms`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }
    /// Parse `email` / `sms`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Self::Email),
            "sms" => Some(Self::Sms),
            _ => None,
        }
    }
}

/// A money threshold that is never compared across currencies.
///
/// In YAML either a bare number, meaning "in the shop's currency", or a map
/// `{ EUR: 5.00, JPY: 800 }`. A cart whose currency has no threshold does not
/// satisfy a bound (it neither enters on a `min_total` nor is excluded by a
/// `max_total` by accident: see [`Amount::for_currency`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Amount {
    /// In the shop's configured currency.
    ShopCurrency(String),
    /// Explicit per currency.
    PerCurrency(BTreeMap<String, String>),
}

impl Amount {
    /// The threshold in `currency`, if one is defined for it.
    pub fn for_currency(&self, currency: Currency, shop_currency: Currency) -> Option<Money> {
        match self {
            Amount::ShopCurrency(v) if currency == shop_currency => Money::parse(v, currency).ok(),
            Amount::ShopCurrency(_) => None,
            Amount::PerCurrency(map) => map
                .iter()
                .find(|(code, _)| Currency::parse(code).ok() == Some(currency))
                .and_then(|(_, v)| Money::parse(v, currency).ok()),
        }
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        let check_one = |v: &str, c: &str| {
            let currency = Currency::parse(c).map_err(|e| e.to_string())?;
            Money::parse(v, currency).map(|_| ()).map_err(|e| e.to_string())
        };
        match self {
            // Checked against every currency when the shop is known; here only the syntax.
            Amount::ShopCurrency(v) => check_one(v, "EUR"),
            Amount::PerCurrency(map) if map.is_empty() => Err("an amount map needs at least one currency".into()),
            Amount::PerCurrency(map) => map.iter().try_for_each(|(c, v)| check_one(v, c)),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawNumber {
    Int(i64),
    Float(f64),
    Text(String),
}

impl RawNumber {
    fn into_text(self) -> String {
        match self {
            RawNumber::Int(i) => i.to_string(),
            // f64's Display is the shortest text that round-trips, so 129.9 stays "129.9".
            RawNumber::Float(f) => f.to_string(),
            RawNumber::Text(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor, not an untagged enum: an untagged enum buffers the value and loses the
        // positions inside it, and a wrong currency must be reported at its own key.
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Amount;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an amount like 5.00, or a map of currencies like { EUR: 5.00, JPY: 800 }")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Amount, E> {
                one(v.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Amount, E> {
                one(v.to_string())
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Amount, E> {
                // f64's Display is the shortest text that round-trips, so 129.9 stays "129.9".
                one(v.to_string())
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Amount, E> {
                one(v.to_owned())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Amount, A::Error> {
                let mut map = BTreeMap::new();
                while let Some(CurrencyKey(code)) = m.next_key()? {
                    let value = m.next_value::<RawNumber>()?.into_text();
                    let currency = Currency::parse(&code).map_err(serde::de::Error::custom)?;
                    Money::parse(&value, currency).map_err(serde::de::Error::custom)?;
                    map.insert(code, value);
                }
                let amount = Amount::PerCurrency(map);
                amount.check().map_err(serde::de::Error::custom)?;
                Ok(amount)
            }
        }
        fn one<E: serde::de::Error>(v: String) -> Result<Amount, E> {
            let amount = Amount::ShopCurrency(v);
            amount.check().map_err(E::custom)?;
            Ok(amount)
        }
        d.deserialize_any(Visit)
    }
}

/// A currency code as a map key, refused where it stands when it is not ISO 4217.
struct CurrencyKey(String);

impl<'de> Deserialize<'de> for CurrencyKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)?;
        Ok(Self(code))
    }
}

/// A wall-clock time `HH:MM` in the customer's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime(pub NaiveTime);

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NaiveTime::parse_from_str(&s, "%H:%M")
            .map(LocalTime)
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a time like \"09:30\" (24-hour HH:MM)")))
    }
}

/// Who enters a campaign.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    /// Cart total at least this.
    pub min_total: Option<Amount>,
    /// Cart total at most this.
    pub max_total: Option<Amount>,
    /// Customer has at least this many earlier orders.
    pub min_orders: Option<u32>,
    /// Customer has at most this many earlier orders.
    pub max_orders: Option<u32>,
    /// These shops run this campaign besides the one their configuration names.
    pub shops: Option<Vec<String>>,
    /// The customer must be reachable (address and consent) on at least one of these.
    pub channels: Option<Vec<Channel>>,
    /// Only carts that stopped at one of these stages (`cart`, `checkout`, `payment`).
    pub stages: Option<Vec<String>>,
    /// Only carts abandoned for one of these reasons (e.g. `payment_failed`).
    pub reasons: Option<Vec<String>>,
}

/// A step that applies only to some carts.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepWhen {
    /// The cart stopped at this stage.
    pub stage: Option<String>,
    /// The cart was abandoned for this reason.
    pub reason: Option<String>,
    /// … with this detail (e.g. `insufficient_funds`).
    pub reason_detail: Option<String>,
}

impl StepWhen {
    /// Whether a cart with these facts gets the step.
    pub fn matches(&self, stage: Option<&str>, reason: Option<&str>, detail: Option<&str>) -> bool {
        let ok = |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| Some(w) == have);
        ok(&self.stage, stage) && ok(&self.reason, reason) && ok(&self.reason_detail, detail)
    }
}

/// Local hours in which messages may go out.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendWindow {
    /// Opening, local time.
    pub start: LocalTime,
    /// Closing, local time (exclusive). Earlier than `start` means the window spans midnight.
    pub end: LocalTime,
    /// Days of the week on which the window opens (default: every day).
    pub days: Option<Vec<WeekdayName>>,
}

/// `mon` … `sun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum WeekdayName {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl WeekdayName {
    /// As chrono's weekday.
    pub fn weekday(self) -> Weekday {
        match self {
            Self::Mon => Weekday::Mon,
            Self::Tue => Weekday::Tue,
            Self::Wed => Weekday::Wed,
            Self::Thu => Weekday::Thu,
            Self::Fri => Weekday::Fri,
            Self::Sat => Weekday::Sat,
            Self::Sun => Weekday::Sun,
        }
    }
}

/// At most `max` messages per customer per `per`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    /// Messages allowed in the period.
    pub max: u32,
    /// The sliding period.
    pub per: Span,
}

/// A percentage `0%`–`100%` with up to one decimal, stored in permille.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Percent(pub u16);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = RawNumber::deserialize(d)?.into_text();
        let err = || serde::de::Error::custom(format!("{text:?} is not a percentage like 5% (0–100)"));
        let num = text.trim().trim_end_matches('%').trim();
        let (int, frac) = num.split_once('.').unwrap_or((num, "0"));
        let int: u16 = int.parse().map_err(|_| err())?;
        if frac.len() != 1 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let permille = int.checked_mul(10).and_then(|v| v.checked_add(u16::from(frac.as_bytes()[0] - b'0')));
        match permille {
            Some(p) if p <= 1000 => Ok(Percent(p)),
            _ => Err(err()),
        }
    }
}

/// Conditions that end a cart's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExitCondition {
    /// An order was placed for the cart.
    OrderPlaced,
    /// The cart was emptied.
    CartEmptied,
    /// The customer unsubscribed.
    Unsubscribed,
}

impl ExitCondition {
    /// The name used in campaign files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderPlaced => "order_placed",
            Self::CartEmptied => "cart_emptied",
            Self::Unsubscribed => "unsubscribed",
        }
    }
}

/// One message of a sequence.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique within the campaign.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// Delay after abandonment.
    #[schemars(with = "Span")]
    pub after: Spanned<Span>,
    /// Send at the first such local time at or after the delay.
    pub at_local: Option<LocalTime>,
    /// Channels, each used only with consent and an address.
    #[schemars(with = "Vec<Channel>")]
    pub channels: Spanned<Vec<Channel>>,
    /// Template name under `templates/<locale>/`.
    #[schemars(with = "String")]
    pub template: Spanned<String>,
    /// Name of the incentive block used (`tiers`).
    #[schemars(with = "Option<String>")]
    pub incentive: Option<Spanned<String>>,
    /// Send this step only to carts abandoned at this stage / for this reason.
    pub when: Option<StepWhen>,
    /// `email`: when this step's SMS fails for good (invalid or unreachable number,
    /// unsubscribed at the provider), send its email instead, with the usual consent checks.
    #[schemars(with = "Option<Channel>")]
    pub fallback: Option<Spanned<Channel>>,
}

impl Step {
    /// Every channel this step may use: its own, then its fallback.
    pub fn all_channels(&self) -> impl Iterator<Item = Channel> + '_ {
        self.channels.value.iter().copied().chain(self.fallback.as_ref().map(|f| f.value))
    }
}

/// The tier conditions.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TierWhen {
    /// Cart total at least.
    pub min_total: Option<Amount>,
    /// Cart total at most.
    pub max_total: Option<Amount>,
    /// At least this many earlier orders.
    pub min_orders: Option<u32>,
    /// At most this many earlier orders.
    pub max_orders: Option<u32>,
    /// Lifetime spend at least (the customer's `total_spent`).
    pub min_spent: Option<Amount>,
    /// Lifetime spend at most.
    pub max_spent: Option<Amount>,
    /// `true`: the customer has never ordered; `false`: they have.
    pub first_order: Option<bool>,
    /// At most this many incentives received within `incentives.history`.
    pub max_received: Option<u32>,
    /// `true`: only discount hunters (see `incentives.discount_hunter`); `false`: everyone else.
    pub discount_hunter: Option<bool>,
}

impl TierWhen {
    /// Whether no condition is set (the tier matches every cart).
    pub fn is_empty(&self) -> bool {
        self.min_total.is_none()
            && self.max_total.is_none()
            && self.min_orders.is_none()
            && self.max_orders.is_none()
            && self.min_spent.is_none()
            && self.max_spent.is_none()
            && self.first_order.is_none()
            && self.max_received.is_none()
            && self.discount_hunter.is_none()
    }
}

/// Campaign tracking on restore links.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Utm {
    /// `utm_source`, e.g. `cartback`.
    pub source: String,
    /// `utm_campaign` (default: the campaign name).
    pub campaign: Option<String>,
}

/// What a tier offers.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// Percentage off the cart.
    pub percent_off: Option<Percent>,
    /// Cap on a percentage discount.
    pub max_discount: Option<Amount>,
    /// A fixed amount off.
    pub amount_off: Option<Amount>,
    /// Free shipping.
    #[serde(default)]
    pub free_shipping: bool,
    /// Deliberately nothing (e.g. for discount hunters): the step goes out without a code.
    #[serde(default)]
    pub nothing: bool,
    /// The code applies from this order value; templates show how much is missing.
    pub min_order: Option<Amount>,
}

/// One incentive tier; the first matching tier wins.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Tier name, shown to operators and templates.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Conditions (all must hold); absent means always.
    #[serde(default)]
    pub when: TierWhen,
    /// The offer.
    pub offer: Offer,
}

/// The incentive block.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Incentives {
    /// No new incentive for a customer who received one within this.
    pub cooldown: Option<Span>,
    /// How long a code stays valid.
    pub code_ttl: Span,
    /// Code prefix (codes look like `PREFIX-7KQ2M9XHTA`).
    pub code_prefix: Option<String>,
    /// Code pattern instead of a prefix: each `#` is a random character from an alphabet
    /// without look-alikes (at least 8, ≥ 40 bits), e.g. `SAVE-####-####`.
    pub code_format: Option<String>,
    /// Most any order may be discounted through this campaign (margin cap): caps every
    /// `percent_off` and `amount_off`.
    pub max_discount: Option<Amount>,
    /// How far back `max_received` and `discount_hunter` look (default 365d).
    pub history: Option<Span>,
    /// Who counts as a discount hunter.
    pub discount_hunter: Option<DiscountHunter>,
    /// Tiers, first match wins.
    pub tiers: Vec<Tier>,
}

/// The discount-hunter rule: a customer whose recent recoveries all happened through an
/// incentive code, at least `min_recoveries` times within `incentives.history`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscountHunter {
    /// Recoveries needed before the pattern counts (default 2).
    #[serde(default = "default_min_recoveries")]
    pub min_recoveries: u32,
}

fn default_min_recoveries() -> u32 {
    2
}

/// `sms:` rules for a campaign's text messages.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsRules {
    /// Most segments one SMS may cost (opt-out line included). A rendering over it is a
    /// `campaign check` warning and, at send time, a failed send with the reason.
    pub max_segments: Option<std::num::NonZeroU8>,
}

impl CampaignFile {
    /// The SMS segment limit, if any.
    pub fn max_sms_segments(&self) -> Option<u8> {
        self.sms.as_ref().and_then(|s| s.max_segments).map(std::num::NonZeroU8::get)
    }
}

/// A campaign file as written.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignFile {
    /// Unique campaign name.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Free text.
    pub description: Option<String>,
    /// `cart` (default): abandoned carts. `unpaid_order`: orders placed but not paid
    /// (`order.unpaid` events), usually with minute delays and `expire_after`.
    #[serde(default)]
    pub kind: CampaignKind,
    /// When several campaigns could take a shop's cart, the lowest priority whose audience
    /// matches wins. Two candidates of one shop may not share a priority.
    #[serde(default)]
    pub priority: i32,
    /// Idle time after the last activity before a cart counts as abandoned.
    pub abandon_after: Span,
    /// Who enters.
    #[serde(default)]
    pub audience: Audience,
    /// Local send hours.
    pub send_window: Option<SendWindow>,
    /// Per-customer cap across channels and campaigns.
    pub frequency_cap: Option<FrequencyCap>,
    /// Control group share.
    #[serde(default)]
    pub holdout: Percent,
    /// The sequence.
    pub steps: Vec<Step>,
    /// Incentive rules.
    pub incentives: Option<Incentives>,
    /// UTM parameters added to restore links (`utm_medium` is the channel, `utm_content` the step).
    pub utm: Option<Utm>,
    /// SMS limits.
    pub sms: Option<SmsRules>,
    /// The least time between two steps of one sequence for a customer. A step that falls
    /// due sooner after the previous step finished (after a relay outage, or when the
    /// previous step's retries ran past its time) is moved to this long after it, with the
    /// reason on the timeline, instead of reaching the customer in the same minute. Default:
    /// the smallest spacing between consecutive steps' `after`, at most 1 h.
    #[schemars(with = "Option<Span>")]
    pub min_gap: Option<Spanned<Span>>,
    /// `unpaid_order` campaigns: this long after the order without payment, Cartback sends
    /// the shop a signed `order.expire` event (so it cancels the order and releases the stock)
    /// and the sequence ends.
    #[schemars(with = "Option<Span>")]
    pub expire_after: Option<Spanned<Span>>,
    /// What ends a sequence.
    #[serde(default = "default_exits")]
    #[schemars(with = "Vec<ExitCondition>")]
    pub exit_when: Spanned<Vec<ExitCondition>>,
}

impl CampaignFile {
    /// The least time between two steps' messages to one customer (Unix ms): `min_gap`, or
    /// the smallest spacing between consecutive steps' `after`, at most an hour.
    pub fn min_gap_ms(&self) -> i64 {
        if let Some(gap) = &self.min_gap {
            return gap.value.get().num_milliseconds();
        }
        let afters: Vec<i64> = self.steps.iter().map(|s| s.after.value.get().num_milliseconds()).collect();
        let spacing = afters.windows(2).map(|w| (w[1] - w[0]).max(0)).min();
        spacing.unwrap_or(HOUR_MS).min(HOUR_MS)
    }
}

const HOUR_MS: i64 = 3_600_000;

fn default_exits() -> Spanned<Vec<ExitCondition>> {
    let all = vec![ExitCondition::OrderPlaced, ExitCondition::CartEmptied, ExitCondition::Unsubscribed];
    Spanned::new(all, serde_saphyr::Location::UNKNOWN, serde_saphyr::Location::UNKNOWN)
}

fn string_schema(name: &'static str, pattern: &str, description: &str) -> schemars::Schema {
    let _ = name;
    schemars::json_schema!({ "type": "string", "pattern": pattern, "description": description })
}

impl schemars::JsonSchema for LocalTime {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LocalTime".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        string_schema("LocalTime", "^([01][0-9]|2[0-3]):[0-5][0-9]$", "Local wall-clock time, HH:MM (24-hour)")
    }
}

impl schemars::JsonSchema for Percent {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Percent".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A percentage 0–100, e.g. 5% or 12.5%",
            "anyOf": [
                { "type": "string", "pattern": "^(100(\\.0)?|[0-9]{1,2}(\\.[0-9])?)\\s*%?$" },
                { "type": "number", "minimum": 0, "maximum": 100 }
            ]
        })
    }
}

impl schemars::JsonSchema for Amount {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Amount".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Money: a bare number is in the shop's currency; a map gives one value per ISO 4217 currency, e.g. { EUR: 5, JPY: 800 }",
            "anyOf": [
                { "type": "number", "minimum": 0 },
                { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$" },
                {
                    "type": "object",
                    "propertyNames": { "pattern": "^[A-Za-z]{3}$" },
                    "additionalProperties": { "anyOf": [ { "type": "number", "minimum": 0 }, { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$" } ] },
                    "minProperties": 1
                }
            ]
        })
    }
}
