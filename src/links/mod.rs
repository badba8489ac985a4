//! Signed customer links: restore (`/r/…`), unsubscribe (`/u/…`) and "what stopped you?" (`/f/…`).

pub mod feedback;
pub mod token;

pub use token::{Keyring, Purpose, TokenError};
