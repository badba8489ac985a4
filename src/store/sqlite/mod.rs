//! SQLite's own strategies. SQLite runs one write transaction at a time on its connection's
//! own thread, so every statement is a round trip to that thread and every commit waits for
//! the disk: writes a transaction makes are held back and sent as one command
//! ([`deferred`]), and recovery jobs running at once take turns in one shared transaction
//! ([`group`]). Both live behind the SQLite variant of the store's transaction, so
//! PostgreSQL transactions cannot reach them.

mod deferred;
mod group;

pub(super) use deferred::{HeldBack, bind_held_back, shift_params};
pub use group::{Committing, GroupTx, TxGroup};
