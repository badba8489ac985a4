//! Campaign files: the YAML model, its validation with file/line/column errors,
//! and the send-time maths in the customer's time zone.

mod duration;
mod model;
pub mod schedule;
pub mod zones;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

pub use duration::{Span, SpanError};
pub use model::{
    Amount, Audience, CampaignFile as Campaign, CampaignKind, Channel, DiscountHunter, ExitCondition, FrequencyCap,
    Incentives, LocalTime, Offer, Percent, SendWindow, SmsRules, Step, StepWhen, Tier, TierWhen, Utm, WeekdayName,
};
use serde_saphyr::Location;

/// The JSON Schema of the campaign format, as shipped in `docs/campaign.schema.json`.
pub fn json_schema() -> String {
    let mut schema = schemars::schema_for!(Campaign);
    schema.insert("title".into(), "Cartback campaign".into());
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

/// One problem in one campaign file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The offending source line, for the caret display.
    pub source_line: Option<String>,
}

impl fmt::Display for CampaignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)?;
        if let Some(src) = &self.source_line {
            let pad = " ".repeat(self.line.to_string().len());
            write!(
                f,
                "\n{pad} |\n{} | {src}\n{pad} | {}^",
                self.line,
                " ".repeat(self.column.saturating_sub(1) as usize)
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for CampaignError {}

/// All problems found in a set of files.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct CampaignErrors(pub Vec<CampaignError>);

fn error_at(file: &Path, text: &str, loc: Option<Location>, message: impl Into<String>) -> CampaignError {
    let (line, column) = loc.map_or((0, 0), |l| (l.line(), l.column()));
    let source_line = (line > 0).then(|| text.lines().nth(line as usize - 1).map(str::to_owned)).flatten();
    CampaignError { file: file.to_owned(), line, column, message: message.into(), source_line }
}

/// The first line from `from_line` (1-based) on, within the next three, whose indentation
/// holds a tab, and the tab's column.
fn tab_in_indentation(text: &str, from_line: u64) -> Option<(u64, u64)> {
    let skip = usize::try_from(from_line.saturating_sub(1)).unwrap_or(0);
    text.lines().enumerate().skip(skip).take(3).find_map(|(i, l)| {
        let indent = &l[..l.len() - l.trim_start_matches([' ', '\t']).len()];
        indent.find('\t').map(|c| (i as u64 + 1, c as u64 + 1))
    })
}

/// Parse one campaign file's text. `template_exists(name, channel)` answers whether the
/// fallback locale has that template, so a typo fails here and not in a customer's inbox.
pub fn parse_campaign(
    file: &Path,
    text: &str,
    template_exists: &dyn Fn(&str, Channel) -> bool,
) -> Result<Campaign, Vec<CampaignError>> {
    let campaign: Campaign = serde_saphyr::from_str(text).map_err(|e| {
        let message = e.without_snippet().to_string();
        // saphyr's message may carry its own "at line" suffix; keep the first line only.
        let message = message.lines().next().unwrap_or("invalid campaign");
        // The position is in our own prefix already.
        let message = match message.rfind(" at line ") {
            Some(i) if message[i..].contains(", column ") => &message[..i],
            _ => message,
        }
        .to_owned();
        // YAML refuses tabs in indentation, but the parser reports it at the value before
        // the tab (a line early): point at the tab itself.
        let from = e.location().map_or(1, |l| l.line());
        if let Some((line, column)) = tab_in_indentation(text, from) {
            let source_line = text.lines().nth(line as usize - 1).map(str::to_owned);
            let message = "a tab in the indentation: YAML indents with spaces only".to_owned();
            return vec![CampaignError { file: file.to_owned(), line, column, message, source_line }];
        }
        vec![error_at(file, text, e.location(), message)]
    })?;
    let mut errors = Vec::new();
    let mut err = |loc: Location, msg: String| errors.push(error_at(file, text, Some(loc), msg));

    if campaign.steps.is_empty() {
        err(campaign.name.referenced, "a campaign needs at least one step".into());
    }
    let mut ids = HashSet::new();
    let mut previous: Option<Span> = None;
    for step in &campaign.steps {
        if !ids.insert(step.id.value.clone()) {
            err(step.id.referenced, format!("step id {:?} is used twice", step.id.value));
        }
        if let Some(prev) = previous
            && step.after.value <= prev
        {
            err(
                step.after.referenced,
                format!("step {:?} comes after a step with a delay of {prev}: delays must increase", step.id.value),
            );
        }
        previous = Some(step.after.value);
        if step.channels.value.is_empty() {
            err(step.channels.referenced, format!("step {:?} has no channels", step.id.value));
        }
        if let Some(f) = &step.fallback {
            let has_sms = step.channels.value.contains(&Channel::Sms);
            if f.value != Channel::Email || !has_sms || step.channels.value.contains(&Channel::Email) {
                err(
                    f.referenced,
                    format!(
                        "step {:?}: `fallback: email` is the only fallback, for a step that sends SMS and not email",
                        step.id.value
                    ),
                );
            }
        }
        for channel in &step.all_channels().collect::<Vec<_>>() {
            if !template_exists(&step.template.value, *channel) {
                err(
                    step.template.referenced,
                    format!(
                        "template {:?} has no {} version in the fallback locale (templates/en/{}.{}.*)",
                        step.template.value,
                        channel.as_str(),
                        step.template.value,
                        channel.as_str()
                    ),
                );
            }
        }
        if let Some(inc) = &step.incentive {
            if inc.value != "tiers" {
                err(
                    inc.referenced,
                    format!("unknown incentive {:?}: the only incentive block is \"tiers\"", inc.value),
                );
            } else if campaign.incentives.is_none() {
                err(inc.referenced, "step uses an incentive but the campaign has no `incentives` block".into());
            }
        }
    }
    if let Some(incentives) = &campaign.incentives {
        if incentives.tiers.is_empty() {
            err(campaign.name.referenced, "`incentives.tiers` is empty".into());
        }
        if let Some(f) = &incentives.code_format {
            let slots = f.chars().filter(|c| *c == '#').count();
            if slots < 8 || f.len() > 40 || !f.chars().all(|c| c.is_ascii_alphanumeric() || "#-_".contains(c)) {
                err(
                    campaign.name.referenced,
                    format!(
                        "incentives.code_format {f:?}: use letters, digits, '-', '_' and at least 8 '#' (random characters), at most 40 in all"
                    ),
                );
            }
            if incentives.code_prefix.is_some() {
                err(campaign.name.referenced, "incentives: give code_prefix or code_format, not both".into());
            }
        }
        let mut catch_all: Option<&str> = None;
        for tier in &incentives.tiers {
            if let Some(earlier) = catch_all {
                err(
                    tier.name.referenced,
                    format!(
                        "tier {:?} can never be chosen: tier {earlier:?} before it matches every cart",
                        tier.name.value
                    ),
                );
            }
            let w = &tier.when;
            if w.is_empty() {
                catch_all.get_or_insert(&tier.name.value);
            }
            if w.discount_hunter.is_some() && incentives.discount_hunter.is_none() {
                err(
                    tier.name.referenced,
                    format!(
                        "tier {:?} uses discount_hunter, but the campaign defines no `incentives.discount_hunter` rule",
                        tier.name.value
                    ),
                );
            }
            let o = &tier.offer;
            let offers = [o.percent_off.is_some(), o.amount_off.is_some(), o.free_shipping, o.nothing]
                .iter()
                .filter(|b| **b)
                .count();
            if offers != 1 {
                err(
                    tier.name.referenced,
                    format!(
                        "tier {:?} must offer exactly one of percent_off, amount_off, free_shipping, nothing",
                        tier.name.value
                    ),
                );
            }
            if o.nothing && o.min_order.is_some() {
                err(tier.name.referenced, format!("tier {:?}: min_order does not go with nothing", tier.name.value));
            }
            if o.max_discount.is_some() && o.percent_off.is_none() {
                err(
                    tier.name.referenced,
                    format!("tier {:?}: max_discount only applies to percent_off", tier.name.value),
                );
            }
        }
    }
    if let Some(exp) = &campaign.expire_after {
        if campaign.kind != CampaignKind::UnpaidOrder {
            err(exp.referenced, "expire_after only applies to `kind: unpaid_order` campaigns".into());
        } else if let Some(last) = campaign.steps.last()
            && exp.value.get() < last.after.value.get()
        {
            err(
                exp.referenced,
                format!(
                    "expire_after ({}) comes before the last step ({} after the order)",
                    exp.value, last.after.value
                ),
            );
        }
    }
    for required in [ExitCondition::OrderPlaced, ExitCondition::Unsubscribed] {
        if !campaign.exit_when.value.contains(&required) {
            err(
                campaign.exit_when.referenced,
                format!(
                    "exit_when must include {}: Cartback never messages people who bought or unsubscribed",
                    required.as_str()
                ),
            );
        }
    }
    if let Some(cap) = &campaign.frequency_cap
        && cap.max == 0
    {
        err(campaign.name.referenced, "frequency_cap.max must be at least 1".into());
    }
    if errors.is_empty() { Ok(campaign) } else { Err(errors) }
}

/// The campaigns in force, shared by everything that reads them: replaced whole on reload,
/// so a reader holding one [`CampaignSet`] sees one consistent set.
#[derive(Debug, Clone)]
pub struct Campaigns(std::sync::Arc<std::sync::RwLock<std::sync::Arc<CampaignSet>>>);

impl Campaigns {
    /// Share `set`.
    pub fn new(set: CampaignSet) -> Self {
        Self(std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(set))))
    }

    /// The set in force now.
    pub fn current(&self) -> std::sync::Arc<CampaignSet> {
        self.0.read().map_or_else(|e| e.into_inner().clone(), |g| g.clone())
    }

    /// Put `set` in force.
    pub fn replace(&self, set: CampaignSet) {
        let set = std::sync::Arc::new(set);
        match self.0.write() {
            Ok(mut g) => *g = set,
            Err(e) => *e.into_inner() = set,
        }
    }
}

