//! Inbound SMS (Twilio's form): the form decoding, its signature check, the sender's number and
//! the opt-out keywords, on any bytes.
#![no_main]

use cartback::ingest::signature;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) else { return };
    let url = "https://cartback.example/v1/sms/inbound";
    let header = params.iter().find(|(k, _)| k == "X-Twilio-Signature").map(|(_, v)| v.as_str());
    let _ = signature::verify_twilio("fuzzing-auth-token", url, &params, header);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some(from) = get("From") {
        let _ = cartback::domain::Phone::parse(from);
    }
    if let Some(body) = get("Body") {
        let _ = cartback::http::keyword(body);
    }
});
