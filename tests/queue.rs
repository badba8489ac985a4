//! The job queue's tables: the acknowledgement uses the primary key, not apalis's `LIdx`.

mod common;

use cartback::store::Db;

#[tokio::test]
async fn sqlite_ack_does_not_walk_the_lock_by_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    let db = Db::connect(&url).await.expect("connect");
    db.migrate().await.expect("migrate");
    db.close().await;
    // A fresh connection, as `cartback serve` after `cartback migrate` has: EXPLAIN does not
    // re-check a pooled connection's cached schema.
    let db = Db::connect(&url).await.expect("reconnect");
    let plan = db.explain_ack_plan().await.expect("plan").join("\n");
    assert!(!plan.contains("LIdx"), "ack walks LIdx:\n{plan}");
    assert!(plan.contains("sqlite_autoindex_Jobs_1"), "ack should look jobs up by id:\n{plan}");
}
