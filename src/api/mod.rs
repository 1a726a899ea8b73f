//! The Bunjang point API as the watcher sees it: the lookup and the outcomes
//! the polling policy can act on (`client`), and the charge, cancel and
//! balance requests with outcomes that never hide an ambiguous POST (`charges`).

pub mod auth;
mod charges;
mod client;
mod model;
pub mod simclock;

pub use charges::{Balance, CancelOutcome, ChargeOutcome, Refusal, Unknown};
pub use client::{Answer, ApiClient, PollError};
pub use model::{LookupError, parse_lookup};

/// Longest id the watcher will put in a URL; longer ones are rejected, not truncated.
pub const MAX_ID_BYTES: usize = 256;

/// Why an id can never be looked up (recorded, and the watch ends).
pub fn reject_reason(id: &str) -> Option<&'static str> {
    if id.trim().is_empty() {
        Some("id is empty")
    } else if id.len() > MAX_ID_BYTES {
        Some("id is longer than 256 bytes")
    } else if id.chars().all(|c| c == '.') {
        Some("id is a relative path segment")
    } else if id.chars().any(char::is_control) {
        Some("id contains control characters")
    } else {
        None
    }
}
