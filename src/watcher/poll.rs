//! One poll of one claimed issuance: look it up (within the global rate),
//! classify the answer, ask the policy and the flag rules what follows, and
//! return it all as a [`PollRecord`] for the loop to write. Never touches the
//! database and never fails: every problem becomes part of the record.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::api::{self, Answer, ApiClient, PollError};
use crate::domain::status::Status;
use crate::domain::{Clock, Decision, Observation};
use crate::ops::progress::Progress;
use crate::settings::Settings;
use crate::store::{Claimed, PollRecord, RecordKind};
use crate::watcher::flags::{flags_that_apply, next_rung};
use crate::watcher::pacing::{Pacer, PauseChange};
use crate::watcher::policy::{self, PollFacts, PollOutcome};

/// Everything a poll needs, shared by the loop and its poll tasks.
#[derive(Debug)]
pub(super) struct Context {
    pub(super) client: ApiClient,
    pub(super) pacer: Pacer,
    pub(super) settings: Settings,
    pub(super) clock: Clock,
    pub(super) progress: Arc<Progress>,
}

/// Polls one claimed issuance and decides what to record. Never fails: every
/// problem becomes part of the record.
pub(super) async fn poll_one(ctx: Arc<Context>, claimed: Claimed) -> PollRecord {
    let id = match std::str::from_utf8(&claimed.raw_id) {
        Ok(id) => id.to_owned(),
        Err(_) => return rejected(&ctx, claimed, "id is not valid UTF-8"),
    };
    if let Some(reason) = api::reject_reason(&id) {
        return rejected(&ctx, claimed, reason);
    }
    let span = info_span!("poll", issuance = %id);
    async move {
        ctx.pacer.acquire().await;
        let answer = ctx.client.lookup(&id).await;
        ctx.progress.polled(1);
        crate::ops::metrics::polled(&answer);
        debug!(
            // Options as values: omitted when absent, never `Some(..)` in a log line.
            http_status = answer.http_status,
            latency_ms = answer.latency.as_millis() as u64,
            status = answer.result.as_ref().ok().map(|o| o.status.as_str()),
            "polled"
        );
        honour_retry_after(&ctx, &answer);
        let now = ctx.clock.now();
        let answered = answer.http_status.is_some();
        match answer.result {
            Ok(observation) => observed(&ctx, claimed, observation, now),
            Err(error) => {
                let outcome =
                    failure_outcome(&ctx, &claimed, &error, answer.retry_after, answered, now);
                failed(&ctx, claimed, error, outcome, now)
            }
        }
    }
    .instrument(span)
    .await
}

/// A `Retry-After` on any answer pauses all polling until then.
fn honour_retry_after(ctx: &Context, answer: &Answer) {
    if let Some(wait) = answer.retry_after
        && let PauseChange::Started(pause) = ctx.pacer.retry_after(wait)
    {
        crate::ops::metrics::pause_started("retry_after");
        ctx.progress.paused_for(pause);
        warn!(pause = ?pause, http_status = answer.http_status, "API asked us to wait (Retry-After): pausing all polling");
    }
}

fn observed(
    ctx: &Context,
    claimed: Claimed,
    observation: Observation,
    now: DateTime<Utc>,
) -> PollRecord {
    ctx.progress.poll_answered();
    if ctx.pacer.auth_ok() {
        info!("the API accepts our credentials again: polling resumes");
        ctx.progress.set_auth_failing(false);
    }
    if !observation.warnings.is_empty() {
        warn!(warnings = ?observation.warnings, "response had unusable fields");
    }
    let status = Some(observation.status);
    let due_at = observation
        .vbank
        .as_ref()
        .and_then(|v| v.due_at)
        .or(claimed.due_at);
    let ladder = &ctx.settings.flags.due_soon_lead;
    // When the current status began: the API's modifiedAt, else now if this poll
    // is the first to see it (unknown when it was seen before).
    let first_sight = claimed.status.as_deref() != Some(observation.status.as_str());
    let status_since = observation.modified_at.or(first_sight.then_some(now));
    let facts = PollFacts {
        status,
        outcome: PollOutcome::Observed,
        attempts: 0,
        due_at,
        status_since,
        now,
        // The policy polls once right as the next rung begins.
        due_soon_lead: next_rung(ladder, due_at, now),
        jitter: fastrand::f64(),
        timezone: ctx.settings.api.timezone,
    };
    let kind = RecordKind::Observed {
        decision: policy::decide(&facts, &ctx.settings.poll),
        flags: flags_that_apply(status, due_at, now, ladder),
        observation,
    };
    PollRecord { claimed, now, kind }
}

