//! Recording poll results: status, transition, flags and next poll time of each
//! issuance change together, in one short `BEGIN IMMEDIATE` transaction per batch.
//!
//! Only under the lease: every statement that writes a result also checks
//! that the row is still leased to this daemon under the fence the poll was
//! claimed with (see `store/claim.rs`). A stale result (the lease ended: it
//! expired and someone claimed the row again, it was taken over, or another
//! program edited `status` or `watch`) writes nothing, raises no flag and is
//! counted in [`Recorded::stale`].
//!
//! Exactly-once: the transition row is written in the same transaction as the
//! status it moves to, and only when the stored status differs from the
//! observed one. A crash before commit records nothing (the lease expires and
//! the issuance is polled again); after commit, the stored status already equals
//! the observation, so the same change can never be written twice.
//!
//! How each engine keeps that true (`sqlite/record/mod.rs`,
//! `postgres/record.rs`, the same shape on both): one record after another in
//! one transaction per batch; each result is written by one fenced `UPDATE`
//! that matches only while the lease holds and, for an observation, the
//! stored status is still the one it is compared against; the transition
//! ([`decide::transition`], shared) is derived from exactly that status and
//! written only when the status was written and changed.

pub(super) mod decide;
mod facade;

use chrono::{DateTime, Utc};

use super::Claimed;
use crate::domain::status::Status;
use crate::domain::{Decision, Flag, FlagKind, Observation};

/// The result of one poll, ready to be written.
#[derive(Debug, Clone)]
pub struct PollRecord {
    pub claimed: Claimed,
    pub now: DateTime<Utc>,
    pub kind: RecordKind,
}

#[derive(Debug, Clone)]
pub enum RecordKind {
    Observed {
        observation: Observation,
        decision: Decision,
        /// Flags that apply now (the watcher's flag rules decided them).
        flags: Vec<Flag>,
    },
    Failed {
        error: String,
        attempts: u32,
        not_found_since: Option<DateTime<Utc>>,
        decision: Decision,
        /// Flags that apply from what was known before this poll.
        flags: Vec<Flag>,
    },
    /// The id can never be looked up; the watch ends with this reason.
    Rejected { reason: String },
}

/// What a batch changed, for logs and metrics.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    pub transitions: Vec<TransitionRecorded>,
    pub flags_raised: Vec<FlagRaised>,
    pub flags_cleared: u64,
    /// Results dropped because the lease they were polled under had ended.
    pub stale: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRecorded {
    pub issuance_id: String,
    pub from: Option<String>,
    pub to: Status,
    pub anomaly: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagRaised {
    pub issuance_id: String,
    pub kind: FlagKind,
    /// The rung (DUE_SOON); zero for OVERDUE.
    pub lead: std::time::Duration,
}

impl Recorded {
    pub(crate) fn merge(&mut self, other: Recorded) {
        self.transitions.extend(other.transitions);
        self.flags_raised.extend(other.flags_raised);
        self.flags_cleared += other.flags_cleared;
        self.stale += other.stale;
    }
}
