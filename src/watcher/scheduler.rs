//! The watcher's loop: claim due issuances (as leases), poll them concurrently
//! within the global rate, and record results in short batched transactions.
//!
//! One task owns the loop and is the process's only database writer; polls run
//! as child tasks that never touch the database. Decisions are delegated to
//! [`crate::watcher::policy`] and [`crate::watcher::flags`] for each poll, and
//! to [`Schedule`] for the loop itself (when to claim, write, housekeep,
//! checkpoint and stop); this module only moves data between them, the API
//! and the store.
//!
//! The loop and its I/O steps read as one story here; the state it carries
//! between turns is `scheduler/state.rs`, and what it decides lives in
//! `schedule.rs`, tested there.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

mod state;

use state::{Claim, Leased, LoopState, Writing, Written, join_write, joined, sleep_until_opt};

use super::poll::{Context, poll_one};
use super::schedule::{ClaimOutcome, Schedule, Stop, concurrency_share};
use crate::api::ApiClient;
use crate::domain::clock::Clock;
use crate::ops::progress::Progress;
use crate::ops::stale::Change;
use crate::settings::Settings;
use crate::store::{Claimed, Lease, PollRecord, Recorded, Store, StoreError, Topic, WakeUp};
use crate::watcher::pacing::Pacer;

/// How long the last writes at shutdown may take, after the drain: another
/// program holding the write lock must not keep the daemon from stopping
/// (under systemd, `TimeoutStopSec` would kill it). What they could not write
/// is polled again (by the next daemon, at once: see `store::owners`).
pub const SHUTDOWN_FINAL_WRITE: Duration = Duration::from_secs(2);

/// The watcher: a store, an API client and the policy's settings.
#[derive(Debug, Clone)]
pub struct Watcher {
    store: Store,
    ctx: Arc<Context>,
}

impl Watcher {
    pub fn new(
        settings: Settings,
        store: Store,
        clock: Clock,
    ) -> Result<Self, crate::settings::SettingsError> {
        let client = ApiClient::from_settings(&settings)?;
        let pacer = Pacer::new(
            settings.api.requests_per_second,
            settings.poll.auth_pause,
            settings.poll.auth_pause_max,
        )
        .shared(store.clone());
        let ctx = Context {
            client,
            pacer,
            settings,
            clock,
            progress: Arc::default(),
        };
        Ok(Self {
            store,
            ctx: Arc::new(ctx),
        })
    }

