//! A sink's loop: admit new events, keep up to the sink's concurrency of
//! attempts in flight (a `JoinSet`, refilled as each ends; never two of one
//! issuance: an issuance with an attempt under way gets no other), and
//! record each attempt when it ends, in a short transaction of its own, so a
//! slow or failing issuance holds back only its own later events.
//!
//! A `Retry-After` on any answer pauses the whole sink: no new attempt starts
//! before the time asked (those in flight may finish), then it resumes at
//! once. A sink whose endpoint fails (see `assess`: failed attempts in a row
//! with no 2xx) sends one delivery at a time, the due ones as they fall due
//! and a probe of the earliest pending one every [`probe_pause`]; the first
//! 2xx after that makes every pending delivery due at once. That state is
//! recorded (`sinks.failing_since`) and restored at start, so after a restart
//! the sink probes at once and its backlog follows the first 2xx.
//! Nothing here holds a transaction across an HTTP request.
//!
//! A worker runs only while its daemon holds the sink (`holding`): every
//! write carries the hold's fence, an attempt starts only while the hold is
//! known to be valid, and the worker stops as soon as another daemon holds
//! the sink.
//!
//! [`probe_pause`]: super::schedule::probe_pause
//!
//! The backlog gauges are not refreshed here: a worker sleeps through a long
//! `Retry-After` or while its sink is disabled, which is exactly when the
//! oldest undelivered age must keep growing (see `ops::tasks`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::assess::{Assessment, AttemptFacts, SinkState, assess};
use super::hold::Holding;
use super::schedule::{Answer, Verdict};
use super::sinks::{Sink, disabled_reason};
use crate::domain::timefmt::{from_db, to_db};
use crate::ops::progress::Progress;
use crate::store::{AttemptRow, DueDelivery, SinkHold, SinkVerdict, Store, StoreError, Topic};

/// Longest wait for new events (others' writes have no wake-up).
const RECHECK: Duration = Duration::from_millis(250);
/// How often a disabled sink's row is read again (an operator may clear it).
const DISABLED_RECHECK: Duration = Duration::from_secs(5);
/// Events admitted per transaction.
const ADMIT_BATCH: i64 = 5000;
/// How long attempts in flight may finish after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1000);

/// Why a worker stopped.
pub(super) enum Stopped {
    /// Shutdown: the sink is to be handed back.
    Cancelled(SinkHold),
    /// Another daemon holds the sink now.
    Lost,
}

pub(super) struct Worker {
    sink: Arc<Sink>,
    store: Store,
    progress: Arc<Progress>,
    token: CancellationToken,
    /// Probing or not, until when it pauses (see `assess`).
    state: SinkState,
    /// The attempts under way, at most the sink's concurrency (one while probing).
    in_flight: JoinSet<Ended>,
    /// The issuances of the attempts under way: none of them gets another.
    busy: HashSet<String>,
    /// This daemon's hold on the sink.
    holding: Holding,
}

/// How an attempt's task ended.
enum Ended {
    Attempted(Box<Attempted>),
    /// Not sent: the hold was no longer known to be valid when its turn
    /// came (the process was stopped in between). Its delivery stays open.
    NotSent {
        issuance_id: String,
    },
}

/// One attempt's result.
struct Attempted {
    delivery: DueDelivery,
    answer: Answer,
    took: Duration,
    /// The first KiB of the answer's body, sanitised.
    response: Option<String>,
    at: DateTime<Utc>,
}

impl Worker {
    pub(super) fn new(
        sink: &Arc<Sink>,
        store: &Store,
        progress: &Arc<Progress>,
        token: &CancellationToken,
        holding: Holding,
    ) -> Self {
        Self {
            sink: sink.clone(),
            store: store.clone(),
            progress: progress.clone(),
            token: token.clone(),
            state: SinkState::default(),
            in_flight: JoinSet::new(),
            busy: HashSet::new(),
            holding,
        }
    }

