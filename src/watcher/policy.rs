//! When to poll an issuance next: a pure function of what the last poll showed,
//! how many polls in a row failed, the vbank due date and the time.
//!
//! The shape: quick while WAITED (the account number arrives within seconds).
//! While READY, the shortest of:
//! - the hour-of-day cadence: `ready_interval` when people pay, `quiet_interval`
//!   in `quiet_hours` (with one poll right as they end);
//! - a fraction of the time spent in READY so far (`fresh_divisor`): dense right
//!   after READY, when many payers transfer at once, then backing off;
//! - a fraction of the time left before the due date (`ready_divisor`): tighter
//!   in the last minutes, when late payers rush;
//!
//! never more often than `interval`, never less than `max_interval`; with one
//! poll exactly when DUE_SOON starts to apply and one shortly after the
//! deadline; then calm polling (`overdue_interval`) while an issuance stays READY
//! past its deadline. Every one of these is an assumption about payers, so each
//! is a setting. Errors back off exponentially with jitter. Nothing but a
//! terminal status (or a long 404) ends a watch: never a count of tries.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

pub use crate::domain::decision::Decision;
use crate::domain::status::Status;
use crate::domain::time::{after as later, before as earlier, span as chrono_duration};
use crate::settings::PollSettings;

/// How a poll went, as far as scheduling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    /// The API answered with a known status.
    Observed,
    /// 404 `NOT_FOUND_PAY_INBOUND`, first seen at the given instant.
    NotFound { since: DateTime<Utc> },
    /// The API asked us to wait (429 or Retry-After).
    RateLimited { retry_after: Option<Duration> },
    /// 401/403: the whole watcher pauses; this issuance waits at least `pause`.
    Unauthorized { pause: Duration },
    /// Anything else that went wrong: 5xx, timeouts, garbage, unknown statuses.
    Failed,
}

/// Everything the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct PollFacts {
    /// Last known status (after this poll, if it observed one).
    pub status: Option<Status>,
    pub outcome: PollOutcome,
    /// Consecutive failed polls, this one included (0 after a success).
    pub attempts: u32,
    pub due_at: Option<DateTime<Utc>>,
    /// When the current status began: the API's `modifiedAt`, else when we first
    /// saw the status; `None` when unknown (then only the deadline paces READY).
    pub status_since: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
    /// When the next DUE_SOON rung starts to apply (a rung of `flags.due_soon_lead`).
    pub due_soon_lead: Duration,
    /// A uniform random number in [0, 1), passed in to keep this function pure.
    pub jitter: f64,
    /// The zone of `poll.quiet_hours` (`api.timezone`).
    pub timezone: Tz,
}

/// How far ahead of our clock `status_since` may be and still count as "just
/// now" (the API's clock, second truncation). Further ahead, the clock or the
/// time zone is wrong: the time in READY is then unknown, not zero, so a
/// misconfiguration cannot turn into polling at `interval` for hours.
const SINCE_SKEW_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

pub fn decide(facts: &PollFacts, poll: &PollSettings) -> Decision {
    let now = facts.now;
    if facts.status.is_some_and(Status::is_terminal) {
        return Decision::Settled;
    }
    let wait = match facts.outcome {
        PollOutcome::Observed => return Decision::PollAt(next_observation_poll(facts, poll)),
        PollOutcome::NotFound { since } => {
            if now - since >= chrono_duration(poll.not_found_grace) {
                return Decision::GiveUpNotFound;
            }
            backoff(facts.attempts, facts.jitter, poll)
        }
        PollOutcome::RateLimited {
            retry_after: Some(wait),
        } => wait.max(poll.interval),
        PollOutcome::RateLimited { retry_after: None } => {
            backoff(facts.attempts, facts.jitter, poll)
        }
        PollOutcome::Unauthorized { pause } => {
            pause.max(backoff(facts.attempts, facts.jitter, poll))
        }
        PollOutcome::Failed => backoff(facts.attempts, facts.jitter, poll),
    };
    Decision::PollAt(later(now, wait))
}

/// After a clean observation of a non-terminal status.
fn next_observation_poll(facts: &PollFacts, poll: &PollSettings) -> DateTime<Utc> {
    let now = facts.now;
    // +-10 %, so issuances added together drift apart instead of polling in lockstep.
    let jittered = |base: Duration| {
        later(
            now,
            base.mul_f64(0.9 + 0.2 * facts.jitter)
                .min(poll.max_interval),
        )
    };
    if facts.status != Some(Status::Ready) {
        // WAITED (or not seen yet): the account number comes within seconds.
        return jittered(poll.interval);
    }
    if facts.due_at.is_some_and(|due| now >= due) {
        return jittered(poll.overdue_interval);
    }
    let at_least_interval = |d: Duration| d.max(poll.interval);
    // The hour of day: calm while few people pay, at the READY cadence otherwise.
    let quiet_end = poll.quiet_hours.end_after(now, facts.timezone);
    let mut base = match quiet_end {
        Some(_) => poll.quiet_interval,
        None => poll.ready_interval,
    };
    // Right after READY, when many payers transfer: a fraction of the time in READY.
    if let Some(in_ready) = time_in_status(facts) {
        base = base.min(in_ready / poll.fresh_divisor);
    }
    // Near the deadline, when late payers rush: a fraction of the time left.
    if let Some(due) = facts.due_at {
        let left = (due - now).to_std().unwrap_or_default();
        base = base.min(left / poll.ready_divisor);
    }
    let mut next = jittered(at_least_interval(base));
    // The paying hours start with a poll.
    if let Some(end) = quiet_end
        && end < next
    {
        next = end;
    }
    let Some(due) = facts.due_at else {
        return next;
    };
    // One poll right as DUE_SOON starts to apply (1 ms late, so the rule holds
    // despite the database's millisecond resolution), one shortly after the deadline.
    let due_soon_from = later(earlier(due, facts.due_soon_lead), Duration::from_millis(1));
    if now < due_soon_from && due_soon_from < next {
        next = due_soon_from;
    }
    if next > due {
        next = next.min(later(due, poll.after_due_delay));
    }
    next
}

/// How long the current status has lasted, if known and believable.
fn time_in_status(facts: &PollFacts) -> Option<Duration> {
    let since = facts.status_since?;
    if since > facts.now.checked_add_signed(SINCE_SKEW_TOLERANCE)? {
        return None;
    }
    Some((facts.now - since).to_std().unwrap_or_default())
}

/// Exponential from `interval`, full jitter over the upper half, capped.
fn backoff(attempts: u32, jitter: f64, poll: &PollSettings) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let ceiling = poll.backoff_max.min(poll.max_interval);
    let raw = poll.interval.saturating_mul(1u32 << exponent).min(ceiling);
    raw.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