/// Every campaign loaded from a directory, by name.
#[derive(Debug, Clone, Default)]
pub struct CampaignSet {
    by_name: BTreeMap<String, Campaign>,
}

impl CampaignSet {
    /// Load and validate every `*.yaml`/`*.yml` file in `dir`; all errors are reported together.
    pub fn load_dir(dir: &Path, template_exists: &dyn Fn(&str, Channel) -> bool) -> Result<Self, CampaignErrors> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| {
                CampaignErrors(vec![error_at(dir, "", None, format!("cannot read campaigns directory: {e}"))])
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        files.sort();
        Self::load_files(&files, template_exists)
    }

    /// Load and validate the given files.
    pub fn load_files(
        files: &[PathBuf],
        template_exists: &dyn Fn(&str, Channel) -> bool,
    ) -> Result<Self, CampaignErrors> {
        let mut set = Self::default();
        let mut errors = Vec::new();
        for file in files {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(error_at(file, "", None, format!("cannot read file: {e}")));
                    continue;
                }
            };
            match parse_campaign(file, &text, template_exists) {
                Ok(c) => {
                    let name = c.name.value.clone();
                    match set.by_name.entry(name) {
                        std::collections::btree_map::Entry::Occupied(e) => errors.push(error_at(
                            file,
                            &text,
                            Some(c.name.referenced),
                            format!("campaign name {:?} is used by another file", e.key()),
                        )),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            e.insert(c);
                        }
                    }
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() { Ok(set) } else { Err(CampaignErrors(errors)) }
    }

