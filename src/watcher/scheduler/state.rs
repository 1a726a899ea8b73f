//! The loop's state between turns (what it holds and remembers) and the
//! small futures its `select!` waits on. The loop itself is in `scheduler.rs`;
//! what it decides, in `schedule.rs`.

use std::collections::{HashSet, VecDeque};

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::error;

use crate::store::{Claimed, Lease, PollRecord, Recorded, StoreError};
use crate::watcher::schedule::{Held, Schedule};

/// A claimed issuance waiting for a free slot, with the lease it holds.
#[derive(Debug)]
pub(super) struct Leased {
    pub(super) claimed: Claimed,
    pub(super) until: DateTime<Utc>,
}

/// A database write in progress.
pub(super) type Writing = std::pin::Pin<Box<dyn std::future::Future<Output = Written> + Send>>;

/// What one database write did.
#[derive(Debug)]
pub(super) struct Written {
    /// Poll results it was given.
    pub(super) count: usize,
    pub(super) recorded: Result<Recorded, StoreError>,
    /// The results, given back when none of them could be written, to be
    /// written again (see [`Watcher::keep_for_retry`]).
    pub(super) unwritten: Vec<PollRecord>,
    /// The claim it was asked to make, and what came of it.
    pub(super) claim: Claim,
}

/// What a write's claim came to.
#[derive(Debug)]
pub(super) enum Claim {
    /// The write only recorded results.
    NotAsked,
    /// The database refused the claim (the results may still have been written).
    Failed,
    /// Due issuances claimed under `lease` (at most `lease.limit`).
    Claimed { lease: Lease, claimed: Vec<Claimed> },
}

/// What the loop holds between turns, and what it remembers.
pub(super) struct LoopState {
    pub(super) schedule: Schedule,
    /// Claimed issuances waiting for a free slot.
    pub(super) ready: VecDeque<Leased>,
    /// Polls running.
    pub(super) inflight: JoinSet<PollRecord>,
    /// Finished polls whose results wait for the next write.
    pub(super) pending: Vec<PollRecord>,
    /// The write running, if any (at most one).
    pub(super) writing: Option<Writing>,
    /// Lock files whose owner's liveness could not be told, already warned of.
    pub(super) undecided: HashSet<String>,
    /// Whether the growing WAL was warned of (and not yet shrunk back).
    pub(super) wal_warned: bool,
    /// False once polls were abandoned at shutdown.
    pub(super) clean: bool,
    /// Rows other programs inserted (a wake-up) while a write ran: its claim
    /// may have read before they committed, so claim again after it.
    pub(super) woken_during_write: bool,
}

impl LoopState {
    pub(super) fn new(concurrency: usize) -> Self {
        Self {
            schedule: Schedule::new(concurrency, Instant::now()),
            ready: VecDeque::new(),
            inflight: JoinSet::new(),
            pending: Vec::new(),
            writing: None,
            undecided: HashSet::new(),
            wal_warned: false,
            clean: true,
            woken_during_write: false,
        }
    }

    /// What it holds, counted for [`Schedule::next`].
    pub(super) fn held(&self, paused_until: Option<Instant>) -> Held {
        Held {
            ready: self.ready.len(),
            inflight: self.inflight.len(),
            pending: self.pending.len(),
            writing: self.writing.is_some(),
            paused_until,
        }
    }
}

pub(super) fn joined(result: Result<PollRecord, tokio::task::JoinError>) -> Option<PollRecord> {
    match result {
        Ok(record) => Some(record),
        Err(e) => {
            // A poll task died: its lease expires and the issuance is polled again.
            error!(error = %e, "a poll task failed");
            None
        }
    }
}

/// The running write's outcome; never ready if none runs. Dropping this
/// future (another branch of the loop's `select!` won) leaves the write running.
pub(super) async fn join_write(writing: &mut Option<Writing>) -> Written {
    match writing {
        Some(write) => {
            let written = write.as_mut().await;
            *writing = None;
            written
        }
        None => std::future::pending().await,
    }
}

pub(super) async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