    pub fn progress(&self) -> Arc<Progress> {
        self.ctx.progress.clone()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What the polls share (client, pacer, settings), for the requests loop.
    pub(super) fn context(&self) -> Arc<Context> {
        self.ctx.clone()
    }

    /// Runs until `shutdown` is cancelled, then lets in-flight polls finish for
    /// a moment, records what finished and returns.
    ///
    /// Polling and writing overlap. At most one database write runs at a time,
    /// beside the loop: the results of finished polls plus, in the same
    /// transaction, a claim of due issuances. Meanwhile the loop keeps starting
    /// polls from issuances claimed ahead, and results that finish during a
    /// write wait for the next one, so the busier the watcher, the larger (and
    /// the cheaper per poll) each commit.
    ///
    /// Each turn counts what the loop holds, lets `Schedule` decide what to
    /// do, does it, and waits for whatever happens first.
    ///
    /// Start-up does no work proportional to the number of rows: it takes its
    /// owner lock, ends the leases of dead daemons (indexed by owner) and
    /// claims. Issuances that fell due while no daemon ran are claimed in due
    /// order and polled as the global rate allows; nothing is respread.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), StoreError> {
        let mut ownership = self.store.hold_ownership().await;
        self.ctx.progress.ownership_taken();
        let mut wake_up = self.store.wake_up(Topic::Issuances);
        let mut state = LoopState::new(self.ctx.settings.api.concurrency);
        self.take_over_dead_owners(&mut state.undecided).await;
        loop {
            self.ctx.progress.loop_turned();
            let held = state.held(self.ctx.pacer.paused_until());
            let step = state.schedule.next(&held, Instant::now());
            if step.housekeep {
                // Fatal: writing on would only fill a detached file.
                self.store.check_file()?;
                self.store.keep_ownership(&mut ownership).await;
                self.pull_back_after_clock_jump().await;
                self.take_over_dead_owners(&mut state.undecided).await;
                self.share_concurrency(&mut state.schedule).await;
                self.warn_of_a_growing_wal(&mut state.wal_warned);
            }
            for next in state.ready.drain(..step.start_polls) {
                state
                    .inflight
                    .spawn(poll_one(self.ctx.clone(), next.claimed));
            }
            if let Some(write) = step.write {
                let records = std::mem::take(&mut state.pending);
                state.writing = Some(self.start_write(records, write.claim.map(|n| self.lease(n))));
            }
            if step.checkpoint
                && let Err(e) = self.store.checkpoint().await
            {
                debug!(error = %e, "WAL checkpoint skipped");
            }
            match step.stop {
                Some(Stop::Done) => break,
                Some(Stop::Abandon) => {
                    self.abandon(&mut state).await;
                    break;
                }
                None => {}
            }
            self.wait(&mut state, step.wake, &mut wake_up, &shutdown)
                .await;
        }
        let released = tokio::time::timeout(SHUTDOWN_FINAL_WRITE, self.release(state.ready)).await;
        if state.clean && matches!(released, Ok(true)) {
            ownership.retire().await;
        } else {
            // Left for the next daemon, which ends whatever leases remain at once.
            drop(ownership);
        }
        Ok(())
    }

    /// Waits for the first of: shutdown, polls finishing, the write finishing,
    /// the schedule's `wake`, a wake-up (rows inserted by another program, on
    /// PostgreSQL); and takes in what it brought.
    async fn wait(
        &self,
        state: &mut LoopState,
        wake: Option<Instant>,
        wake_up: &mut WakeUp,
        shutdown: &CancellationToken,
    ) {
        tokio::select! {
            _ = shutdown.cancelled(), if !state.schedule.draining() => {
                info!(in_flight = state.inflight.len(), "shutting down: no new polls");
                state.schedule.shut_down(Instant::now());
            }
            Some(first) = state.inflight.join_next(), if !state.inflight.is_empty() => {
                state.pending.extend(joined(first));
                while let Some(more) = state.inflight.try_join_next() {
                    state.pending.extend(joined(more));
                }
            }
            written = join_write(&mut state.writing), if state.writing.is_some() => {
                let now = Instant::now();
                let (outcome, unwritten) = self.finish_write(written, &mut state.ready).await;
                if let Some(outcome) = outcome {
                    state.schedule.claimed(now, outcome);
                }
                if std::mem::take(&mut state.woken_during_write) {
                    state.schedule.woken(now);
                }
                if !unwritten.is_empty() {
                    state.schedule.write_failed(now);
                    let kept = self.keep_for_retry(unwritten);
                    // Before the results that finished meanwhile: oldest first.
                    state.pending.splice(0..0, kept);
                }
            }
            () = wake_up.changed(), if !state.schedule.draining() => {
                state.schedule.woken(Instant::now());
                state.woken_during_write = state.writing.is_some();
            }
            _ = sleep_until_opt(wake) => {}
        }
    }

    /// The drain deadline passed: abandons the polls still in flight, finishes
    /// the running write and records what finished, within [`SHUTDOWN_FINAL_WRITE`].
    async fn abandon(&self, state: &mut LoopState) {
        warn!(
            abandoned = state.inflight.len(),
            "abandoning polls still in flight at shutdown (the next daemon polls them again)"
        );
        state.inflight.abort_all();
        state.clean = false;
        let last = async {
            if state.writing.is_some() {
                let written = join_write(&mut state.writing).await;
                let unwritten = self.finish_write(written, &mut state.ready).await.1;
                state.pending.extend(unwritten);
            }
            self.record_or_log(&state.pending).await;
        };
        if tokio::time::timeout(SHUTDOWN_FINAL_WRITE, last)
            .await
            .is_err()
        {
            warn!(timeout = ?SHUTDOWN_FINAL_WRITE, "the last results could not be written in time (is another program holding the database's write lock?); they will be polled again");
        }
    }

