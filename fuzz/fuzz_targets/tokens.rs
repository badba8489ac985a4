//! Signed tokens customers and operators hand back: restore, unsubscribe and feedback links,
//! the dashboard's session cookie and form token. None may panic, and none made up by the
//! fuzzer may verify.
#![no_main]

use cartback::links::{Keyring, Purpose};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let keys = Keyring::from_keys(&[b"fuzzing-link-key-of-32-bytes!!!!".to_vec()]);
    for purpose in [Purpose::Restore, Purpose::Unsubscribe, Purpose::Feedback] {
        assert!(keys.verify(purpose, text, 1_800_000_000).is_err(), "a made-up token verified: {text:?}");
    }
    assert!(!cartback::http::session_valid("ops-token", text, 1_800_000_000_000));
    let _ = cartback::http::form_token_valid("ops-token", text, text);
});
