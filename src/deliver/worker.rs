//! A sink's loop: admit new events, send the due deliveries (up to the sink's
//! concurrency at once, never two of one issuance), write what each attempt
//! came to, and wait for more.
//!
//! While a sink fails, one delivery at a time probes it (spaced by
//! [`probe_pause`]); the first 2xx after failures makes every pending
//! delivery due at once, so a receiver that was down gets its backlog as
//! soon as it is back rather than on each delivery's own retry schedule.
//! Nothing here holds a transaction across an HTTP request.
//!
//! The backlog gauges are not refreshed here: a worker sleeps through a long
//! `Retry-After` or while its sink is disabled, which is exactly when the
//! oldest undelivered age must keep growing (see `ops::tasks`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::assess::{Assessment, AttemptFacts, SinkState, assess};
use super::message::{Message, signed, slack};
use super::schedule::{Answer, Backoff, Verdict};
use super::sender::Sender;
use crate::domain::EventType;
use crate::domain::timefmt::{from_db, to_db};
use crate::ops::progress::Progress;
use crate::settings::{Problem, Settings, SettingsError, Signing};
use crate::store::{AttemptRow, DueDelivery, SinkVerdict, Store, StoreError};

/// Longest wait for new events (others' writes have no wake-up).
const RECHECK: Duration = Duration::from_millis(250);
/// How often a disabled sink's row is read again (an operator may clear it).
const DISABLED_RECHECK: Duration = Duration::from_secs(5);
/// Events admitted per transaction.
const ADMIT_BATCH: i64 = 5000;
/// How long attempts in flight may finish after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1000);

/// A configured sink, its secret decoded and its client built.
#[derive(Debug)]
pub struct Sink {
    pub name: String,
    /// The URL as logs may show it.
    shown_url: String,
    /// Signed with its key, or Slack text.
    signing: Signing,
    types: Vec<EventType>,
    backoff: Backoff,
    concurrency: usize,
    unhealthy_after: Duration,
    sender: Sender,
    /// The zone of the instants in Slack texts (`api.timezone`).
    zone: chrono_tz::Tz,
}

/// Every configured sink.
#[derive(Debug, Default)]
pub struct Sinks(Vec<Arc<Sink>>);

impl Sinks {
    /// Builds the sinks of `[[webhooks]]`, reading their secrets; every
    /// problem (of every sink) is reported, each naming its key.
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let credentials = settings.credentials_dir.as_deref();
        let mut sinks = Vec::new();
        let mut problems = Vec::new();
        for (i, w) in settings.webhooks.iter().enumerate() {
            let signing = match w.signing(i, credentials) {
                Ok(signing) => signing,
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            };
            let sender = match Sender::new(w.url.clone(), w.timeout) {
                Ok(sender) => sender,
                Err(e) => {
                    let reason = format!("cannot build an HTTP client: {}", e.without_url());
                    problems.push(Problem::new(
                        format!("webhooks[{i}]"),
                        reason,
                        w.origin.as_deref(),
                    ));
                    continue;
                }
            };
            sinks.push(Arc::new(Sink {
                name: w.name.clone(),
                shown_url: w.shown_url(),
                signing,
                types: w.events.clone(),
                backoff: Backoff {
                    first: w.backoff_first,
                    max: w.backoff_max,
                    horizon: w.retry_horizon,
                },
                concurrency: w.concurrency,
                unhealthy_after: w.unhealthy_after,
                sender,
                zone: settings.api.timezone,
            }));
        }
        if !problems.is_empty() {
            return Err(SettingsError::Problems(problems));
        }
        Ok(Self(sinks))
    }

    /// Each signed sink's name and where its secret was found (for `check-config`).
    pub fn secret_sources(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .filter_map(|s| match &s.signing {
                Signing::Standard { source, .. } => Some((s.name.as_str(), source.as_str())),
                Signing::Slack => None,
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|s| s.name.clone()).collect()
    }

    /// Registers each sink in the database (a new one starts after the newest
    /// event) before anything is polled, so no event of this run is missed.
    pub async fn register(&self, store: &Store, progress: &Progress) -> Result<(), StoreError> {
        for sink in &self.0 {
            let row = store.register_sink(&sink.name).await?;
            progress.sinks.register(&sink.name, sink.unhealthy_after);
            if let Some(at) = &row.disabled_at {
                let reason = disabled_reason(&row.disabled_reason, at);
                error!(sink = %sink.name, reason, "webhook sink is disabled: nothing is sent to it until `disabled_at` is cleared in the `sinks` table");
                progress.sinks.set_disabled(&sink.name, Some(reason));
            }
            info!(sink = %sink.name, url = %sink.shown_url, after_seq = row.admitted_seq, "delivering events to webhook sink");
        }
        Ok(())
    }

    /// Starts one worker per sink; they stop when `token` is cancelled.
    pub fn start(
        &self,
        store: &Store,
        progress: &Arc<Progress>,
        token: &CancellationToken,
    ) -> TaskTracker {
        let tracker = TaskTracker::new();
        for sink in &self.0 {
            let worker = Worker {
                sink: sink.clone(),
                store: store.clone(),
                progress: progress.clone(),
                token: token.clone(),
                state: SinkState::default(),
            };
            tracker.spawn(worker.run());
        }
        tracker.close();
        tracker
    }
}

fn disabled_reason(reason: &Option<String>, at: &str) -> String {
    format!("{} since {at}", reason.as_deref().unwrap_or("disabled"))
}

