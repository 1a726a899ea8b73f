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

use super::{Engine, Store, StoreError, engine, postgres, sqlite};

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

/// A daemon's claim to be alive, held until dropped (or retired).
#[derive(Debug)]
pub struct Ownership(Held);

#[derive(Debug)]
enum Held {
    Sqlite(sqlite::Ownership),
    Postgres(postgres::Ownership),
}

impl Ownership {
    /// Whether the lock is held (otherwise this daemon's claims, should it die,
    /// wait out their lease).
    pub fn is_held(&self) -> bool {
        match &self.0 {
            Held::Sqlite(held) => held.is_held(),
            Held::Postgres(held) => held.is_held(),
        }
    }

    /// Ends the ownership after a clean stop whose claims were all written or
    /// handed back. After an unclean stop, drop it instead: the next daemon
    /// then takes over what is left.
    /// Releases the lock as a killed process would (SQLite: the lock file stays).
    #[cfg(test)]
    pub(crate) fn die(self) {
        match self.0 {
            Held::Sqlite(held) => held.die(),
            Held::Postgres(held) => drop(held),
        }
    }

    pub async fn retire(self) {
        match self.0 {
            Held::Sqlite(held) => held.retire(),
            Held::Postgres(held) => held.retire().await,
        }
    }
}

impl Store {
    /// Takes this handle's owner lock, for as long as the returned guard lives.
    /// When that fails, logs one warning and carries on: this daemon's claims
    /// then wait out `poll.lease` if it dies.
    pub async fn hold_ownership(&self) -> Ownership {
        Ownership(match &self.engine {
            Engine::Sqlite(db) => Held::Sqlite(db.hold_ownership()),
            Engine::Postgres(db) => Held::Postgres(db.hold_ownership().await),
        })
    }

    /// Checks that `ownership`'s lock is still held and takes it again if its
    /// session was lost (PostgreSQL restarted or failed over; SQLite's lock
    /// file cannot be lost this way). Whether it is held afterwards.
    pub async fn keep_ownership(&self, ownership: &mut Ownership) -> bool {
        match (&self.engine, &mut ownership.0) {
            (Engine::Postgres(db), Held::Postgres(held)) => db.keep_ownership(held).await,
            (_, held) => match held {
                Held::Sqlite(h) => h.is_held(),
                Held::Postgres(h) => h.is_held(),
            },
        }
    }

    /// Notes this daemon's own verdict on its health (`None`: healthy) where
    /// `status` reads it, so that `status` shows what `/healthz` would say.
    pub async fn note_health(&self, problem: Option<&str>) -> std::io::Result<()> {
        engine!(self, db => db.note_health(problem).await)
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