    pub(super) async fn run(mut self) -> Stopped {
        let name = self.sink.name.clone();
        let types: Vec<&'static str> = self.sink.types.iter().map(|t| t.as_str()).collect();
        self.restore().await;
        // Events other daemons (or programs) commit, on PostgreSQL.
        let mut wake_up = self.store.wake_up(Topic::Events);
        while !self.token.is_cancelled() && !self.holding.lost {
            // Each attempt that ended is recorded before anything else starts.
            while let Some(joined) = self.in_flight.try_join_next() {
                self.finished(joined).await;
            }
            self.holding.keep(&self.store).await;
            let renew_in = self
                .holding
                .renew_at()
                .saturating_duration_since(tokio::time::Instant::now());
            let wait = if self.holding.lost {
                Duration::ZERO
            } else if !self.holding.valid() {
                // Not renewed lately (the database is away): nothing starts.
                renew_in
            } else if self.disabled().await {
                DISABLED_RECHECK
            } else if let Err(e) = self.admit(&types).await {
                error!(sink = %name, error = %e, "cannot admit events for delivery; retrying");
                Duration::from_secs(1)
            } else {
                match self.start_due().await {
                    // A long pause (`Retry-After`) is slept through: commits
                    // do wake the loop, but nothing starts before its end.
                    Ok(wake) => wake.map_or(RECHECK, |at| {
                        (at - Utc::now()).to_std().unwrap_or_default().min(RECHECK)
                    }),
                    Err(e) => {
                        error!(sink = %name, error = %e, "cannot read due deliveries; retrying");
                        Duration::from_secs(1)
                    }
                }
            }
            .min(renew_in);
            if self.holding.lost {
                break;
            }
            let busy = !self.in_flight.is_empty();
            tokio::select! {
                () = self.token.cancelled() => {}
                Some(joined) = self.in_flight.join_next(), if busy => self.finished(joined).await,
                () = self.progress.next_commit() => {}
                () = wake_up.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        // Attempts under way finish and are offered to the store, as at
        // shutdown; once the sink is lost, its fence drops them (the new
        // holder sends them again, same webhook-id).
        self.drain().await;
        if self.holding.lost {
            debug!(sink = %name, "delivery worker stopped: the sink is held by another daemon");
            return Stopped::Lost;
        }
        debug!(sink = %name, "delivery worker stopped");
        Stopped::Cancelled(self.holding.hold)
    }

    /// A sink recorded as failing (`sinks.failing_since`, e.g. before a
    /// restart) starts probing at once, so that its first 2xx makes the
    /// backlog due rather than each delivery's own retry.
    async fn restore(&mut self) {
        match self.store.sink(&self.sink.name).await {
            Ok(Some(row)) if row.failing_since.is_some() => self.state = SinkState::failing(),
            Ok(_) => {}
            Err(e) => debug!(sink = %self.sink.name, error = %e, "cannot read the sink"),
        }
    }

    /// Starts what may start now: due deliveries (a probe of the earliest
    /// pending one while probing), up to the sink's concurrency (one while
    /// probing), none of an issuance with an attempt under way, none while
    /// a `Retry-After` pauses the sink. Returns when to look again, if known
    /// before the next event or recheck.
    async fn start_due(&mut self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let now = Utc::now();
        if let Some(until) = self.state.paused_until.filter(|u| *u > now) {
            return Ok(Some(until));
        }
        let probing = self.state.probing();
        let limit = if probing { 1 } else { self.sink.concurrency };
        let free = limit.saturating_sub(self.in_flight.len());
        if free == 0 {
            return Ok(None);
        }
        let probe_now = probing && self.state.probe_at.is_none_or(|at| at <= now);
        let due_by = if probe_now {
            now + chrono::Duration::days(3650)
        } else {
            now
        };
        // Due deliveries are one per issuance: those under way come back too.
        let want = i64::try_from(free + self.busy.len()).unwrap_or(i64::MAX);
        let due = self
            .store
            .due_deliveries(&self.sink.name, due_by, want)
            .await?;
        let mut started = 0;
        for delivery in due {
            if started == free {
                break;
            }
            if self.busy.insert(delivery.issuance_id.clone()) {
                self.spawn(delivery);
                started += 1;
            }
        }
        if started > 0 || !self.in_flight.is_empty() {
            return Ok(None);
        }
        let next = self.store.next_delivery_due(&self.sink.name).await?;
        Ok(match (next, self.state.probe_at.filter(|_| probing)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn spawn(&mut self, delivery: DueDelivery) {
        let sink = self.sink.clone();
        let valid_until = self.holding.valid_until();
        self.in_flight.spawn(async move {
            if tokio::time::Instant::now() >= valid_until {
                return Ended::NotSent {
                    issuance_id: delivery.issuance_id,
                };
            }
            let at = Utc::now();
            let (answer, took, response) = sink.send_logged(&delivery, at).await;
            Ended::Attempted(Box::new(Attempted {
                delivery,
                answer,
                took,
                response,
                at,
            }))
        });
    }

    async fn finished(&mut self, joined: Result<Ended, tokio::task::JoinError>) {
        match joined {
            Ok(Ended::NotSent { issuance_id }) => {
                self.busy.remove(&issuance_id);
            }
            Ok(Ended::Attempted(attempted)) => {
                self.busy.remove(&attempted.delivery.issuance_id);
                self.judge_and_record(*attempted).await;
            }
            Err(e) => {
                // Which issuance is unknown: start afresh (the delivery is
                // still open and is read again).
                error!(sink = %self.sink.name, error = %e, "a delivery task failed");
                if self.in_flight.is_empty() {
                    self.busy.clear();
                }
            }
        }
    }

    /// At shutdown: attempts under way may finish (and are recorded) within
    /// [`SHUTDOWN_GRACE`]; the rest are dropped and sent again next time.
    async fn drain(&mut self) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !self.in_flight.is_empty() {
            match tokio::time::timeout_at(deadline, self.in_flight.join_next()).await {
                Ok(Some(joined)) => self.finished(joined).await,
                Ok(None) | Err(_) => break,
            }
        }
        self.in_flight.abort_all();
    }

    /// Whether the sink is disabled (re-read from the database while it is).
    async fn disabled(&self) -> bool {
        let health = &self.progress.sinks;
        match self.store.sink(&self.sink.name).await {
            Ok(Some(row)) => match &row.disabled_at {
                Some(at) => {
                    health.set_disabled(
                        &self.sink.name,
                        Some(disabled_reason(&row.disabled_reason, at)),
                    );
                    true
                }
                None => {
                    health.set_disabled(&self.sink.name, None);
                    false
                }
            },
            Ok(None) => false,
            Err(e) => {
                debug!(sink = %self.sink.name, error = %e, "cannot read the sink");
                false
            }
        }
    }

    async fn admit(&mut self, types: &[&str]) -> Result<(), StoreError> {
        loop {
            let admitted = self
                .store
                .admit_held_events(&self.holding.hold, types, Utc::now(), ADMIT_BATCH)
                .await;
            if let Err(StoreError::NotHeld { .. }) = &admitted {
                self.holding.lost = true;
            }
            let looked = admitted?;
            if looked < ADMIT_BATCH {
                return Ok(());
            }
        }
    }

    /// Assesses one attempt (`assess`, pure), then applies what it says: its
    /// row in a short transaction of its own, the sink's state and health,
    /// logs and metrics.
    async fn judge_and_record(&mut self, attempted: Attempted) {
        let now = Utc::now();
        let a = &attempted;
        let facts = [AttemptFacts {
            seq: a.delivery.seq,
            created_at: from_db(&a.delivery.created_at).unwrap_or(a.at),
            attempts_before: u32::try_from(a.delivery.attempts).unwrap_or(u32::MAX),
            answer: &a.answer,
            at: a.at,
            took: a.took,
            response: a.response.as_deref(),
        }];
        let assessment = assess(&facts, self.state, now, &self.sink.backoff, fastrand::f64);
        self.apply(std::slice::from_ref(&attempted), assessment, now)
            .await;
    }

    /// Writes, logs, counts and reports what `assessment` says of `attempted`.
    async fn apply(&mut self, attempted: &[Attempted], assessment: Assessment, now: DateTime<Utc>) {
        let name = self.sink.name.clone();
        for (a, judged) in attempted.iter().zip(&assessment.judged) {
            let d = &a.delivery;
            let problem = judged.problem.as_deref().unwrap_or("");
            let outcome = match judged.verdict {
                Verdict::Delivered => {
                    debug!(sink = %name, seq = d.seq, event = %d.event_type, issuance = %d.issuance_id, "delivered");
                    "delivered"
                }
                Verdict::Retry { at } => {
                    warn!(sink = %name, seq = d.seq, attempts = d.attempts + 1, problem, next_attempt_at = %to_db(at), "delivery failed; will retry");
                    "failed"
                }
                Verdict::GiveUp => {
                    error!(sink = %name, seq = d.seq, event = %d.event_type, issuance = %d.issuance_id, problem, "delivery given up: the retry horizon has passed (see `events --failed`, `events redeliver`)");
                    "gave_up"
                }
                Verdict::Disable => "disabled",
            };
            crate::ops::metrics::delivery(&name, outcome, a.took);
        }
        if assessment.back {
            info!(sink = %name, after_failures = self.state.failures, "webhook sink answers again: sending everything pending now");
        }
        let verdict = if assessment.delivered > 0 {
            Some(SinkVerdict::Answered)
        } else {
            assessment
                .failing
                .as_deref()
                .map(|problem| SinkVerdict::Failing { at: now, problem })
        };
        let rows: Vec<AttemptRow> = assessment.judged.iter().map(|j| j.row.clone()).collect();
        match self
            .store
            .record_held_attempts(
                &self.holding.hold,
                &rows,
                verdict,
                assessment.back.then_some(now),
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::NotHeld { .. }) => {
                // Another daemon took the sink while this one was stopped:
                // it sends these again (same webhook-id); nothing else here
                // is this daemon's to write or report.
                warn!(sink = %name, "delivery attempts not recorded: another daemon holds the sink now");
                self.holding.lost = true;
                return;
            }
            Err(e) => {
                // The attempts happened; delivered ones will be sent again (same webhook-id).
                error!(sink = %name, error = %e, "cannot record delivery attempts; they will be repeated");
            }
        }
        if let Some(at) = assessment.disable_at {
            let reason = "the receiver answered 410 Gone";
            error!(sink = %name, url = %self.sink.shown_url, "webhook sink disabled: {reason}; nothing more is sent to it until `issuance-watcher sinks enable NAME`");
            if let Err(e) = self.store.disable_sink(&name, at, reason).await {
                error!(sink = %name, error = %e, "cannot record the disabled sink");
            }
            self.progress.sinks.set_disabled(
                &name,
                Some(disabled_reason(&Some(reason.into()), &to_db(at))),
            );
        }
        if assessment.delivered > 0 {
            self.progress.sinks.delivered(&name);
        } else if let Some(problem) = &assessment.failing {
            self.progress.sinks.failed(&name, now, problem);
            if let Some(after) = self.sink.disable_after {
                self.disable_if_failing_too_long(after, now).await;
            }
        }
        self.state = assessment.next;
    }

    /// `disable_after`: a sink whose every attempt has failed for that long
    /// (`sinks.failing_since`, just written) is disabled, once, with a
    /// `sink.disabled` event (the store decides and writes both in one
    /// transaction, so two daemons or a restart never disable it twice).
    async fn disable_if_failing_too_long(&mut self, after: Duration, now: DateTime<Utc>) {
        let name = self.sink.name.clone();
        match self
            .store
            .disable_held_if_failing(&self.holding.hold, after, now)
            .await
        {
            Ok(Some(row)) => {
                let reason = row.disabled_reason.clone().unwrap_or_default();
                error!(sink = %name, url = %self.sink.shown_url, disable_after = %humantime::format_duration(after), "webhook sink disabled: {reason}; nothing more is sent to it until `issuance-watcher sinks enable NAME`");
                let at = row.disabled_at.clone().unwrap_or_else(|| to_db(now));
                self.progress
                    .sinks
                    .set_disabled(&name, Some(disabled_reason(&row.disabled_reason, &at)));
            }
            Ok(None) => {}
            Err(StoreError::NotHeld { .. }) => self.holding.lost = true,
            Err(e) => error!(sink = %name, error = %e, "cannot check disable_after"),
        }
    }
}
