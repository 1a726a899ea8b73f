//! Watching: the loop that claims due issuances, polls them within the
//! global rate and writes what it learned. The decisions it makes are pure
//! functions with no I/O: when to poll next ([`policy`]) and which deadline
//! flags apply ([`flags`]); [`pacing`] is the politeness shared by all polls.
//! `poll` turns one claimed issuance into a record; the scheduler loop
//! ([`Watcher::run`]) moves records between the API and the store.

pub mod flags;
pub mod pacing;
pub mod policy;
mod poll;
mod scheduler;

pub use scheduler::{TickReport, Watcher};