/// What a failed poll means for scheduling, with its process-wide side effects
/// (auth pause) and logs.
fn failure_outcome(
    ctx: &Context,
    claimed: &Claimed,
    error: &PollError,
    retry_after: Option<Duration>,
    answered: bool,
    now: DateTime<Utc>,
) -> PollOutcome {
    match error {
        PollError::NotFound { .. } => PollOutcome::NotFound {
            since: claimed.not_found_since.unwrap_or(now),
        },
        // Retry-After is real time; the policy thinks in business time.
        PollError::RateLimited => PollOutcome::RateLimited {
            retry_after: retry_after.map(|d| ctx.clock.simulated_duration(d)),
        },
        PollError::Unauthorized { .. } => {
            let first = !ctx.pacer.auth_failing();
            let pause = ctx.pacer.auth_failed();
            crate::ops::metrics::pause_started("auth");
            ctx.progress.paused_for(pause);
            ctx.progress.set_auth_failing(true);
            if first {
                error!(%error, ?pause, "the API refused our credentials: pausing all polling (check api.access_key, the secret key and the clock)");
            } else {
                debug!(%error, ?pause, "still refused");
            }
            PollOutcome::Unauthorized {
                pause: ctx.clock.simulated_duration(pause),
            }
        }
        other => {
            // Transient network and server trouble is expected; anything else deserves a look.
            if matches!(
                other,
                PollError::Server { .. } | PollError::Timeout(_) | PollError::Transport(_)
            ) {
                debug!(error = %other, "poll failed");
            } else {
                warn!(error = %other, "poll failed");
            }
            if answered {
                ctx.progress.poll_answered();
            }
            PollOutcome::Failed
        }
    }
}

fn failed(
    ctx: &Context,
    claimed: Claimed,
    error: PollError,
    outcome: PollOutcome,
    now: DateTime<Utc>,
) -> PollRecord {
    let status = claimed
        .status
        .as_deref()
        .and_then(|s| s.parse::<Status>().ok());
    let ladder = &ctx.settings.flags.due_soon_lead;
    let attempts = claimed.attempts.saturating_add(1);
    let facts = PollFacts {
        status,
        outcome,
        attempts,
        due_at: claimed.due_at,
        // Unknown here (not stored); the backoff paths do not use it.
        status_since: None,
        now,
        due_soon_lead: next_rung(ladder, claimed.due_at, now),
        jitter: fastrand::f64(),
        timezone: ctx.settings.api.timezone,
    };
    let decision = policy::decide(&facts, &ctx.settings.poll);
    if decision == Decision::GiveUpNotFound {
        warn!("not found for longer than the grace period: watch ended");
    }
    let not_found_since = match outcome {
        PollOutcome::NotFound { since } => Some(since),
        _ => None,
    };
    let kind = RecordKind::Failed {
        error: error.to_string(),
        attempts,
        not_found_since,
        decision,
        // Deadlines keep approaching while the API is unreachable: flag from what we knew.
        flags: flags_that_apply(status, claimed.due_at, now, ladder),
    };
    PollRecord { claimed, now, kind }
}

fn rejected(ctx: &Context, claimed: Claimed, reason: &str) -> PollRecord {
    warn!(id = %String::from_utf8_lossy(&claimed.raw_id).chars().take(64).collect::<String>(), reason, "id rejected: watch ended");
    PollRecord {
        claimed,
        now: ctx.clock.now(),
        kind: RecordKind::Rejected {
            reason: reason.to_owned(),
        },
    }
}