    /// The campaign called `name`.
    pub fn get(&self, name: &str) -> Option<&Campaign> {
        self.by_name.get(name)
    }

    /// Every campaign, by name.
    pub fn campaigns(&self) -> impl Iterator<Item = &Campaign> {
        self.by_name.values()
    }

    /// Campaign names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// The campaigns a shop's carts may run, in the order they are tried: the one the shop
    /// names and every campaign whose `audience.shops` lists the shop, by `priority`.
    pub fn for_shop(&self, shop: &str, default: &str) -> Vec<&Campaign> {
        self.for_shop_kind(shop, default, CampaignKind::Cart)
    }

    /// The campaigns of `kind` for a shop's carts, in the order they are tried. Cart
    /// campaigns as in [`Self::for_shop`]; `unpaid_order` campaigns run for every shop unless
    /// their `audience.shops` lists some.
    pub fn for_shop_kind(&self, shop: &str, default: &str, kind: CampaignKind) -> Vec<&Campaign> {
        let lists = |c: &Campaign| c.audience.shops.as_ref().is_some_and(|s| s.iter().any(|x| x == shop));
        let mut out: Vec<&Campaign> = self
            .by_name
            .values()
            .filter(|c| c.kind == kind)
            .filter(|c| match kind {
                CampaignKind::Cart => c.name.value == default || lists(c),
                CampaignKind::UnpaidOrder => c.audience.shops.is_none() || lists(c),
            })
            .collect();
        out.sort_by_key(|c| (c.priority, c.name.value.clone()));
        out
    }

