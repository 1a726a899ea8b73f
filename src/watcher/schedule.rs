//! The scheduler loop's state and its pure "what next".
//!
//! The loop holds issuances claimed ahead, polls in flight, results waiting
//! to be written and at most one running write. Each turn it counts them into
//! a [`Held`], asks [`Schedule::next`] what to do, does it, and waits for the
//! first of: a poll finishing, the write finishing, shutdown, or [`Step::wake`].
//! What happened meanwhile comes back through [`Schedule::claimed`] and
//! [`Schedule::shut_down`]. Nothing here does I/O or reads a clock: the time
//! is an argument, so the decisions are tested without a database or a server.
//!
//! Invariants of every [`Step`]:
//! - at most one write runs; it takes every pending result and, in the same
//!   commit, the claim, if one is due; after a failed write, its results are
//!   pending again and nothing is written for [`STORE_RETRY`];
//! - up to two slot-fulls are claimed ahead (one polling, one waiting in
//!   `ready`, so that a freed slot never waits for the database), in batches of
//!   at least a quarter of the slots, since every claim is a commit;
//! - nothing is claimed during a pause, and nothing is claimed or started
//!   while draining;
//! - housekeeping never runs while a write is in flight;
//! - draining ends when nothing is in flight, pending or being written, or
//!   when its deadline passes;
//! - [`Step::wake`], when given, lies in the future, so the loop never spins.

use std::time::Duration;

use tokio::time::Instant;

/// How long in-flight polls may finish after shutdown is requested; the rest
/// are abandoned (their leases expire, nothing is lost).
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(3);
/// Pause before claiming again after the database refused a claim.
pub const STORE_RETRY: Duration = Duration::from_secs(1);
/// How often (real time) the loop checks that the database file is still the
/// one it opened, that no issuance is scheduled beyond any legitimate wait,
/// and whether another daemon died: a dead daemon's claims wait at most this
/// long (plus a write in flight) for a live one to take them over, which is
/// what several hosts on one database promise ("a second or two"). Each check
/// is one indexed read or a `stat`, so once a second costs nothing measurable.
pub const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// How often an idle loop folds the WAL back into the database, so it cannot grow without bound.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);

/// This daemon's share of the account's `api.concurrency` when `live`
/// daemons (itself included) run on the database: an equal share, rounded
/// down so that together they never exceed `total`, and at least one slot
/// (more daemons than slots may then exceed it, one request each). `live` of
/// 0 (liveness unknown) counts as alone.
pub fn concurrency_share(total: usize, live: usize) -> usize {
    (total / live.max(1)).max(1)
}

/// What the loop holds at the start of a turn, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Held {
    /// Claimed issuances waiting for a free slot.
    pub ready: usize,
    /// Polls running.
    pub inflight: usize,
    /// Finished polls whose results are not yet being written.
    pub pending: usize,
    /// Whether a write runs.
    pub writing: bool,
    /// Until when all polling is paused (`Retry-After`, refused credentials).
    pub paused_until: Option<Instant>,
}

/// What to do this turn, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Step {
    /// Check the database file and repair a backwards clock jump.
    pub housekeep: bool,
    /// Move this many claimed issuances from `ready` into polls.
    pub start_polls: usize,
    /// Start a write.
    pub write: Option<Write>,
    /// Fold the WAL back into the database.
    pub checkpoint: bool,
    /// Leave the loop.
    pub stop: Option<Stop>,
    /// Turn again at this instant even if nothing else happens.
    pub wake: Option<Instant>,
}

/// A write to start: every pending result, and a claim if `claim` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    /// How many due issuances to claim in the same commit.
    pub claim: Option<usize>,
}

/// How the loop ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Draining and everything finished and written.
    Done,
    /// The drain deadline passed: abandon the polls still running, finish the
    /// running write and record what finished.
    Abandon,
}

/// What a write's claim found, which says when to claim again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// As many as asked: more are probably due, claim again at once.
    Full,
    /// Fewer than asked: claim again when the next issuance falls due, but no
    /// later than `recheck`, so rows inserted by other programs are seen promptly.
    Short {
        next_due_in: Option<Duration>,
        recheck: Duration,
    },
    /// The database refused the claim or the look-up of the next due time.
    StoreFailed,
}

/// The loop's timers and limits.
#[derive(Debug, Clone)]
pub struct Schedule {
    concurrency: usize,
    /// Claimed ahead, polling or waiting: two slot-fulls.
    claim_target: usize,
    /// The smallest claim worth a commit: a quarter of the slots.
    min_batch: usize,
    claim_at: Instant,
    /// No write of results before this (set after a failed write).
    write_at: Instant,
    drain_deadline: Option<Instant>,
    housekeeping_at: Instant,
    last_checkpoint: Instant,
}

impl Schedule {
    /// A loop with `concurrency` poll slots starting at `now`: it claims and
    /// housekeeps at once, and checkpoints after [`CHECKPOINT_EVERY`].
    pub fn new(concurrency: usize, now: Instant) -> Self {
        Self {
            concurrency,
            claim_target: 2 * concurrency,
            min_batch: (concurrency / 4).max(1),
            claim_at: now,
            write_at: now,
            drain_deadline: None,
            housekeeping_at: now,
            last_checkpoint: now,
        }
    }

