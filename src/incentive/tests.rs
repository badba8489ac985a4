use proptest::prelude::*;

use super::*;
use crate::campaign::Campaign;

fn parse(text: &str) -> Campaign {
    crate::campaign::parse_campaign(std::path::Path::new("t.yaml"), text, &|_, _| true).expect("valid campaign")
}

fn default_campaign() -> Campaign {
    parse(&std::fs::read_to_string("campaigns/default.yaml").expect("default campaign"))
}

fn eur() -> Currency {
    Currency::parse("EUR").expect("EUR")
}

fn facts(total: &str, currency: &str, orders: u32) -> Facts {
    let c = Currency::parse(currency).expect("currency");
    Facts::new(Money::parse(total, c).expect("amount"), orders, eur())
}

const DAY: i64 = 86_400_000;

#[test]
fn first_match_wins() {
    let c = default_campaign();
    let inc = c.incentives.as_ref().expect("incentives");
    assert_eq!(choose(inc, &facts("250", "EUR", 5)).map(|o| o.tier), Some("vip".into()));
    assert_eq!(choose(inc, &facts("250", "EUR", 0)).map(|o| o.tier), Some("high_value".into()));
    assert_eq!(choose(inc, &facts("50", "EUR", 0)).map(|o| o.tier), Some("first_order".into()));
    let d = choose(inc, &facts("50", "EUR", 2)).expect("default");
    assert_eq!((d.tier.as_str(), d.amount_off_minor, d.summary.as_str()), ("default", Some(500), "5.00 EUR off"));
    let vip = choose(inc, &facts("250", "EUR", 5)).expect("vip");
    assert_eq!(vip.summary, "15% off (up to 60.00 EUR)");
}

#[test]
fn other_currencies_never_meet_bare_thresholds() {
    let c = default_campaign();
    let inc = c.incentives.as_ref().expect("incentives");
    // 25,000 JPY is not "200" of anything: vip/high_value do not apply; first_order does (no amount).
    assert_eq!(choose(inc, &facts("25000", "JPY", 0)).map(|o| o.tier), Some("first_order".into()));
    // The default tier offers 5 in the shop's currency only: no offer in JPY.
    assert_eq!(choose(inc, &facts("25000", "JPY", 3)), None);
}

const RULES: &str = "name: t\nabandon_after: 30m\nsteps:\n  - { id: a, after: 1h, channels: [email], template: incentive, incentive: tiers }\nincentives:\n  code_ttl: 7d\n  cooldown: 30d\n  max_discount: 40\n  history: 180d\n  discount_hunter: { min_recoveries: 2 }\n  tiers:\n    - { name: hunter, when: { discount_hunter: true }, offer: { nothing: true } }\n    - { name: loyal, when: { min_spent: 1000, first_order: false }, offer: { percent_off: 20 } }\n    - { name: big, when: { min_total: 150, max_received: 1 }, offer: { percent_off: 10 } }\n    - { name: first, when: { first_order: true }, offer: { free_shipping: true, min_order: 60 } }\n    - { name: rest, offer: { amount_off: 50 } }\n";

