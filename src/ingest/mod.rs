//! Ingest: from bytes on the wire to durable cart changes. Signatures and payload parsing
//! (generic, Shopify) make domain events; [`apply`] takes each event into its cart, its
//! customer and its job; [`batch`] commits events that arrive together in one transaction.

pub mod apply;
mod batch;
mod consent;
pub mod generic;
mod order;
mod person;
pub mod shopify;
pub mod signature;

pub use apply::{AcceptError, Accepted};
pub use batch::Ingest;

/// What applying events needs: the store, the campaigns in force and the shops; nothing of
/// delivery, rendering or the worker.
#[derive(Debug)]
pub(crate) struct Env {
    /// The database.
    pub db: crate::store::Db,
    /// The campaigns in force (each event reads them once).
    pub campaigns: crate::campaign::Campaigns,
    /// Shops by id.
    pub shops: std::collections::BTreeMap<crate::domain::ShopId, crate::config::Shop>,
    /// `attribution_window`, in milliseconds.
    pub attribution_window_ms: i64,
    /// Events per shared transaction (`/metrics`).
    pub(crate) batch_sizes: prometheus_client::metrics::histogram::Histogram,
}

#[cfg(test)]
mod fuzz;
