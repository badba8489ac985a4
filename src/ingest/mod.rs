//! Ingest: from bytes on the wire to durable cart changes. Signatures and payload parsing
//! (generic, Shopify) make domain events; [`apply`] takes each event into its cart, its
//! customer and its job; [`batch`] commits events that arrive together in one transaction.

pub mod apply;
mod batch;
pub mod generic;
mod order;
mod person;
pub mod shopify;
pub mod signature;

pub use apply::{AcceptError, Accepted};
pub use batch::Ingest;

#[cfg(test)]
mod fuzz;
