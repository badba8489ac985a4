//! From bytes on the wire to domain events: signature checks and payload parsing.

pub mod generic;
pub mod shopify;
pub mod signature;

#[cfg(test)]
mod fuzz;
