//! The operator dashboard in a real headless browser (Debian's Chromium via playwright-core):
//! sign in, see a dead job with its error, click Retry, and keep a screenshot.

mod common;

use std::process::Command;
use std::time::Duration;

use cartback::config::Secret;
use chrono::Utc;
use common::{Backend, cart_event, quick_campaign, spawn_app_with};

/// Run `tests/browser/<script>` with `args` in node (Chromium through playwright-core); it must succeed.
fn browser(script: &str, args: &[&str]) {
    let dir = common::repo().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (scripts/test does) and `apt-get install chromium`"
    );
    let out = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .output()
        .expect("node must be installed to run the browser test");
    assert!(
        out.status.success(),
        "browser test {script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One finished job turned into a dead one, as a relay outage would leave it; its id.
async fn kill_a_done_job(pool: &sqlx::SqlitePool) -> String {
    let id: String =
        sqlx::query_scalar("SELECT id FROM Jobs WHERE status = 'Done' LIMIT 1").fetch_one(pool).await.expect("job");
    sqlx::query("UPDATE Jobs SET status = 'Killed', attempts = 5, last_result = '{\"Err\":\"SMTP relay answered 554: rejected\"}' WHERE id = $1")
        .bind(&id)
        .execute(pool)
        .await
        .expect("make it dead");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_retries_a_dead_job_from_the_dashboard() {
    let t = spawn_app_with(Backend::Sqlite, &quick_campaign(1, &[("reminder", 1, "reminder")]), true, |s| {
        s.ops_token = Some(Secret::new("dashboard-token"));
    })
    .await;
    // One cart through its whole sequence, so the funnel has something to draw …
    let past = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(t.post(&cart_event("cart.updated", "c_dash", "d@example.com", past)).await.status(), 202);
    t.wait_for("the sequence to complete", Duration::from_secs(20), || async {
        let done = t.scalar("SELECT COUNT(*) FROM carts WHERE status = 'completed'").await == 1
            && t.scalar("SELECT COUNT(*) FROM Jobs WHERE status = 'Done'").await >= 1;
        done.then_some(())
    })
    .await;
    // … and one of its jobs turned into a dead one, as a relay outage would leave it.
    let pool = t.app.db.as_sqlite().expect("a SQLite database");
    let id = kill_a_done_job(pool).await;

    let shot = common::repo().join("target/dashboard.png");
    let shot_arg = shot.display().to_string();
    browser("dashboard.mjs", &[t.base.as_str(), "dashboard-token", id.as_str(), shot_arg.as_str()]);
    // The click really retried the job: its failure is gone and it is queued (or already ran again).
    let (status, result): (String, Option<String>) =
        sqlx::query_as("SELECT status, last_result FROM Jobs WHERE id = $1")
            .bind(&id)
            .fetch_one(pool)
            .await
            .expect("job");
    assert!(matches!(status.as_str(), "Pending" | "Queued" | "Running" | "Done"), "{status}");
    assert!(!result.unwrap_or_default().contains("554"));
    // A real page was rendered: a PNG of plausible size.
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (w, h) = (
        u32::from_be_bytes([png[16], png[17], png[18], png[19]]),
        u32::from_be_bytes([png[20], png[21], png[22], png[23]]),
    );
    assert!(w >= 1200 && h >= 500, "screenshot is {w}x{h}");
    t.shutdown().await;
}

/// Every console page in Chromium: jobs filtered by state and a job's detail with Retry, a
/// campaign paused and resumed, a cart found by the customer's email with its timeline, the
/// charts, and a dead outbound webhook retried. A screenshot per page in `target/console/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_works_through_every_console_page() {
    let t = spawn_app_with(Backend::Sqlite, &quick_campaign(1, &[("reminder", 1, "reminder")]), true, |s| {
        s.ops_token = Some(Secret::new("console-token"));
    })
    .await;
    let past = Utc::now() - chrono::Duration::hours(1);
    let email = "Console.Anna@example.com";
    assert_eq!(t.post(&cart_event("cart.updated", "c_console", email, past)).await.status(), 202);
    t.wait_for("the sequence to complete", Duration::from_secs(20), || async {
        let done = t.scalar("SELECT COUNT(*) FROM sends WHERE status = 'sent'").await == 1
            && t.scalar("SELECT COUNT(*) FROM Jobs WHERE status = 'Done'").await >= 1;
        done.then_some(())
    })
    .await;
    let pool = t.app.db.as_sqlite().expect("a SQLite database");
    let id = kill_a_done_job(pool).await;
    let now = Utc::now().timestamp_millis();
    sqlx::query(
        "INSERT INTO outbound_webhooks (public_id, shop, kind, payload, created_at, attempts, last_error, dead_at)
         VALUES ('msg_console', 'demo', 'incentive.issued', '{}', $1, 6, 'shop answered 500', $1)",
    )
    .bind(now)
    .execute(pool)
    .await
    .expect("a dead outbound webhook");

    let shots = common::repo().join("target/console");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let shots_arg = shots.display().to_string();
    browser(
        "console.mjs",
        &[t.base.as_str(), "console-token", id.as_str(), "c_console", email, "quick", shots_arg.as_str()],
    );
    // The clicks did what they say, in the database.
    let status: String =
        sqlx::query_scalar("SELECT status FROM Jobs WHERE id = $1").bind(&id).fetch_one(pool).await.expect("job");
    assert_ne!(status, "Killed", "Retry on the job's page queued it again");
    let switched: Vec<(bool,)> =
        sqlx::query_as("SELECT paused FROM campaign_state WHERE name = 'quick'").fetch_all(pool).await.expect("state");
    assert_eq!(switched, vec![(false,)], "paused, then resumed");
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM outbound_webhooks WHERE public_id = 'msg_console' AND dead_at IS NULL").await,
        1,
        "Retry on the outbound page revived it"
    );
    for name in ["overview", "jobs", "job", "campaigns", "carts", "cart", "charts", "outbound"] {
        let png = std::fs::read(shots.join(format!("{name}.png"))).unwrap_or_else(|e| panic!("{name}.png: {e}"));
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}.png");
    }
    t.shutdown().await;
}
