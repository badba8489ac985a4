//! The store's transactions: timeline lines wait for the commit and are written in order.

#[macro_use]
mod common;

use chrono::Utc;
use common::{Backend, cart_event, quick_campaign, spawn_app_with};

/// Lines logged in a transaction are written by its commit, in order, across more than one
/// `INSERT` (200 lines each); the transaction reads its own lines before that; a transaction
/// dropped without a commit writes none.
async fn timeline_lines_are_written_with_the_commit(backend: Backend) {
    let t = spawn_app_with(backend, &quick_campaign(600, &[("reminder", 600, "reminder")]), false, |_| {}).await;
    assert_eq!(t.post(&cart_event("cart.updated", "c_1", "anna@example.de", Utc::now())).await.status(), 202);
    let cart = t.scalar("SELECT id FROM carts").await;
    let before = t.scalar("SELECT COUNT(*) FROM cart_log").await;

    let mut tx = t.app.db.begin().await.expect("begin");
    tx.log(cart, 1, "test", "dropped").await.expect("log");
    drop(tx);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM cart_log").await, before, "a rolled-back transaction writes no line");

    let mut tx = t.app.db.begin().await.expect("begin");
    for i in 0..450 {
        tx.log(cart, 1_000 + i, "test", &format!("line {i}")).await.expect("log");
    }
    let own: Vec<String> =
        tx.cart_log(cart).await.expect("timeline").into_iter().filter(|e| e.what == "test").map(|e| e.detail).collect();
    assert_eq!(own.len(), 450, "the transaction reads the lines it logged");
    tx.log(cart, 2_000, "test", "last").await.expect("log");
    tx.commit().await.expect("commit");

    let mut tx = t.app.db.begin().await.expect("begin");
    let lines: Vec<String> =
        tx.cart_log(cart).await.expect("timeline").into_iter().filter(|e| e.what == "test").map(|e| e.detail).collect();
    tx.commit().await.expect("commit");
    let expected: Vec<String> = (0..450).map(|i| format!("line {i}")).chain(["last".to_owned()]).collect();
    assert_eq!(lines, expected, "every line, once, in the order logged");
    t.shutdown().await;
}

on_both!(timeline_lines_are_written_with_the_commit);