#[test]
fn behaviour_rules_spend_first_order_received_and_hunters() {
    let c = parse(RULES);
    let inc = c.incentives.as_ref().expect("incentives");
    let now = 1_000 * DAY;
    let mut f = facts("100", "EUR", 4);
    f.total_spent = Some(Money::parse("1500", eur()).expect("spent"));
    let Decision::Offer(loyal) = decide(inc, &f, now) else { panic!("loyal") };
    // 20% of 100 is 20, within the campaign's cap of 40.
    assert_eq!(
        (loyal.tier.as_str(), loyal.max_discount_minor, loyal.discount_for(10_000)),
        ("loyal", Some(4_000), 2_000)
    );
    // … and capped at 40 on a large order.
    assert_eq!(loyal.discount_for(1_000_000), 4_000);

    // A discount hunter: two recoveries within the history, both through a code.
    f.history = History { last_issued_at: Some(now - 60 * DAY), received: 2, recoveries: 2, recoveries_with_code: 2 };
    assert_eq!(decide(inc, &f, now), Decision::Nothing { tier: "hunter".into() });
    // One recovery without a code breaks the pattern.
    f.history.recoveries = 3;
    assert!(matches!(decide(inc, &f, now), Decision::Offer(o) if o.tier == "loyal"));

    // Within the cooldown: nothing, whatever the tiers say.
    f.history.last_issued_at = Some(now - 10 * DAY);
    assert_eq!(decide(inc, &f, now), Decision::Cooldown { last_issued_at: now - 10 * DAY });

    // `max_received`: a big cart of a customer who already got two codes falls through to `rest`.
    let mut g = facts("200", "EUR", 1);
    g.total_spent = Some(Money::parse("80", eur()).expect("spent"));
    g.history = History { received: 2, ..History::default() };
    let Decision::Offer(rest) = decide(inc, &g, now) else { panic!("rest") };
    // 50 off is capped by the campaign's max_discount of 40.
    assert_eq!(
        (rest.tier.as_str(), rest.amount_off_minor, rest.summary.as_str()),
        ("rest", Some(4_000), "40.00 EUR off")
    );
}

#[test]
fn gap_offers_say_how_much_is_missing() {
    let c = parse(RULES);
    let inc = c.incentives.as_ref().expect("incentives");
    // A first-time customer with 45 in the cart: free shipping from 60 (15 missing), and the
    // `big` tier (10% off) from 150: 105 more.
    let Decision::Offer(o) = decide(inc, &facts("45", "EUR", 0), 0) else { panic!("offer") };
    assert_eq!(
        (o.tier.as_str(), o.free_shipping, o.min_order_minor, o.gap_minor),
        ("first", true, Some(6_000), Some(1_500))
    );
    let next = o.next.as_ref().expect("a bigger tier is within reach");
    assert_eq!((next.tier.as_str(), next.percent_off_permille, next.gap_minor), ("big", Some(100), Some(10_500)));
    // Below the minimum order the code gives nothing.
    assert_eq!(o.discount_for(4_500), 0);
    // With 70 in the cart, the minimum order is met: no gap.
    let Decision::Offer(o) = decide(inc, &facts("70", "EUR", 0), 0) else { panic!("offer") };
    assert_eq!(o.gap_minor, None);
}

#[test]
fn codes_are_unique_readable_and_follow_the_format() {
    let a = new_code(Some("SHOP"), None);
    assert!(a.starts_with("SHOP-") && a.len() == 15, "{a}");
    let set: std::collections::HashSet<String> = (0..1000).map(|_| new_code(None, None)).collect();
    assert_eq!(set.len(), 1000);
    let f = new_code(None, Some("SAVE-####-####"));
    assert_eq!(f.len(), 14);
    assert!(f.starts_with("SAVE-") && f.chars().nth(9) == Some('-'), "{f}");
    assert!(f.chars().filter(|c| *c != '-').skip(4).all(|c| "ABCDEFGHJKLMNPQRSTUVWXYZ23456789".contains(c)), "{f}");
}

#[test]
fn code_formats_with_too_little_randomness_are_refused() {
    let text = RULES.replace("  code_ttl: 7d\n", "  code_ttl: 7d\n  code_format: \"SAVE-####\"\n");
    let errs = crate::campaign::parse_campaign(std::path::Path::new("t.yaml"), &text, &|_, _| true)
        .expect_err("4 random characters are guessable");
    assert!(errs.iter().any(|e| e.to_string().contains("at least 8 '#'")), "{errs:?}");
}

/// `(min_total, min_orders, max_orders, offer kind, offer value)`.
type TierSpec = (Option<u32>, Option<u32>, Option<u32>, u8, u32);

