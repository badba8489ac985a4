//! Signed customer links: restore (`/r/…`) and unsubscribe (`/u/…`).

pub mod token;

pub use token::{Keyring, Purpose, TokenError};
