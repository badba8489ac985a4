//! Campaign files: parsing and every check, on any text; each error must render with its
//! `file:line:col`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(errors) = cartback::campaign::parse_campaign(std::path::Path::new("fuzz.yaml"), &text, &|_, _| true) {
        for e in errors {
            let shown = e.to_string();
            assert!(shown.starts_with("fuzz.yaml"), "an error without its place: {shown}");
        }
    }
});
