//! When to poll an issuance next: a pure function of what the last poll showed,
//! how many polls in a row failed, the vbank due date and the time.
//!
//! The shape: quick while WAITED (the account number arrives within seconds);
//! while READY, the shorter of a fraction of the time spent in READY so far
//! (dense right after READY, when many payers transfer at once, then backing
//! off) and a fraction of the time left before the due date (calm when the
//! deadline is far, tighter as it nears), with one poll exactly when DUE_SOON
//! starts to apply and one shortly after the deadline; then calm polling while
//! an issuance stays READY past its deadline. Errors back off exponentially
//! with jitter. Nothing but a terminal status (or a long 404) ends a watch:
//! never a count of tries.

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use crate::domain::decision::Decision;
use crate::domain::status::Status;
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
    let (Some(Status::Ready), Some(due)) = (facts.status, facts.due_at) else {
        // WAITED, or READY with no usable due date (then at the calm ceiling).
        let base = if facts.status == Some(Status::Ready) {
            poll.max_interval
        } else {
            poll.interval
        };
        return jittered(base);
    };
    if now >= due {
        return jittered(poll.overdue_interval);
    }
    let left = (due - now).to_std().unwrap_or_default();
    let by_deadline = (left / poll.ready_divisor).clamp(poll.interval, poll.max_interval);
    let base = match time_in_status(facts) {
        Some(in_ready) => {
            by_deadline.min((in_ready / poll.fresh_divisor).clamp(poll.interval, poll.max_interval))
        }
        None => by_deadline,
    };
    let mut next = jittered(base);
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

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

