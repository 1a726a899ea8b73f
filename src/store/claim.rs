//! Claiming due issuances as leases, and the scheduler's other reads.
//!
//! A claim is a fenced lease: the row records the claiming daemon's id
//! (`lease_owner`) and a new `lease_fence`, and every statement that writes a
//! result checks both (see `record/`). A lease ends when its result is written,
//! when it is handed back, when its expiry (`next_poll_at`) passes and another
//! claim takes the row, or when another daemon finds its owner dead
//! ([`Store::take_over`], `owners.rs`).

use super::{Store, StoreError, engine};
use chrono::{DateTime, Utc};

/// A due issuance, leased to this process until the lease expiry it was given.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The id's raw bytes: another program may have stored text that is not UTF-8.
    pub raw_id: Vec<u8>,
    /// Status as stored when claimed (the "from" of any transition this poll finds).
    pub status: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub attempts: u32,
    pub not_found_since: Option<DateTime<Utc>>,
    /// The lease's fence: a result is written only while the row still has it
    /// (and this daemon's id as its owner).
    pub fence: i64,
}

/// What to claim: up to `limit` issuances due at `now`, leased until `until`.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub now: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub limit: usize,
}

impl Lease {
    /// How much of the claim is kept for rows never seen yet, when that many
    /// are due: a quarter (at least one), so that a backlog of inserted ids
    /// neither starves nor is starved by the rows being watched.
    pub fn reserved_for_new(&self) -> usize {
        (self.limit / 4).max(1).min(self.limit)
    }
}

impl Store {
    /// Leases up to `limit` due issuances in one statement: their `next_poll_at`
    /// moves to `lease_until`, so no other claimer (or a restarted daemon) polls
    /// them until this process records a result or the lease runs out. Uses the
    /// partial index on due active rows; never scans settled ones.
    pub async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        engine!(self, db => db.claim_due(now, lease_until, limit).await)
    }

    /// Ends leases early: each issuance still holding the lease it was given
    /// (this daemon's, with the claim's fence and expiry) becomes due at `now`.
    /// Ids that are not UTF-8 are left to expire (they are rejected at their
    /// next claim anyway). Returns how many were released.
    pub async fn release(
        &self,
        leases: &[(Claimed, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        engine!(self, db => db.release(leases, now).await)
    }

    /// Ends the leases of the dead daemon `owner`: its claims become due at
    /// `now` (or stay due earlier). Reads only leased rows. Returns how many.
    pub async fn take_over_claims_of(
        &self,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        engine!(self, db => db.take_over_claims_of(owner, now).await)
    }

    /// When the next active issuance falls due (index-only: the due indexes' minima).
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        engine!(self, db => db.next_due().await)
    }

    /// When the last active issuance falls due (index-only: the due indexes' maxima).
    pub async fn last_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        engine!(self, db => db.last_due().await)
    }

    /// Pulls active issuances due later than `latest` back to a random time in
    /// `now..now + spread`. No legitimate wait ends that far away, so such rows
    /// were scheduled before the wall clock jumped backwards; left alone they
    /// would not be polled until the clock caught up again. Returns how many.
    pub async fn pull_back_beyond(
        &self,
        now: DateTime<Utc>,
        latest: DateTime<Utc>,
        spread: std::time::Duration,
    ) -> Result<u64, StoreError> {
        engine!(self, db => db.pull_back_beyond(now, latest, spread).await)
    }
}
