//! Shopify webhooks: every topic's body parser and the HMAC header check, on any bytes.
//! Input: `hmac header \xff body`.
#![no_main]

use cartback::ingest::shopify::{self, Topic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for topic in ["checkouts/create", "checkouts/update", "orders/create"].iter().filter_map(|t| Topic::parse(t)) {
        let _ = shopify::parse(topic, data);
    }
    let (header, body) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (std::str::from_utf8(&data[..i]).ok(), &data[i + 1..]),
        None => (None, data),
    };
    let _ = shopify::verify(b"fuzzing-shopify-secret", header, body);
});
