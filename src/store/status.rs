//! What `issuance-watcher status` shows, read from the database and the owner
//! locks beside it, so it works on the host without the HTTP listener.
//!
//! Invariants:
//! - read-only: nothing here writes a row or removes a file; a dead owner's
//!   lock file is left for the next daemon to take over (`owners.rs`);
//! - "alive" means a process holds its owner lock right now (the kernel drops
//!   it when the process dies, however it dies), not that it polled recently:
//!   a live daemon that cannot reach the API is alive, and says so through
//!   [`StatusFacts::last_success`] and the recent errors;
//! - every read is an indexed one (the active-status index, the transitions'
//!   time index, the open-deliveries index), so the screen costs the same with
//!   a million settled rows or delivered events; the one exception is
//!   `charge_requests` (one row per charge a person asked for: small).

use super::{Store, StoreError, engine};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A daemon that holds its owner lock on this database now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveDaemon {
    /// Its owner id (as in `issuances.lease_owner`).
    pub owner: String,
    /// The host it runs on (PostgreSQL, where daemons of several hosts share
    /// one database; absent on SQLite, which is one host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its process id, as it wrote it into its lock file (absent if unreadable).
    pub pid: Option<u32>,
    /// When it took the lock (as its lock file says; else the file's modification time).
    pub since: Option<String>,
    /// Its own verdict on its health, as it last wrote it: `ok`, or the problem
    /// `/healthz` reports (absent from a daemon that has not written one yet).
    pub health: Option<String>,
}

/// Who holds the owner locks beside the database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Daemons {
    pub live: Vec<LiveDaemon>,
    /// Lock files left by daemons that died (their claims are taken over at the
    /// next daemon's start, or expire).
    pub dead: usize,
    /// Lock files whose liveness cannot be told (e.g. unreadable for this user), with why.
    pub undecided: Vec<String>,
}

/// Failed polls of active issuances, by error text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ErrorCount {
    pub error: String,
    /// Active issuances whose last poll failed this way.
    pub issuances: i64,
    /// The most recent such poll.
    pub last_at: String,
}

/// A charge request whose outcome is unknown: a charge may exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UnknownCharge {
    pub id: i64,
    pub amount: i64,
    pub requested_at: String,
    /// Why it is unknown (`TIMEOUT`, `SERVER_ERROR`, `PERFORMER_DIED`, ...).
    pub error_code: Option<String>,
}

/// The charge requests in state `unknown`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnknownCharges {
    pub total: i64,
    /// The newest ten.
    pub newest: Vec<UnknownCharge>,
}

/// The facts `status` shows, all read in one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusFacts {
    pub daemons: Daemons,
    /// Active issuances by last seen status (`None`: not answered yet).
    pub active_by_status: Vec<(Option<String>, i64)>,
    /// The most recent successful lookup: the newest `last_seen_at` of an active
    /// issuance or the newest transition (a settled issuance's last answer).
    pub last_success: Option<String>,
    /// Active issuances whose last poll, since the given instant, failed.
    pub errors: Vec<ErrorCount>,
    /// Charge requests whose outcome is unknown.
    pub unknown_charges: UnknownCharges,
}

impl Store {
    /// Reads everything `status` shows; `errors_since` bounds the recent errors.
    pub async fn status_facts(
        &self,
        errors_since: DateTime<Utc>,
    ) -> Result<StatusFacts, StoreError> {
        engine!(self, db => db.status_facts(errors_since).await)
    }

    /// The charge requests whose outcome is unknown: how many, the newest ten.
    pub async fn unknown_charges(&self) -> Result<UnknownCharges, StoreError> {
        engine!(self, db => db.unknown_charges().await)
    }

    /// Which daemons hold their owner lock on this database now.
    pub async fn daemons(&self) -> Daemons {
        engine!(self, db => db.daemons().await)
    }
}
