//! Which daemons are alive. A running daemon holds an [`Ownership`] for its
//! lifetime: an advisory lock that the engine ends when the process dies,
//! however it dies (`kill -9`, an OOM kill, a power cut). A daemon that finds
//! another owner's lock free knows that owner is dead and ends its leases at
//! once instead of waiting out `poll.lease`; its charge requests in flight
//! become `unknown`, never sent again.
//!
//! Invariants: a live daemon's leases (even a stopped one's, SIGSTOP) are never
//! cut short (past their expiry they are claimed as usual, and the fence keeps
//! the paused daemon's late results out), and whatever cannot be decided falls
//! back to lease expiry: slower recovery, never a double poll.

use chrono::{DateTime, Utc};

use super::{Ownership, Store, StoreError, engine};

/// What a look for dead owners found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TakenOver {
    /// Dead owners whose leases were ended.
    pub owners: usize,
    /// Their claims, now due.
    pub issuances: u64,
    /// Their charge requests in flight, now `unknown` (never sent again).
    pub charge_requests: u64,
    /// Lock files whose owner's liveness could not be decided (with why): their
    /// leases are left to expire.
    pub undecided: Vec<String>,
}

impl Store {
    /// Takes this handle's owner lock, for as long as the returned guard lives.
    /// When that fails, logs one warning and carries on: this daemon's claims
    /// then wait out `poll.lease` if it dies.
    pub fn hold_ownership(&self) -> Ownership {
        engine!(self, db => db.hold_ownership())
    }

    /// Notes this daemon's own verdict on its health (`None`: healthy) where
    /// `status` reads it, so that `status` shows what `/healthz` would say.
    pub fn note_health(&self, problem: Option<&str>) -> std::io::Result<()> {
        engine!(self, db => db.note_health(problem))
    }

    /// Ends the leases of every owner found dead: their claims are due at
    /// `now`, their charge requests in flight become `unknown`.
    pub async fn take_over_dead_owners(&self, now: DateTime<Utc>) -> Result<TakenOver, StoreError> {
        engine!(self, db => db.take_over_dead_owners(now).await)
    }

    /// Makes the charge requests in flight of performers that are gone
    /// `unknown`: a dead performer's at once, one whose liveness cannot be
    /// decided once sent before `stale_before` (by then any request of theirs
    /// has timed out). A live performer's are left alone. Returns how many.
    pub async fn sweep_charge_requests(
        &self,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        engine!(self, db => db.sweep_charge_requests(now, stale_before).await)
    }
}
