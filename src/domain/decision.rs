//! What the polling policy decided after a poll: when to poll next, or that
//! the watch is over. Made by the watcher's policy, written by the store.

use chrono::{DateTime, Utc};

/// The policy's verdict for one issuance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    PollAt(DateTime<Utc>),
    /// Terminal status seen: the watch is over.
    Settled,
    /// 404 for longer than the grace period.
    GiveUpNotFound,
}
