//! Recording poll results on SQLite: status, transition, flags and next poll
//! time of each issuance change together, in one short `BEGIN IMMEDIATE`
//! transaction per batch (see `store/record` for what must hold).
//!
//! How the files keep that true:
//! - `observe.rs` writes each observation only over the status it compares
//!   against (the `UPDATE` matches only while the stored status is still the
//!   expected one), and derives the transition from exactly that status; a
//!   transition exists only for a status that was written.
//! - `deferred.rs` writes those transitions (and clears flags) at the end of
//!   the batch, in the same transaction.
//! - `batch.rs` owns the transaction: the status writes and the transition rows
//!   commit together or not at all.
//!
//! Each file uses only the ones listed after it.

mod batch;
mod deferred;
mod observe;
#[cfg(test)]
mod tests;

pub(super) use batch::record_answer_in;