/// A campaign of up to five tiers with arbitrary conditions and offers, and a campaign cap.
fn tiers_yaml(tiers: &[TierSpec], cap: u32) -> String {
    let mut y = format!(
        "name: p\nabandon_after: 30m\nsteps:\n  - {{ id: a, after: 1h, channels: [email], template: incentive, incentive: tiers }}\nincentives:\n  code_ttl: 7d\n  cooldown: 30d\n  max_discount: {cap}\n  tiers:\n"
    );
    for (i, (min_total, min_orders, max_orders, kind, value)) in tiers.iter().enumerate() {
        let mut when = Vec::new();
        if let Some(v) = min_total {
            when.push(format!("min_total: {v}"));
        }
        if let Some(v) = min_orders {
            when.push(format!("min_orders: {v}"));
        }
        if let Some(v) = max_orders {
            when.push(format!("max_orders: {v}"));
        }
        // Keep the last tier conditional too, so "no tier" stays possible.
        if when.is_empty() {
            when.push("max_orders: 100".into());
        }
        let offer = match kind % 3 {
            0 => format!("percent_off: {}", value % 100 + 1),
            1 => format!("amount_off: {}", value % 500 + 1),
            _ => "free_shipping: true".to_owned(),
        };
        y.push_str(&format!("    - {{ name: t{i}, when: {{ {} }}, offer: {{ {offer} }} }}\n", when.join(", ")));
    }
    y
}

fn tier_strategy() -> impl Strategy<Value = TierSpec> {
    (
        proptest::option::of(0_u32..400),
        proptest::option::of(0_u32..6),
        proptest::option::of(0_u32..6),
        any::<u8>(),
        any::<u32>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// The chosen tier is the first one that would match on its own: tiers never interfere.
    #[test]
    fn the_first_matching_tier_wins(
        tiers in proptest::collection::vec(tier_strategy(), 1..5),
        total in 1_i64..50_000,
        orders in 0_u32..8,
    ) {
        let all = parse(&tiers_yaml(&tiers, 10_000));
        let inc = all.incentives.as_ref().expect("incentives");
        let f = Facts::new(Money::from_minor(total, eur()), orders, eur());
        let first_alone = (0..tiers.len()).find(|i| {
            let one = parse(&tiers_yaml(&tiers[*i..=*i], 10_000));
            matches!(decide(one.incentives.as_ref().expect("inc"), &f, 0), Decision::Offer(_))
        });
        match decide(inc, &f, 0) {
            Decision::Offer(o) => prop_assert_eq!(Some(o.tier), first_alone.map(|i| format!("t{i}"))),
            other => prop_assert!(first_alone.is_none(), "{other:?} but t{first_alone:?} matches alone"),
        }
    }

    /// Nobody gets an incentive within the cooldown, whatever the tiers and the cart.
    #[test]
    fn the_cooldown_is_always_respected(
        tiers in proptest::collection::vec(tier_strategy(), 1..5),
        total in 1_i64..50_000,
        orders in 0_u32..8,
        ago in 0_i64..(30 * DAY),
    ) {
        let c = parse(&tiers_yaml(&tiers, 10_000));
        let inc = c.incentives.as_ref().expect("incentives");
        let now = 10_000 * DAY;
        let mut f = Facts::new(Money::from_minor(total, eur()), orders, eur());
        f.history.last_issued_at = Some(now - ago);
        prop_assert_eq!(decide(inc, &f, now), Decision::Cooldown { last_issued_at: now - ago });
    }

    /// No order is ever discounted by more than the campaign's cap, nor by more than its total.
    #[test]
    fn the_discount_never_exceeds_the_cap(
        tiers in proptest::collection::vec(tier_strategy(), 1..5),
        cap in 1_u32..200,
        total in 1_i64..50_000,
        orders in 0_u32..8,
        order_total in 0_i64..1_000_000,
    ) {
        let c = parse(&tiers_yaml(&tiers, cap));
        let inc = c.incentives.as_ref().expect("incentives");
        let f = Facts::new(Money::from_minor(total, eur()), orders, eur());
        if let Decision::Offer(o) = decide(inc, &f, 0) {
            let d = o.discount_for(order_total);
            prop_assert!(d <= i64::from(cap) * 100, "{d} > cap {cap}: {o:?}");
            prop_assert!(d <= order_total.max(0));
            prop_assert!(d >= 0);
        }
    }
}