    /// Sets the poll slots to `slots` (this daemon's share of the account's
    /// `api.concurrency`, see [`concurrency_share`]), with the claim target
    /// and smallest batch that follow. Polls already in flight finish; no
    /// new one starts while as many are in flight. Whether it changed.
    pub fn share_slots(&mut self, slots: usize) -> bool {
        let slots = slots.max(1);
        if slots == self.concurrency {
            return false;
        }
        self.concurrency = slots;
        self.claim_target = 2 * slots;
        self.min_batch = (slots / 4).max(1);
        true
    }

    /// Whether shutdown was requested.
    pub fn draining(&self) -> bool {
        self.drain_deadline.is_some()
    }

    /// Shutdown was requested at `now`: stop claiming and starting polls,
    /// give those in flight [`SHUTDOWN_DRAIN`] to finish.
    pub fn shut_down(&mut self, now: Instant) {
        self.drain_deadline.get_or_insert(now + SHUTDOWN_DRAIN);
    }

    /// A write that claimed finished at `now`: when to claim again.
    pub fn claimed(&mut self, now: Instant, outcome: ClaimOutcome) {
        self.claim_at = match outcome {
            ClaimOutcome::Full => now,
            ClaimOutcome::Short {
                next_due_in,
                recheck,
            } => now + next_due_in.map_or(recheck, |d| d.min(recheck)),
            ClaimOutcome::StoreFailed => now + STORE_RETRY,
        };
    }

    /// Rows were inserted by another program (a wake-up) at `now`: claim
    /// at once, though not before a failed write's retry.
    pub fn woken(&mut self, now: Instant) {
        self.claim_at = self.claim_at.min(now.max(self.write_at));
    }

    /// A write failed at `now` and its results are pending again: write
    /// them (and claim) again after [`STORE_RETRY`], not in a hot loop.
    pub fn write_failed(&mut self, now: Instant) {
        self.write_at = now + STORE_RETRY;
        self.claim_at = self.claim_at.max(self.write_at);
    }

    /// [`Schedule::decide`], and the housekeeping and checkpoint it hands out
    /// are taken as done at `now`.
    pub fn next(&mut self, held: &Held, now: Instant) -> Step {
        let step = self.decide(held, now);
        if step.housekeep {
            self.housekeeping_at = now + HOUSEKEEPING;
        }
        if step.checkpoint {
            self.last_checkpoint = now;
        }
        step
    }

    /// What to do at `now` holding `held`.
    pub fn decide(&self, held: &Held, now: Instant) -> Step {
        let draining = self.draining();
        let done = draining && held.inflight == 0 && held.pending == 0 && !held.writing;
        if !done && self.drain_deadline.is_some_and(|d| now >= d) {
            return Step {
                stop: Some(Stop::Abandon),
                ..Step::default()
            };
        }
        // Not while a write runs: the clock-jump repair needs the writer
        // connection, which that write holds until the loop polls it again.
        let may_housekeep = !draining && !held.writing;
        let housekeep = may_housekeep && now >= self.housekeeping_at;
        let start_polls = if draining {
            0
        } else {
            held.ready
                .min(self.concurrency.saturating_sub(held.inflight))
        };
        let ready = held.ready - start_polls;
        let inflight = held.inflight + start_polls;
        let idle = ready == 0 && inflight == 0;
        // An idle loop wants the whole target, which is never below the
        // minimum batch: small claims wait only while polls keep the slots busy.
        let wanted = self.claim_target.saturating_sub(ready + inflight);
        let want_claim = !draining && wanted >= self.min_batch;
        // A pause (which only ever lengthens) holds the claim back until it ends.
        let claim_at = held
            .paused_until
            .map_or(self.claim_at, |p| p.max(self.claim_at));
        let claim = want_claim && !held.writing && now >= claim_at;
        let write_results = held.pending > 0 && now >= self.write_at;
        let write = (!held.writing && (claim || write_results)).then_some(Write {
            claim: claim.then_some(wanted),
        });
        let writing = held.writing || write.is_some();
        let checkpoint = idle && !writing && now - self.last_checkpoint >= CHECKPOINT_EVERY;
        let mut wake = self.drain_deadline;
        if !writing && want_claim {
            wake = earliest(wake, claim_at);
        }
        if !writing && held.pending > 0 {
            wake = earliest(wake, self.write_at);
        }
        if may_housekeep && !writing {
            let at = if housekeep {
                now + HOUSEKEEPING
            } else {
                self.housekeeping_at
            };
            wake = earliest(wake, at);
        }
        Step {
            housekeep,
            start_polls,
            write,
            checkpoint,
            stop: done.then_some(Stop::Done),
            wake: wake.filter(|_| !done),
        }
    }
}

fn earliest(a: Option<Instant>, b: Instant) -> Option<Instant> {
    Some(a.map_or(b, |a| a.min(b)))
}
