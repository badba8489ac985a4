//! Which settings a command reads: `--config FILE` or `./cartback.toml`, never a parent
//! directory's file; the demo its own whatever the working directory holds; and a
//! `CARTBACK_*` variable that is no setting is named in the error.

use std::process::Command;

fn run(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cartback"));
    cmd.current_dir(dir).args(args).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cartback");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

const BROKEN: &str = "listen = \"not an address\"\n[shops.demo]\ncampaign = \"no-such-campaign\"\n";

#[test]
fn a_parents_cartback_toml_is_never_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("cartback.toml"), BROKEN).expect("write");
    let child = dir.path().join("child");
    std::fs::create_dir(&child).expect("mkdir");
    let (ok, out) = run(&child, &["migrate"], &[]);
    assert!(ok, "the parent's file was read: {out}");
    assert!(child.join("cartback.db").exists(), "the defaults were used");
    // The working directory's own file is read, and its error names the key.
    let (ok, out) = run(dir.path(), &["migrate"], &[]);
    assert!(!ok && out.contains("listen"), "{out}");
}

#[test]
fn the_demo_uses_its_own_settings_from_any_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("cartback.toml"), BROKEN).expect("write");
    let (ok, out) = run(dir.path(), &["demo", "--timeout", "90"], &[]);
    assert!(ok, "demo failed: {out}");
    assert!(dir.path().join("outbox/demo/email").read_dir().expect("outbox").next().is_some(), "{out}");
}

#[test]
fn a_cartback_variable_that_is_no_setting_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, out) = run(dir.path(), &["migrate"], &[("CARTBACK_OPS_TOKN", "x")]);
    assert!(!ok && out.contains("CARTBACK_OPS_TOKN"), "{out}");
    let (ok, out) = run(dir.path(), &["migrate"], &[("CARTBACK_BENCH_ONLY", "file")]);
    assert!(ok, "the bench's own variables are not settings: {out}");
}

/// No personal data or secret reaches the log at any level: the demo's customers, run at
/// `RUST_LOG=trace` (handlebars logs every value it renders at debug; it is capped).
#[test]
fn the_log_at_trace_level_holds_no_personal_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_cartback"))
        .current_dir(dir.path())
        .args(["demo", "--timeout", "90"])
        .env("RUST_LOG", "trace")
        .output()
        .expect("run cartback");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed: {}", &log[log.len().saturating_sub(2000)..]);
    assert!(log.lines().count() > 100, "trace logging was on");
    for personal in ["Anna", "Kenji", "María", "Priya", "anna@example.de", "+4915123456789", "+919812345678", "whsec_"]
    {
        let at = log.find(personal);
        assert!(
            at.is_none(),
            "{personal:?} in the log: …{}…",
            at.map_or("", |i| &log[i.saturating_sub(200)..(i + 100).min(log.len())])
        );
    }
}