    /// Problems between shops and campaigns: a named campaign that does not exist, or two
    /// candidates of one shop with the same priority (the order must be explicit).
    pub fn check_shops<'a>(&self, shops: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
        let mut problems = Vec::new();
        for (shop, default) in shops {
            match self.get(default) {
                None => problems.push(format!(
                    "shops.{shop}.campaign: no campaign named {default:?} (found: {})",
                    self.names().collect::<Vec<_>>().join(", ")
                )),
                Some(c) if c.kind != CampaignKind::Cart => problems.push(format!(
                    "shops.{shop}.campaign: {default:?} is an unpaid_order campaign; name a cart campaign (unpaid_order campaigns apply on their own)"
                )),
                Some(_) => {}
            }
            let unpaid = self.for_shop_kind(shop, default, CampaignKind::UnpaidOrder);
            for w in unpaid.windows(2) {
                if w[0].priority == w[1].priority {
                    problems.push(format!(
                        "shop {shop}: unpaid_order campaigns {:?} and {:?} share priority {}; give them different priorities",
                        w[0].name.value, w[1].name.value, w[0].priority
                    ));
                }
            }
            let candidates = self.for_shop(shop, default);
            for w in candidates.windows(2) {
                if w[0].priority == w[1].priority {
                    problems.push(format!(
                        "shop {shop}: campaigns {:?} and {:?} both have priority {}; give them different priorities",
                        w[0].name.value, w[1].name.value, w[0].priority
                    ));
                }
            }
        }
        problems
    }

    /// Insert a campaign (tests and the demo build campaigns in code).
    pub fn insert(&mut self, campaign: Campaign) {
        self.by_name.insert(campaign.name.value.clone(), campaign);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Campaign, Vec<CampaignError>> {
        parse_campaign(Path::new("campaigns/x.yaml"), text, &|name, _| name != "missing")
    }

    const GOOD: &str = "name: t\nabandon_after: 30m\nsteps:\n  - id: reminder\n    after: 1h\n    channels: [email]\n    template: reminder\n";

    #[test]
    fn parses_minimal_campaign() {
        let c = parse(GOOD).expect("valid");
        assert_eq!(c.steps[0].id.value, "reminder");
        assert_eq!(c.abandon_after.get().num_minutes(), 30);
    }

    #[test]
    fn unknown_key_is_an_error_with_position() {
        let text = GOOD.replace("    template: reminder\n", "    template: reminder\n    tempalte: x\n");
        let errs = parse(&text).expect_err("unknown key");
        assert_eq!(errs.len(), 1);
        let e = &errs[0];
        assert_eq!((e.line, e.column), (8, 5), "{e}");
        assert!(e.message.contains("tempalte"), "{e}");
        assert!(e.to_string().starts_with("campaigns/x.yaml:8:5: "), "{e}");
    }

    #[test]
    fn an_unknown_currency_is_reported_at_its_key() {
        let text = format!("{GOOD}audience:\n  min_total:\n    EUR: 5.00\n    XYZ: 800\n");
        let errs = parse(&text).expect_err("unknown currency");
        let e = &errs[0];
        assert_eq!((e.line, e.column), (11, 5), "{e}");
        assert!(e.message.contains("XYZ"), "{e}");
        let text = format!("{GOOD}audience: {{ min_total: {{ EUR: 5.00, ABC: 1 }} }}\n");
        let e = &parse(&text).expect_err("unknown currency")[0];
        assert_eq!((e.line, e.column), (8, 37), "{e}");
        // A bad amount under a good currency still names the problem.
        let text = format!("{GOOD}audience:\n  min_total:\n    EUR: 5.001\n");
        assert!(parse(&text).expect_err("too precise")[0].message.contains("5.001"));
    }

    #[test]
    fn a_tab_in_the_indentation_is_reported_on_its_own_line() {
        let text = "name: t\nabandon_after: 30m\nsteps:\n  - id: reminder\n\tafter: 1h\n    channels: [email]\n    template: reminder\n";
        let e = &parse(text).expect_err("a tab")[0];
        assert_eq!((e.line, e.column), (5, 1), "{e}");
        assert!(e.message.contains("tab"), "{e}");
        let text = "name: t\nabandon_after: 30m\nsteps:\n  - id: reminder\n    after: 1h\n  \t channels: [email]\n    template: reminder\n";
        let e = &parse(text).expect_err("a tab")[0];
        assert_eq!((e.line, e.column), (6, 3), "{e}");
    }

    #[test]
    fn cross_checks_report_each_problem() {
        let text = "name: t\nabandon_after: 30m\nsteps:\n  - id: a\n    after: 2h\n    channels: [email]\n    template: missing\n  - id: a\n    after: 1h\n    channels: [email]\n    template: reminder\n";
        let errs = parse(text).expect_err("invalid");
        let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(msgs.iter().any(|m| m.starts_with("campaigns/x.yaml:7:15: template \"missing\"")), "{msgs:#?}");
        assert!(msgs.iter().any(|m| m.starts_with("campaigns/x.yaml:8:9: step id \"a\" is used twice")), "{msgs:#?}");
        assert!(msgs.iter().any(|m| m.contains("delays must increase")), "{msgs:#?}");
    }

    #[test]
    fn bad_duration_and_percent_are_refused() {
        assert!(parse(&GOOD.replace("30m", "30 minutes")).is_err());
        assert!(parse(&format!("{GOOD}holdout: 120%\n")).is_err());
        let c = parse(&format!("{GOOD}holdout: 5%\n")).expect("valid");
        assert_eq!(c.holdout, Percent(50));
    }

    #[test]
    fn amounts_never_compare_across_currencies() {
        let c = parse(&format!("{GOOD}audience: {{ min_total: {{ EUR: 5.00, JPY: 800 }} }}\n")).expect("valid");
        let amount = c.audience.min_total.expect("min_total");
        let eur = crate::domain::Currency::parse("EUR").expect("EUR");
        let jpy = crate::domain::Currency::parse("JPY").expect("JPY");
        let usd = crate::domain::Currency::parse("USD").expect("USD");
        assert_eq!(amount.for_currency(jpy, eur).map(|m| m.minor()), Some(800));
        assert_eq!(amount.for_currency(eur, eur).map(|m| m.minor()), Some(500));
        assert_eq!(amount.for_currency(usd, eur), None);
        assert_eq!(Amount::ShopCurrency("5".into()).for_currency(jpy, eur), None);
    }

    #[test]
    fn check_output_points_at_each_problem() {
        let text = "name: broken\nabandon_after: 30 minutes\nsteps: []\n";
        let rendered: Vec<String> = parse(text).expect_err("invalid").iter().map(ToString::to_string).collect();
        insta::assert_snapshot!("check_bad_duration", rendered.join("\n\n"));

        let text = "name: broken\nabandon_after: 30m\nsteps:\n  - id: reminder\n    after: 2h\n    channels: [email, fax]\n    template: reminder\n";
        let rendered: Vec<String> = parse(text).expect_err("invalid").iter().map(ToString::to_string).collect();
        insta::assert_snapshot!("check_unknown_channel", rendered.join("\n\n"));

        let text = "name: broken\nabandon_after: 30m\nsteps:\n  - id: reminder\n    after: 2h\n    channels: [email]\n    template: missing\n  - id: reminder\n    after: 1h\n    channels: [email]\n    template: reminder\nincentives:\n  code_ttl: 7d\n  tiers:\n    - { name: all, offer: { amount_off: 5 } }\n    - { name: vip, when: { min_orders: 3 }, offer: { percent_off: 15 } }\nexit_when: [order_placed]\n";
        let rendered: Vec<String> = parse(text).expect_err("invalid").iter().map(ToString::to_string).collect();
        insta::assert_snapshot!("check_cross_checks", rendered.join("\n\n"));
    }

    #[test]
    fn shipped_json_schema_is_current() {
        let shipped = std::fs::read_to_string("docs/campaign.schema.json").unwrap_or_default();
        assert!(
            shipped.trim() == json_schema().trim(),
            "docs/campaign.schema.json is out of date: run `cargo run -- campaign schema > docs/campaign.schema.json`"
        );
    }

    #[test]
    fn shipped_campaigns_are_valid() {
        let set = CampaignSet::load_dir(Path::new("campaigns"), &|_, _| true).expect("shipped campaigns parse");
        assert!(set.get("default").is_some());
    }
}
