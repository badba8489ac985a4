//! Property tests over arbitrary input: the payload parsers and the signature checks never
//! panic, and whatever they refuse is refused with an error (mapped to 4xx by `http`).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::shopify::Topic;
use super::{generic, shopify, signature};

/// Arbitrary JSON, to get past the JSON parser into the field checks.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("129.90"),
            Just("-1"),
            Just("1e9"),
            Just("EUR"),
            Just("2026-11-22T10:00:00Z"),
            Just("+4915123456789")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("occurred_at".to_owned()),
                    Just("cart".to_owned()),
                    Just("customer".to_owned()),
                    Just("items".to_owned()),
                    Just("total".to_owned()),
                    Just("currency".to_owned()),
                    Just("id".to_owned()),
                    Just("token".to_owned()),
                    Just("line_items".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid generic event with one part replaced by arbitrary JSON.
fn mutated_event() -> impl Strategy<Value = Value> {
    let base = json!({
        "type": "cart.updated", "occurred_at": "2026-11-22T10:00:00Z",
        "cart": {"id": "c_1", "currency": "EUR", "total": "10.00",
                 "items": [{"title": "T", "quantity": 1, "price": "10.00"}]},
        "customer": {"email": "a@example.com", "phone": "+4915123456789"}
    });
    let paths = prop_oneof![
        Just("/type"),
        Just("/occurred_at"),
        Just("/cart"),
        Just("/cart/id"),
        Just("/cart/total"),
        Just("/cart/currency"),
        Just("/cart/items"),
        Just("/cart/items/0/quantity"),
        Just("/cart/items/0/price"),
        Just("/customer"),
        Just("/customer/email"),
        Just("/customer/phone"),
    ];
    (paths, json_value()).prop_map(move |(path, v)| {
        let mut e = base.clone();
        if let Some(slot) = e.pointer_mut(path) {
            *slot = v;
        }
        e
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = generic::parse(&body);
        for topic in [Topic::CheckoutCreate, Topic::CheckoutUpdate, Topic::OrderCreate] {
            let _ = shopify::parse(topic, &body);
        }
    }

    #[test]
    fn parsers_never_panic_on_json(v in json_value()) {
        let body = v.to_string();
        let _ = generic::parse(body.as_bytes());
        for topic in [Topic::CheckoutCreate, Topic::CheckoutUpdate, Topic::OrderCreate] {
            let _ = shopify::parse(topic, body.as_bytes());
        }
    }

    #[test]
    fn a_mutated_event_parses_or_names_a_field(v in mutated_event()) {
        match generic::parse(v.to_string().as_bytes()) {
            Ok(_) => {}
            Err(generic::PayloadError::Field { field, .. }) => prop_assert!(!field.is_empty()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn signature_checks_never_panic_and_refuse_garbage(
        key in proptest::collection::vec(any::<u8>(), 0..64),
        id in proptest::option::of(".{0,40}"),
        ts in proptest::option::of(".{0,20}"),
        sig in proptest::option::of(".{0,200}"),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        // Random signatures essentially never match; a match would need an HMAC forgery.
        let r = signature::verify(&key, id.as_deref(), ts.as_deref(), sig.as_deref(), &body, 1_763_805_600);
        prop_assert!(r.is_err());
        prop_assert!(!signature::verify_hmac(&key, &[&body], sig.as_deref().unwrap_or_default().as_bytes()));
        prop_assert!(!signature::verify_twilio("token", "https://x.example/v1/sms/inbound", &[], sig.as_deref()));
    }
}