    /// Ends the leases of daemons found dead (see `store::owners`), and says
    /// once per lock file when a daemon's liveness cannot be decided.
    async fn take_over_dead_owners(&self, undecided: &mut std::collections::HashSet<String>) {
        match self.store.take_over_dead_owners(self.ctx.clock.now()).await {
            Ok(found) => {
                if found.owners > 0 {
                    info!(
                        daemons = found.owners,
                        issuances = found.issuances,
                        "took over the claims of a daemon that died: they are due now"
                    );
                }
                for what in found.undecided {
                    if undecided.insert(what.clone()) {
                        warn!(lock = %what, "cannot tell whether the daemon owning this lock file is alive: its claims wait out poll.lease");
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot take over the claims of dead daemons; they wait out poll.lease")
            }
        }
    }

    /// Takes this daemon's share of `api.concurrency`, the account's limit of
    /// requests in flight, by the daemons alive on the database now: a daemon
    /// that joins or dies changes every other's share at its next
    /// housekeeping (within a second). When liveness cannot be read (the
    /// database unreachable), the share stays as it was.
    async fn share_concurrency(&self, schedule: &mut Schedule) {
        let live = self.store.daemons().await.live.len();
        if live == 0 {
            return;
        }
        let total = self.ctx.settings.api.concurrency;
        let share = concurrency_share(total, live);
        if schedule.share_slots(share) {
            info!(
                slots = share,
                of = total,
                daemons = live,
                "requests in flight: this daemon's share of api.concurrency"
            );
        }
    }

    /// Warns once when the WAL has grown past `database.wal_warn_bytes`, and
    /// again only after it has shrunk back below half of it.
    fn warn_of_a_growing_wal(&self, warned: &mut bool) {
        let threshold = self.ctx.settings.database.wal_warn_bytes;
        let Some(bytes) = self.store.wal_bytes() else {
            return;
        };
        match super::wal::check(*warned, bytes, threshold) {
            super::wal::WalCheck::Warn => {
                *warned = true;
                warn!(
                    wal_bytes = bytes,
                    threshold,
                    "the database's write-ahead log has grown past database.wal_warn_bytes: most likely another program holds a read transaction (an open snapshot) for a long time, so SQLite cannot fold the log back; end long reads, or read in short transactions"
                );
            }
            super::wal::WalCheck::Rearm => *warned = false,
            super::wal::WalCheck::Quiet => {}
        }
    }

    /// Results whose write failed (another program held the lock past the
    /// busy timeout, a full disk, ...) are written again with the next write,
    /// under the fences they were polled with, instead of leaving their
    /// issuances to wait out the lease. Those older than `poll.lease` are
    /// dropped: by then the lease would have ended anyway and they are polled again.
    fn keep_for_retry(&self, records: Vec<PollRecord>) -> Vec<PollRecord> {
        let lease = self.lease_length();
        let now = self.ctx.clock.now();
        let (kept, dropped): (Vec<_>, Vec<_>) = records
            .into_iter()
            .partition(|r| now.signed_duration_since(r.now) < lease);
        if !dropped.is_empty() {
            warn!(
                results = dropped.len(),
                "dropping results that could not be written for longer than poll.lease; they will be polled again"
            );
        }
        kept
    }

    /// The write of `records`, with a claim if `lease` is given, as a future
    /// the loop polls alongside everything else. Not a spawned task: under load
    /// the runtime's queues are full of polls, and each of a write's round
    /// trips to SQLite would wait its turn behind them.
    fn start_write(&self, records: Vec<PollRecord>, lease: Option<Lease>) -> Writing {
        let store = self.store.clone();
        Box::pin(async move {
            let count = records.len();
            let (recorded, claim) = match lease {
                Some(lease) => match store.record_and_claim(&records, lease).await {
                    Ok((recorded, Some(claimed))) => {
                        (Ok(recorded), Claim::Claimed { lease, claimed })
                    }
                    // Recorded alone after the claim failed.
                    Ok((recorded, None)) => (Ok(recorded), Claim::Failed),
                    Err(e) => (Err(e), Claim::Failed),
                },
                // Only started without a claim when there are results to write.
                None => (store.record(&records).await, Claim::NotAsked),
            };
            let unwritten = if recorded.is_err() {
                records
            } else {
                Vec::new()
            };
            Written {
                count,
                recorded,
                unwritten,
                claim,
            }
        })
    }

    /// Reports a finished write and queues what it claimed. Returns what the
    /// claim found, if the write claimed, which says when to claim again, and
    /// the results it could not write.
    async fn finish_write(
        &self,
        written: Written,
        ready: &mut VecDeque<Leased>,
    ) -> (Option<ClaimOutcome>, Vec<PollRecord>) {
        match &written.recorded {
            // Only a claim was asked for, and it failed.
            Err(e) if written.count == 0 => {
                error!(error = %e, "cannot claim due issuances; retrying")
            }
            Err(e) => {
                error!(error = %e, records = written.count, "could not record poll results; writing them again shortly")
            }
            Ok(recorded) => self.report(written.count, recorded),
        }
        self.database_answered(written.recorded.as_ref().err());
        let outcome = self.queue_claimed(written.claim, ready).await;
        (outcome, written.unwritten)
    }

    /// Queues what a write claimed; what the claim found, if it claimed.
    async fn queue_claimed(
        &self,
        claim: Claim,
        ready: &mut VecDeque<Leased>,
    ) -> Option<ClaimOutcome> {
        let (lease, claimed) = match claim {
            Claim::NotAsked => return None,
            Claim::Failed => return Some(ClaimOutcome::StoreFailed),
            Claim::Claimed { lease, claimed } => (lease, claimed),
        };
        let full = claimed.len() == lease.limit;
        ready.extend(claimed.into_iter().map(|claimed| Leased {
            claimed,
            until: lease.until,
        }));
        if full {
            return Some(ClaimOutcome::Full);
        }
        let recheck = self
            .ctx
            .clock
            .real_duration(self.ctx.settings.poll.idle_recheck);
        Some(match self.store.next_due().await {
            Ok(at) => ClaimOutcome::Short {
                next_due_in: at.map(|at| self.ctx.clock.real_until(at)),
                recheck,
            },
            Err(e) => {
                error!(error = %e, "cannot read the next due time");
                self.database_answered(Some(&e));
                ClaimOutcome::StoreFailed
            }
        })
    }

    /// Notes for `/healthz` whether the database took the last write (or
    /// claim): it keeps failing while the database is unreachable (a
    /// PostgreSQL restart), and the loop keeps retrying until it answers.
    fn database_answered(&self, failed: Option<&StoreError>) {
        self.ctx.progress.set_database_problem(failed.map(|e| {
            format!(
                "the database {} fails the watcher's writes: {e}",
                self.store.shown()
            )
        }));
    }

    /// Hands back issuances claimed but never polled, so that they are due at
    /// once for the next daemon instead of after their lease. Whether it worked.
    async fn release(&self, ready: VecDeque<Leased>) -> bool {
        if ready.is_empty() {
            return true;
        }
        let leases: Vec<(Claimed, DateTime<Utc>)> =
            ready.into_iter().map(|l| (l.claimed, l.until)).collect();
        match self.store.release(&leases, self.ctx.clock.now()).await {
            Ok(released) => {
                debug!(released, "claimed issuances handed back");
                true
            }
            Err(e) => {
                warn!(error = %e, "could not hand back claimed issuances; the next daemon takes them over");
                false
            }
        }
    }

    /// After the wall clock jumps backwards, rows scheduled before the jump lie
    /// further ahead than any wait the policy can choose; they are pulled back
    /// so that no issuance goes unpolled until the clock catches up.
    async fn pull_back_after_clock_jump(&self) {
        let poll = &self.ctx.settings.poll;
        let clock = &self.ctx.clock;
        let longest = [
            poll.max_interval,
            poll.backoff_max,
            poll.lease,
            poll.startup_spread,
            clock.simulated_duration(crate::domain::time::API_RETRY_AFTER_CAP),
            clock.simulated_duration(poll.auth_pause_max),
        ]
        .into_iter()
        .max()
        .unwrap_or_default();
        let now = clock.now();
        // A minute of slack for the time between deciding and recording.
        let latest = crate::domain::time::after(now, longest + Duration::from_secs(60));
        match self.store.last_due().await {
            Ok(Some(last)) if last > latest => {}
            Ok(_) => return,
            Err(e) => {
                error!(error = %e, "cannot read the last due time");
                return;
            }
        }
        match self
            .store
            .pull_back_beyond(now, latest, poll.startup_spread)
            .await
        {
            Ok(pulled) => {
                warn!(issuances = pulled, latest = %latest, "issuances were scheduled further ahead than any legitimate wait (the wall clock went backwards?): polling them again now")
            }
            Err(e) => error!(error = %e, "cannot reschedule issuances after a clock jump"),
        }
    }

    /// Up to `limit` issuances due now, leased for `poll.lease`.
    fn lease(&self, limit: usize) -> Lease {
        let now = self.ctx.clock.now();
        let lease = self.lease_length();
        Lease {
            now,
            until: now + lease,
            limit,
        }
    }

    /// `poll.lease` on the business clock. A lease covers a poll in flight,
    /// which takes real time (`api.timeout` is real time too): on a clock that
    /// runs N times faster (`--follow-simulator-clock`, the demo) it spans N
    /// times as much business time, or every answer would come back after its
    /// lease had ended and be dropped.
    fn lease_length(&self) -> chrono::Duration {
        let real = self.ctx.settings.poll.lease;
        crate::domain::time::span(self.ctx.clock.simulated_duration(real))
    }

    /// Records a batch at shutdown, logging rather than returning a failure
    /// (the issuances are then polled again by the next daemon).
    async fn record_or_log(&self, records: &[PollRecord]) {
        if records.is_empty() {
            return;
        }
        match self.store.record(records).await {
            Ok(recorded) => self.report(records.len(), &recorded),
            Err(e) => {
                error!(error = %e, records = records.len(), "could not record poll results; they will be polled again")
            }
        }
    }

    /// Logs and counts what a batch of `results` poll results changed.
    fn report(&self, results: usize, recorded: &Recorded) {
        self.ctx
            .progress
            .transitions_recorded(recorded.transitions.len() as u64);
        if recorded.stale > 0 {
            debug!(
                results = recorded.stale,
                "dropped results polled under leases that had ended"
            );
        }
        match self.ctx.progress.results_written(
            std::time::Instant::now(),
            results as u64,
            recorded.stale,
        ) {
            Some(Change::Problem(problem)) => warn!("{problem}"),
            Some(Change::Cleared) => info!("poll results are no longer dropped as stale"),
            None => {}
        }
        crate::ops::metrics::recorded(recorded);
        if !recorded.transitions.is_empty() || !recorded.flags_raised.is_empty() {
            self.ctx.progress.events_committed();
        }
        for t in &recorded.transitions {
            let from = t.from.as_deref().unwrap_or("-");
            match &t.anomaly {
                None => info!(issuance = %t.issuance_id, from, to = %t.to, "transition"),
                Some(anomaly) => {
                    warn!(issuance = %t.issuance_id, from, to = %t.to, anomaly, "transition (anomaly)")
                }
            }
        }
        for f in &recorded.flags_raised {
            info!(issuance = %f.issuance_id, flag = f.kind.as_str(), lead = %crate::domain::flag::format_lead(f.lead), "flag raised");
        }
    }
}
