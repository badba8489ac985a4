//! Cartback: abandoned-cart recovery.
//!
//! One module per pipeline stage, and data flows one way (docs/architecture.md):
//! `http` → `ingest` → `store` for events; `worker` → `recovery` → (`campaign`, `incentive`,
//! `render`, `deliver`, `links`) → `store` for messages. `app` (what a stage needs, built once)
//! sits below every stage and `domain` (pure types) below everything. The queue library is
//! known only to `queue` and `worker`; which database runs is known only to `store`.
//! `tests/layout.rs` keeps it so.

pub mod app;
pub mod campaign;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod deliver;
pub mod domain;
pub mod http;
pub mod incentive;
pub mod ingest;
pub mod links;
pub mod metrics;
pub mod ops;
pub mod outbound;
pub mod queue;
pub mod recovery;
pub mod render;
pub mod store;
pub mod telemetry;
pub mod worker;