struct Worker {
    sink: Arc<Sink>,
    store: Store,
    progress: Arc<Progress>,
    token: CancellationToken,
    /// Failing or not, and until when it pauses (see `assess`).
    state: SinkState,
}

/// One attempt's result.
struct Attempted {
    delivery: DueDelivery,
    answer: Answer,
    took: Duration,
    at: DateTime<Utc>,
}

impl Worker {
    async fn run(mut self) {
        let name = self.sink.name.clone();
        let types: Vec<&'static str> = self.sink.types.iter().map(|t| t.as_str()).collect();
        while !self.token.is_cancelled() {
            if self.disabled().await {
                self.sleep(DISABLED_RECHECK).await;
                continue;
            }
            if let Err(e) = self.admit(&types).await {
                error!(sink = %name, error = %e, "cannot admit events for delivery; retrying");
                self.sleep(Duration::from_secs(1)).await;
                continue;
            }
            let now = Utc::now();
            if let Some(until) = self.state.paused_until.filter(|u| *u > now) {
                self.sleep((until - now).to_std().unwrap_or_default()).await;
                continue;
            }
            // Failing: one probe, whatever its own schedule says.
            let (limit, due_by) = if self.state.failures > 0 {
                (1, now + chrono::Duration::days(3650))
            } else {
                (4 * self.sink.concurrency as i64, now)
            };
            let due = match self.store.due_deliveries(&name, due_by, limit).await {
                Ok(due) => due,
                Err(e) => {
                    error!(sink = %name, error = %e, "cannot read due deliveries; retrying");
                    self.sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if due.is_empty() {
                self.wait_for_work().await;
                continue;
            }
            let Some(attempted) = self.send(due).await else {
                break; // shut down while sending: the rest goes out next time
            };
            self.judge_and_record(attempted).await;
        }
        debug!(sink = %name, "delivery worker stopped");
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

    async fn admit(&self, types: &[&str]) -> Result<(), StoreError> {
        loop {
            let looked = self
                .store
                .admit_events(&self.sink.name, types, Utc::now(), ADMIT_BATCH)
                .await?;
            if looked < ADMIT_BATCH {
                return Ok(());
            }
        }
    }

    /// Until new events are committed, the next delivery falls due, a short
    /// recheck (events written by other programs) or shutdown.
    async fn wait_for_work(&self) {
        let next = match self.store.next_delivery_due(&self.sink.name).await {
            Ok(Some(at)) => (at - Utc::now()).to_std().unwrap_or_default(),
            _ => RECHECK,
        };
        tokio::select! {
            () = self.token.cancelled() => {}
            () = self.progress.next_commit() => {}
            () = tokio::time::sleep(next.min(RECHECK)) => {}
        }
    }

    async fn sleep(&self, wait: Duration) {
        tokio::select! {
            () = self.token.cancelled() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }

    /// Sends `due`, up to the sink's concurrency at once. `None` if shutdown
    /// came and the attempts did not finish within [`SHUTDOWN_GRACE`].
    async fn send(&self, due: Vec<DueDelivery>) -> Option<Vec<Attempted>> {
        let permits = Arc::new(tokio::sync::Semaphore::new(self.sink.concurrency));
        let mut attempts = JoinSet::new();
        for delivery in due {
            let sink = self.sink.clone();
            let permits = permits.clone();
            attempts.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let at = Utc::now();
                let message = message_for(&sink, &delivery, at);
                let started = std::time::Instant::now();
                let answer = sink.sender.post(&message).await;
                Attempted {
                    delivery,
                    answer,
                    took: started.elapsed(),
                    at,
                }
            });
        }
        let all = async {
            let mut done = Vec::new();
            while let Some(joined) = attempts.join_next().await {
                match joined {
                    Ok(attempted) => done.push(attempted),
                    Err(e) => error!(error = %e, "a delivery task failed"),
                }
            }
            done
        };
        let grace = async {
            self.token.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            done = all => Some(done),
            () = grace => None,
        }
    }

    /// Assesses the batch (`assess`, pure), then applies what it says: the
    /// rows in one transaction, the sink's state and health, logs and metrics.
    async fn judge_and_record(&mut self, attempted: Vec<Attempted>) {
        let now = Utc::now();
        let facts: Vec<AttemptFacts<'_>> = attempted
            .iter()
            .map(|a| AttemptFacts {
                seq: a.delivery.seq,
                created_at: from_db(&a.delivery.created_at).unwrap_or(a.at),
                attempts_before: u32::try_from(a.delivery.attempts).unwrap_or(u32::MAX),
                answer: &a.answer,
                at: a.at,
            })
            .collect();
        let assessment = assess(&facts, self.state, now, &self.sink.backoff, fastrand::f64);
        self.apply(&attempted, assessment, now).await;
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
        if let Err(e) = self
            .store
            .record_attempts(&name, &rows, verdict, assessment.back.then_some(now))
            .await
        {
            // The attempts happened; delivered ones will be sent again (same webhook-id).
            error!(sink = %name, error = %e, "cannot record delivery attempts; they will be repeated");
        }
        if let Some(at) = assessment.disable_at {
            let reason = "the receiver answered 410 Gone";
            error!(sink = %name, url = %self.sink.shown_url, "webhook sink disabled: {reason}; nothing more is sent to it until `disabled_at` is cleared in the `sinks` table");
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
        }
        self.state = assessment.next;
    }
}

fn message_for(sink: &Sink, delivery: &DueDelivery, at: DateTime<Utc>) -> Message {
    match &sink.signing {
        Signing::Standard { secret, .. } => signed(delivery, secret, at.timestamp()),
        Signing::Slack => slack(delivery, sink.zone),
    }
}
