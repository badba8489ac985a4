//! Cartback: abandoned-cart recovery.
//!
//! Data flows one way: `http`/`ingest` → `store` → `scheduler` → `campaign`/`incentive` →
//! `render` → `deliver` → `store`. `domain` depends on nothing else in the crate.

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
