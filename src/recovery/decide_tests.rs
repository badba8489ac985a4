//! `decide` and its helpers, on carts built in memory: no database.

use super::*;
use crate::campaign::parse_campaign;
use crate::domain::{Currency, Locale, ShopId};
use crate::store::Claim;

/// 2026-03-02 12:00:00 UTC, a Monday; 13:00 in Berlin.
const NOON: i64 = 1_772_452_800_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

const YAML: &str = r#"name: t
abandon_after: 1h
audience: { min_total: 5 }
send_window: { start: "09:00", end: "20:00" }
steps:
  - id: reminder
    after: 1h
    channels: [email, sms]
    template: reminder
  - id: faq
    after: 1d
    channels: [email]
    template: faq
exit_when: [order_placed, cart_emptied, unsubscribed]
"#;

fn set(yaml: &str) -> CampaignSet {
    let mut s = CampaignSet::default();
    s.insert(parse_campaign(std::path::Path::new("t.yaml"), yaml, &|_, _| true).expect("valid campaign"));
    s
}

fn shop() -> Shop {
    Shop {
        id: ShopId::parse("s").expect("id"),
        name: "Shop".into(),
        webhook_key: vec![0; 16],
        timezone: chrono_tz::Europe::Berlin,
        locale: Locale::parse("en").expect("locale"),
        currency: Currency::parse("EUR").expect("currency"),
        campaign: "t".into(),
        url: None,
        from: "Shop <s@example.com>".parse().expect("mailbox"),
        reply_to: None,
        unsubscribe_mailto: None,
        events_url: None,
        restore_code_param: None,
        transactional_first_reminder: false,
        sms_opt_out_line: None,
    }
}

/// A cart last active at `NOON - idle`, with an email address and consent.
fn cart(idle: i64) -> CartRow {
    CartRow {
        id: 1,
        public_id: "p1".into(),
        shop: "s".into(),
        external_id: "c1".into(),
        status: CartStatus::Active,
        currency: Some("EUR".into()),
        total_minor: Some(12_990),
        items: "[]".into(),
        restore_url: None,
        cart_locale: None,
        customer_ref: Some(CustomerRef::account("cu_1")),
        email: Some("anna@example.de".into()),
        phone: Some("+4915123456789".into()),
        first_name: None,
        timezone: Some("Europe/Berlin".into()),
        timezone_source: Some("event: customer.timezone".into()),
        locale: None,
        country: None,
        orders_count: 0,
        total_spent_minor: None,
        accepts_email: true,
        accepts_sms: false,
        stage: None,
        reason: None,
        reason_detail: None,
        last_activity_at: NOON - idle,
        campaign: None,
        abandoned_at: None,
        next_step: 0,
        seq: 1,
        next_run_at: Some(NOON),
        exit_reason: None,
        recovered_at: None,
        order_id: None,
        order_total_minor: None,
        created_at: 0,
        updated_at: 0,
        arm: None,
        recovered_step: None,
        incentive_code_used: None,
        discount_minor: None,
        kind: CampaignKind::Cart,
        reported_reason: None,
        consent_at: None,
        consent_source: None,
    }
}

fn facts<'a>(shop: &'a Shop, set: &'a CampaignSet, now: i64) -> Facts<'a> {
    Facts { now, shop: Some(shop), campaigns: set, paused: Some(false), sent_since: Some(Vec::new()) }
}

fn plan<'a>(cart: &CartRow, f: &Facts<'a>) -> Plan<'a> {
    match decide(cart, f) {
        Verdict::Plan(p) => *p,
        Verdict::Need(n) => panic!("needs {n:?}"),
    }
}