/// `at + d`, saturating at the latest instant chrono can hold: settings are
/// range-checked at load, but no setting, API date or Retry-After may become
/// a panic here.
fn later(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at.checked_add_signed(chrono_duration(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `at - d`, saturating at the earliest instant chrono can hold.
fn earlier(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at.checked_sub_signed(chrono_duration(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn settings() -> PollSettings {
        let defaults: crate::settings::Settings = config::Config::builder()
            .add_source(config::File::from_str(
                crate::settings::DEFAULTS_TOML,
                config::FileFormat::Toml,
            ))
            .set_override("api.access_key", "k")
            .unwrap()
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        defaults.poll
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 0).unwrap()
    }

    fn facts(status: Option<Status>, outcome: PollOutcome) -> PollFacts {
        PollFacts {
            status,
            outcome,
            attempts: 0,
            due_at: None,
            status_since: None,
            now: now(),
            due_soon_lead: Duration::from_secs(6 * 3600),
            jitter: 0.5,
        }
    }

    fn wait_of(decision: Decision) -> Duration {
        match decision {
            Decision::PollAt(at) => (at - now()).to_std().unwrap(),
            other => panic!("expected a poll, got {other:?}"),
        }
    }

    fn ready_due_in(left: Duration) -> PollFacts {
        PollFacts {
            due_at: Some(now() + chrono_duration(left)),
            ..facts(Some(Status::Ready), PollOutcome::Observed)
        }
    }

    #[test]
    fn terminal_statuses_are_never_polled_again() {
        for status in [Status::Done, Status::Cancelled, Status::Fail] {
            for outcome in [PollOutcome::Observed, PollOutcome::Failed] {
                assert_eq!(
                    decide(&facts(Some(status), outcome), &settings()),
                    Decision::Settled
                );
            }
        }
    }

    #[test]
    fn waited_and_unseen_issuances_are_polled_at_the_base_interval() {
        let poll = settings();
        for status in [None, Some(Status::Waited)] {
            let wait = wait_of(decide(&facts(status, PollOutcome::Observed), &poll));
            assert_eq!(wait, poll.interval);
        }
    }

    #[test]
    fn ready_polling_is_calm_when_far_and_tightens_as_the_deadline_nears() {
        let poll = settings();
        let far = wait_of(decide(&ready_due_in(Duration::from_secs(36 * 3600)), &poll));
        let near = wait_of(decide(&ready_due_in(Duration::from_secs(3600)), &poll));
        let very_near = wait_of(decide(&ready_due_in(Duration::from_secs(60)), &poll));
        assert_eq!(far, poll.max_interval);
        assert!(
            near < far && very_near < near,
            "{far:?} {near:?} {very_near:?}"
        );
        assert!(very_near >= poll.interval);
    }

    /// READY for `in_ready` so far, due in 30 hours (the deadline alone would wait
    /// `max_interval`).
    fn ready_for(in_ready: Duration) -> PollFacts {
        PollFacts {
            status_since: Some(now() - chrono_duration(in_ready)),
            ..ready_due_in(Duration::from_secs(30 * 3600))
        }
    }

    #[test]
    fn fresh_ready_issuances_are_polled_densely_then_back_off_with_time_in_ready() {
        let poll = settings();
        let at = |in_ready: u64| wait_of(decide(&ready_for(Duration::from_secs(in_ready)), &poll));
        assert_eq!(at(0), poll.interval);
        assert_eq!(at(1), poll.interval);
        // In between: a fraction of the time in READY, jittered (jitter 0.5: exact).
        assert_eq!(at(120), Duration::from_secs(120) / poll.fresh_divisor);
        let waits: Vec<Duration> = [0, 60, 300, 900, 1800, 3600, 86_400]
            .into_iter()
            .map(at)
            .collect();
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
        assert_eq!(*waits.last().unwrap(), poll.max_interval);
    }

    #[test]
    fn the_shorter_of_the_fresh_and_the_deadline_waits_applies() {
        let poll = settings();
        // Long in READY, deadline near: the deadline decides.
        let near = PollFacts {
            status_since: Some(now() - chrono::Duration::days(1)),
            ..ready_due_in(Duration::from_secs(600))
        };
        assert_eq!(
            wait_of(decide(&near, &poll)),
            (Duration::from_secs(600) / poll.ready_divisor).max(poll.interval)
        );
        // Just READY, deadline near: the time in READY decides.
        let fresh = PollFacts {
            status_since: Some(now() - chrono::Duration::seconds(20)),
            ..near
        };
        assert_eq!(
            wait_of(decide(&fresh, &poll)),
            (Duration::from_secs(20) / poll.fresh_divisor).max(poll.interval)
        );
        // Unknown start: the deadline alone, as before.
        let unknown = PollFacts {
            status_since: None,
            ..ready_for(Duration::ZERO)
        };
        assert_eq!(wait_of(decide(&unknown, &poll)), poll.max_interval);
    }

    #[test]
    fn a_status_start_in_the_future_is_trusted_only_within_the_skew_tolerance() {
        let poll = settings();
        let ahead = |secs: i64| PollFacts {
            status_since: Some(now() + chrono::Duration::seconds(secs)),
            ..ready_due_in(Duration::from_secs(30 * 3600))
        };
        // A few seconds ahead (the API's clock): just began.
        assert_eq!(wait_of(decide(&ahead(5), &poll)), poll.interval);
        // Hours ahead (a wrong time zone): unknown, never hours of polling at `interval`.
        assert_eq!(wait_of(decide(&ahead(9 * 3600), &poll)), poll.max_interval);
    }

    #[test]
    fn the_fresh_wait_does_not_move_the_due_soon_and_after_due_polls() {
        let poll = settings();
        let lead = Duration::from_secs(6 * 3600);
        // Long in READY, so the fresh wait is max_interval; DUE_SOON starts in a minute.
        let f = PollFacts {
            status_since: Some(now() - chrono::Duration::hours(3)),
            ..ready_due_in(lead + Duration::from_secs(60))
        };
        let due = f.due_at.unwrap();
        assert_eq!(
            decide(&f, &poll),
            Decision::PollAt(due - chrono_duration(lead) + chrono::Duration::milliseconds(1))
        );
        // With divisors of 1 both waits overshoot the deadline: one poll just after it.
        let poll1 = PollSettings {
            ready_divisor: 1,
            fresh_divisor: 1,
            ..settings()
        };
        let g = PollFacts {
            jitter: 0.99,
            status_since: Some(now() - chrono::Duration::hours(3)),
            ..ready_due_in(Duration::from_secs(60))
        };
        assert_eq!(
            decide(&g, &poll1),
            Decision::PollAt(g.due_at.unwrap() + chrono_duration(poll1.after_due_delay))
        );
        // Past the due date the time in READY no longer matters.
        let overdue = PollFacts {
            status_since: Some(now() - chrono::Duration::seconds(10)),
            ..ready_due_in(Duration::ZERO)
        };
        assert_eq!(
            wait_of(decide(&overdue, &poll)),
            poll.overdue_interval.min(poll.max_interval)
        );
    }

    #[test]
    fn a_poll_lands_right_when_due_soon_starts_to_apply() {
        let poll = settings();
        let lead = Duration::from_secs(6 * 3600);
        let f = ready_due_in(lead + Duration::from_secs(60));
        let Decision::PollAt(at) = decide(&f, &poll) else {
            panic!()
        };
        let due = f.due_at.unwrap();
        assert!(
            due - at <= chrono_duration(lead),
            "poll at {at} is before DUE_SOON applies"
        );
        assert!(due - at >= chrono_duration(lead) - chrono::Duration::milliseconds(2));
    }

    #[test]
    fn one_poll_comes_shortly_after_the_due_date() {
        // With divisor 1 the computed interval would overshoot the deadline by far.
        let poll = PollSettings {
            ready_divisor: 1,
            ..settings()
        };
        let f = PollFacts {
            jitter: 0.99,
            ..ready_due_in(Duration::from_secs(60))
        };
        let Decision::PollAt(at) = decide(&f, &poll) else {
            panic!()
        };
        assert_eq!(
            at,
            f.due_at.unwrap() + chrono_duration(poll.after_due_delay)
        );
    }

    #[test]
    fn still_ready_after_the_deadline_is_polled_calmly_not_given_up() {
        let poll = settings();
        let wait = wait_of(decide(&ready_due_in(Duration::ZERO), &poll));
        assert_eq!(wait, poll.overdue_interval.min(poll.max_interval));
        let f = PollFacts {
            due_at: Some(now() - chrono::Duration::days(30)),
            ..ready_due_in(Duration::ZERO)
        };
        assert!(matches!(decide(&f, &poll), Decision::PollAt(_)));
    }

    #[test]
    fn still_ready_does_not_spend_the_error_backoff() {
        let poll = settings();
        let clean = ready_due_in(Duration::from_secs(3600));
        // An hour left, jitter 0.5: a twelfth of the time left, exactly.
        let expected = Duration::from_secs(3600) / poll.ready_divisor;
        assert_eq!(wait_of(decide(&clean, &poll)), expected);
        // A READY observed after a run of failures paces by the deadline, not by
        // how many polls failed before it.
        for attempts in [1, 3, 10, u32::MAX] {
            let after_errors = PollFacts { attempts, ..clean };
            assert_ne!(
                backoff(attempts, clean.jitter, &poll),
                expected,
                "the backoff must differ for this check to mean anything"
            );
            assert_eq!(
                wait_of(decide(&after_errors, &poll)),
                expected,
                "attempts {attempts}"
            );
        }
    }

    #[test]
    fn errors_back_off_exponentially_with_jitter_up_to_the_caps() {
        let poll = settings();
        let mut waits = Vec::new();
        for attempts in 1..=20 {
            let f = PollFacts {
                attempts,
                jitter: 0.999_999,
                ..facts(Some(Status::Waited), PollOutcome::Failed)
            };
            waits.push(wait_of(decide(&f, &poll)));
        }
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert!(waits[0] <= poll.interval && waits[1] > waits[0]);
        assert!(*waits.last().unwrap() <= poll.backoff_max.min(poll.max_interval));
        let low = PollFacts {
            attempts: 3,
            jitter: 0.0,
            ..facts(Some(Status::Waited), PollOutcome::Failed)
        };
        assert_eq!(wait_of(decide(&low, &poll)), poll.interval * 4 / 2);
    }

    #[test]
    fn no_wait_exceeds_max_interval_except_retry_after_and_auth_pauses() {
        let poll = settings();
        for status in [None, Some(Status::Waited), Some(Status::Ready)] {
            for attempts in [0, 1, 5, 40, u32::MAX] {
                for outcome in [
                    PollOutcome::Observed,
                    PollOutcome::Failed,
                    PollOutcome::RateLimited { retry_after: None },
                ] {
                    for due in [None, Some(-3600i64), Some(60), Some(86_400 * 365)] {
                        for since in [None, Some(-86_400i64), Some(-30), Some(0), Some(30)] {
                            let f = PollFacts {
                                attempts,
                                due_at: due.map(|s| now() + chrono::Duration::seconds(s)),
                                status_since: since.map(|s| now() + chrono::Duration::seconds(s)),
                                jitter: 0.999,
                                ..facts(status, outcome)
                            };
                            let wait = wait_of(decide(&f, &poll));
                            assert!(wait <= poll.max_interval, "{f:?}");
                            if outcome == PollOutcome::Observed {
                                assert!(wait >= poll.interval.mul_f64(0.9), "{f:?}");
                            }
                        }
                    }
                }
            }
        }
        let told = facts(
            Some(Status::Ready),
            PollOutcome::RateLimited {
                retry_after: Some(Duration::from_secs(3000)),
            },
        );
        assert_eq!(wait_of(decide(&told, &poll)), Duration::from_secs(3000));
        let auth = facts(
            Some(Status::Ready),
            PollOutcome::Unauthorized {
                pause: Duration::from_secs(1200),
            },
        );
        assert_eq!(wait_of(decide(&auth, &poll)), Duration::from_secs(1200));
    }

    #[test]
    fn not_found_is_retried_through_the_grace_period_then_given_up() {
        let poll = settings();
        let recent = facts(
            None,
            PollOutcome::NotFound {
                since: now() - chrono::Duration::seconds(5),
            },
        );
        assert!(matches!(
            decide(
                &PollFacts {
                    attempts: 1,
                    ..recent
                },
                &poll
            ),
            Decision::PollAt(_)
        ));
        let old = facts(
            None,
            PollOutcome::NotFound {
                since: now() - chrono_duration(poll.not_found_grace),
            },
        );
        assert_eq!(
            decide(&PollFacts { attempts: 9, ..old }, &poll),
            Decision::GiveUpNotFound
        );
    }

    #[test]
    fn extreme_waits_and_dates_saturate_instead_of_panicking() {
        let huge = Duration::from_secs(u64::MAX / 4);
        let poll = PollSettings {
            interval: huge,
            max_interval: huge,
            backoff_max: huge,
            overdue_interval: huge,
            after_due_delay: huge,
            not_found_grace: huge,
            ..settings()
        };
        let far = DateTime::<Utc>::MAX_UTC - chrono::Duration::seconds(1);
        for (due_at, now) in [
            (Some(far), now()),
            (Some(DateTime::<Utc>::MIN_UTC), now()),
            (None, far),
        ] {
            for outcome in [
                PollOutcome::Observed,
                PollOutcome::Failed,
                PollOutcome::Unauthorized { pause: huge },
                PollOutcome::RateLimited {
                    retry_after: Some(huge),
                },
            ] {
                for status in [Some(Status::Ready), Some(Status::Waited)] {
                    let f = PollFacts {
                        due_at,
                        now,
                        attempts: 40,
                        due_soon_lead: huge,
                        status_since: Some(DateTime::<Utc>::MIN_UTC),
                        ..facts(status, outcome)
                    };
                    assert!(matches!(decide(&f, &poll), Decision::PollAt(_)), "{f:?}");
                }
            }
        }
    }
}
