//! The generic webhook: its body parser and its Standard Webhooks signature check, on any bytes.
//! Input: `id \xff timestamp \xff signatures \xff body` (missing parts are absent headers).
#![no_main]

use cartback::ingest::{generic, signature};
use libfuzzer_sys::fuzz_target;

fn text(part: Option<&[u8]>) -> Option<&str> {
    part.and_then(|b| std::str::from_utf8(b).ok())
}

fuzz_target!(|data: &[u8]| {
    let _ = generic::parse(data);
    let mut parts = data.splitn(4, |&b| b == 0xff);
    let (id, ts, sigs) = (text(parts.next()), text(parts.next()), text(parts.next()));
    let body = parts.next().unwrap_or_default();
    let key = b"fuzzing-webhook-key-of-32-bytes!";
    let _ = signature::verify(key, id, ts, sigs, body, 1_800_000_000);
    let _ = generic::parse(body);
});