fn whats(p: &Plan<'_>) -> Vec<&'static str> {
    p.lines.iter().map(|(w, _)| *w).collect()
}

#[test]
fn a_cart_idle_long_enough_is_abandoned_enters_and_is_scheduled() {
    let (s, set) = (shop(), set(YAML));
    // Active for 30 minutes: come back when it has been idle for an hour.
    let p = plan(&cart(30 * MIN), &facts(&s, &set, NOON));
    assert_eq!(p.action, Action::Later(NOON + 30 * MIN));
    assert_eq!(p.cart.status(), CartStatus::Active);

    // Idle for an hour: abandoned now, entered, and the reminder is due in an hour.
    let p = plan(&cart(HOUR), &facts(&s, &set, NOON));
    assert_eq!(whats(&p), ["abandoned", "entered", "scheduled"]);
    assert_eq!(p.action, Action::Later(NOON + HOUR));
    assert_eq!((p.cart.status(), p.cart.abandoned_at), (CartStatus::Abandoned, Some(NOON)));
    assert_eq!((p.cart.campaign.as_deref(), p.cart.arm.as_deref()), (Some("t"), Some("treatment")));
}

#[test]
fn a_due_step_is_sent() {
    let (s, set) = (shop(), set(YAML));
    let p = plan(&cart(2 * HOUR), &facts(&s, &set, NOON));
    let Action::Send { campaign, step, due } = p.action else { panic!("{:?}", p.action) };
    assert_eq!((campaign.name.value.as_str(), step, due), ("t", 0, NOON));
}

#[test]
fn a_step_outside_the_send_window_is_deferred_to_its_opening() {
    let (s, set) = (shop(), set(YAML));
    // Idle since 19:30 Berlin (18:30 UTC): abandoned 20:30, due 21:30, after the window.
    let evening = NOON + 6 * HOUR + 30 * MIN;
    let mut c = cart(0);
    c.last_activity_at = evening;
    let p = plan(&c, &facts(&s, &set, evening + HOUR));
    assert!(p.lines.iter().any(|(w, l)| *w == "deferred" && l.contains("09:00:00 CET")), "{:?}", p.lines);
    // 09:00 Berlin the next morning is 08:00 UTC.
    assert_eq!(p.action, Action::Later(NOON - 4 * HOUR + 24 * HOUR));
}

#[test]
fn a_paused_campaign_defers_and_asks_first() {
    let (s, set) = (shop(), set(YAML));
    let c = cart(2 * HOUR);
    let f = Facts { paused: None, ..facts(&s, &set, NOON) };
    assert!(matches!(decide(&c, &f), Verdict::Need(Need::Paused(name)) if name == "t"));
    let p = plan(&c, &Facts { paused: Some(true), ..f });
    assert_eq!(p.action, Action::Later(NOON + PAUSE_RECHECK_MS));
    assert!(p.lines.iter().any(|(w, l)| *w == "deferred" && l.contains("paused")), "{:?}", p.lines);
}

#[test]
fn the_frequency_cap_defers_until_a_send_falls_out_of_the_period() {
    let yaml = YAML.replace("steps:", "frequency_cap: { max: 1, per: 24h }\nsteps:");
    let (s, set) = (shop(), set(&yaml));
    let c = cart(2 * HOUR);
    let f = Facts { sent_since: None, ..facts(&s, &set, NOON) };
    let Verdict::Need(Need::SentSince { customer, since }) = decide(&c, &f) else { panic!("asks for the sends") };
    assert_eq!((customer, since), (CustomerRef::account("cu_1"), NOON - 24 * HOUR));
    let sent = NOON - 2 * HOUR;
    let p = plan(&c, &Facts { sent_since: Some(vec![sent]), ..f });
    assert_eq!(p.action, Action::Later(sent + 24 * HOUR + 1));
    assert!(
        p.lines.iter().any(|(w, l)| *w == "deferred" && l.contains("frequency cap 1 per 1d reached")),
        "{:?}",
        p.lines
    );
}

#[test]
fn an_order_an_emptied_cart_or_an_unsubscribe_ends_the_sequence() {
    let (s, set) = (shop(), set(YAML));
    for (status, why) in [
        (CartStatus::Recovered, "order placed"),
        (CartStatus::Emptied, "cart emptied"),
        (CartStatus::Unsubscribed, "unsubscribed"),
    ] {
        let mut c = cart(2 * HOUR);
        c.status = status;
        c.campaign = Some("t".into());
        let campaign = set.get("t").expect("campaign");
        assert_eq!(exit_reason(&c, campaign), Some(why));
        let p = plan(&c, &facts(&s, &set, NOON));
        assert_eq!((p.action, p.cart.next_run_at), (Action::Stop, None), "{status:?}");
    }
}

#[test]
fn after_the_last_step_the_sequence_finishes() {
    let (s, set) = (shop(), set(YAML));
    let mut c = cart(2 * HOUR);
    c.status = CartStatus::Abandoned;
    c.campaign = Some("t".into());
    c.next_step = 2;
    let p = plan(&c, &facts(&s, &set, NOON));
    assert!(matches!(p.action, Action::Finish(campaign) if campaign.name.value == "t"));
    assert_eq!(ending(&c, set.get("t").expect("campaign"), NOON), Ending::Complete);
}

#[test]
fn a_cart_outside_the_audience_does_not_enter() {
    let (s, set) = (shop(), set(YAML));
    let mut c = cart(2 * HOUR);
    c.total_minor = Some(100);
    let p = plan(&c, &facts(&s, &set, NOON));
    assert_eq!((p.action, p.cart.status()), (Action::Stop, CartStatus::NotEntered));
    assert!(p.lines[0].1.contains("below"), "{:?}", p.lines);
}

#[test]
fn a_customer_in_the_holdout_gets_nothing() {
    let yaml = YAML.replace("steps:", "holdout: 100%\nsteps:");
    let (s, set) = (shop(), set(&yaml));
    let p = plan(&cart(2 * HOUR), &facts(&s, &set, NOON));
    assert_eq!(
        (p.action, p.cart.status(), p.cart.arm.as_deref()),
        (Action::Stop, CartStatus::Holdout, Some("holdout"))
    );
}

#[test]
fn a_channel_without_consent_or_address_is_skipped() {
    let (s, set) = (shop(), set(YAML));
    let campaign = set.get("t").expect("campaign");
    let step = &campaign.steps[0];
    let c = cart(2 * HOUR);
    assert_eq!(address_for(&c, &s, campaign, step, Channel::Email), Ok("anna@example.de"));
    assert_eq!(address_for(&c, &s, campaign, step, Channel::Sms), Err("no sms marketing consent".into()));
    let mut none = c.clone();
    none.email = None;
    assert_eq!(address_for(&none, &s, campaign, step, Channel::Email), Err("no email address".into()));
    // The shop allows the first reminder email as a transactional message, never SMS.
    let lenient = Shop { transactional_first_reminder: true, ..shop() };
    let mut no_consent = c.clone();
    no_consent.accepts_email = false;
    assert!(address_for(&no_consent, &lenient, campaign, step, Channel::Email).is_ok());
    assert!(address_for(&no_consent, &lenient, campaign, &campaign.steps[1], Channel::Email).is_err());
}

#[test]
fn a_suppressed_address_is_skipped_with_the_reason() {
    assert_eq!(
        super::super::send::skip_reason(&Claim::Suppressed("unsubscribed".into())),
        Some("suppressed (unsubscribed)".into())
    );
}

#[test]
fn after_a_step_comes_a_retry_the_next_step_or_the_end() {
    let (s, set) = (shop(), set(YAML));
    let campaign = set.get("t").expect("campaign");
    let mut c = cart(2 * HOUR);
    c.status = CartStatus::Abandoned;
    c.abandoned_at = Some(NOON - HOUR);
    let tz = cart_tz(&c, &s);
    assert_eq!(after_step(&c, campaign, 0, Some(NOON + MIN), tz, NOON).0, Next::Retry(NOON + MIN));
    let (next, _) = after_step(&c, campaign, 0, None, tz, NOON);
    assert!(matches!(next, Next::Step { step: 1, at, .. } if at == NOON - HOUR + 24 * HOUR), "{next:?}");
    assert_eq!(after_step(&c, campaign, 1, None, tz, NOON).0, Next::Finish);
    c.status = CartStatus::Recovered;
    assert_eq!(after_step(&c, campaign, 0, None, tz, NOON).0, Next::Exit);
}

#[test]
fn holdout_is_deterministic_and_roughly_proportional() {
    let n = (0..10_000).filter(|i| in_holdout(&format!("email:c{i}@x.de"), "default", 50)).count();
    assert!((350..=650).contains(&n), "5% of 10,000 ≈ 500, got {n}");
    assert_eq!(in_holdout("email:a@x.de", "default", 50), in_holdout("email:a@x.de", "default", 50));
    assert!(!in_holdout("email:a@x.de", "default", 0));
    assert!(in_holdout("email:a@x.de", "default", 1000));
}

const THREE_STEPS: &str = r#"name: t
abandon_after: 1h
audience: { min_total: 5 }
steps:
  - { id: reminder, after: 1h, channels: [email], template: reminder }
  - { id: faq, after: 3h, channels: [email], template: faq }
  - { id: incentive, after: 1d, channels: [email], template: incentive }
exit_when: [order_placed, cart_emptied, unsubscribed]
"#;

#[test]
fn the_default_gap_is_the_smallest_spacing_at_most_an_hour() {
    assert_eq!(set(THREE_STEPS).get("t").expect("campaign").min_gap_ms(), HOUR, "2 h and 21 h apart: capped at 1 h");
    let close = THREE_STEPS.replace("after: 3h", "after: 75m");
    assert_eq!(set(&close).get("t").expect("c").min_gap_ms(), 15 * MIN);
    let explicit = THREE_STEPS.replace("steps:", "min_gap: 4h\nsteps:");
    assert_eq!(set(&explicit).get("t").expect("c").min_gap_ms(), 4 * HOUR);
}

#[test]
fn an_overdue_step_is_re_spaced_after_the_one_that_just_went_out() {
    let (s, set) = (shop(), set(THREE_STEPS));
    let campaign = set.get("t").expect("campaign");
    let mut c = cart(2 * HOUR);
    c.status = CartStatus::Abandoned;
    c.abandoned_at = Some(NOON - 30 * HOUR); // a relay outage held the reminder for a day
    let tz = cart_tz(&c, &s);
    // The reminder went out at NOON: the FAQ (due 27 h ago) comes an hour later, not now.
    let (next, _) = after_step(&c, campaign, 0, None, tz, NOON);
    let Next::Step { step: 1, at, what, line } = next else { panic!("{next:?}") };
    assert_eq!((at, what), (NOON + HOUR, "deferred"));
    assert!(line.contains("faq re-spaced") && line.contains("min_gap is 1h"), "{line}");
    // And the incentive an hour after the FAQ.
    let (next, _) = after_step(&c, campaign, 1, None, tz, NOON + HOUR);
    assert!(matches!(next, Next::Step { step: 2, at, .. } if at == NOON + 2 * HOUR), "{next:?}");
    // Steps 15 min apart (so min_gap is 15 min): a reminder that went out a few seconds late
    // moves the FAQ by as much, quietly.
    let close = self::set(&THREE_STEPS.replace("after: 3h", "after: 75m"));
    let close = close.get("t").expect("campaign");
    c.abandoned_at = Some(NOON - HOUR);
    let (next, _) = after_step(&c, close, 0, None, tz, NOON + 5_000);
    let Next::Step { at, what, line, .. } = next else { panic!("{next:?}") };
    assert_eq!((at, what), (NOON + 15 * MIN + 5_000, "scheduled"), "{line}");
    assert!(!line.contains("re-spaced"), "{line}");
    // A step still ahead of the gap keeps its own time.
    c.abandoned_at = Some(NOON - HOUR);
    let (next, _) = after_step(&c, campaign, 0, None, tz, NOON);
    assert!(matches!(next, Next::Step { step: 1, at, what: "scheduled", .. } if at == NOON + 2 * HOUR), "{next:?}");
}

#[test]
fn a_re_spaced_step_still_keeps_the_send_window() {
    let yaml = THREE_STEPS.replace("steps:", "send_window: { start: \"09:00\", end: \"20:00\" }\nsteps:");
    let (s, set) = (shop(), set(&yaml));
    let campaign = set.get("t").expect("campaign");
    let mut c = cart(2 * HOUR);
    c.status = CartStatus::Abandoned;
    c.abandoned_at = Some(NOON - 30 * HOUR);
    let tz = cart_tz(&c, &s);
    // The reminder finished at 19:30 Berlin (18:30 UTC): an hour later is 20:30, outside the
    // window, so the FAQ waits for 09:00 the next morning.
    let done = NOON + 6 * HOUR + 30 * MIN;
    let (next, _) = after_step(&c, campaign, 0, None, tz, done);
    let Next::Step { at, line, .. } = next else { panic!("{next:?}") };
    assert_eq!(at, NOON + 20 * HOUR, "08:00 UTC = 09:00 Berlin the next day: {line}");
    assert!(line.contains("re-spaced"), "{line}");
}
