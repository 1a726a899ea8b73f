//! Watching: the loop that claims due issuances, polls them within the
//! global rate and writes what it learned. The decisions it makes are pure
//! functions with no I/O: when to poll next ([`policy`]) and which deadline
//! flags apply ([`flags`]); [`pacing`] is the politeness shared by all polls;
//! `schedule` decides the loop's next step (start polls, claim, write,
//! housekeep, checkpoint, stop) from what it holds and the time.
//! `wal` decides when the write-ahead log's size deserves a warning.
//! `poll` turns one claimed issuance into a record; the scheduler loop
//! ([`Watcher::run`]) moves records between the API and the store.
//! [`charges`] performs one charge request (for the CLI and the daemon alike),
//! [`balance`] decides when a balance raises `balance.low`, and `requests`
//! is the daemon's loop over requests from the database and balance polls
//! ([`Watcher::run_requests`]); [`top_up`] decides when a low balance asks
//! for a charge and `top_up_step` asks the database for it.

pub mod balance;
pub mod charges;
pub mod flags;
pub mod pacing;
pub mod policy;
mod poll;
mod requests;
mod schedule;
#[cfg(test)]
mod schedule_props;
#[cfg(test)]
mod schedule_tests;
mod scheduler;
pub mod top_up;
mod top_up_step;
mod wal;

pub use scheduler::Watcher;
