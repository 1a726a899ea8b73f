//! What an attempt's answer means and when to try again: pure functions of
//! the answer, the attempts so far, the times and a jitter number.
//!
//! - 2xx: delivered. Nothing else is.
//! - 410 Gone: the receiver wants no more; the sink is disabled.
//! - Anything else (other codes, 3xx included: redirects are not followed;
//!   timeouts, refused or reset connections): retried. The n-th retry waits
//!   `backoff_first * 4^(n-1)`, at most `backoff_max`, +-25 % jitter, and at
//!   least as long as a `Retry-After` asks, until `retry_horizon` has passed
//!   since the delivery was created; then it is given up (`events --failed`).
//! - While a sink's endpoint fails (see `assess`), its worker sends one
//!   delivery at a time, and probes it with the earliest pending one
//!   `backoff_first * 2^(n-1)` apart (at most 10 s, or `backoff_first` if
//!   longer, or as long as a `Retry-After` asks); the first 2xx makes
//!   everything pending due at once.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::time::span;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The receiver answered with this status.
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    /// No answer: timeout, refused, reset, TLS, ... (the reason, never a URL).
    NoAnswer { error: String },
}

impl Answer {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { code, .. } => Some(*code),
            Self::NoAnswer { .. } => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            Self::NoAnswer { .. } => None,
        }
    }

    /// What went wrong, for `last_error` and logs (`None` for a 2xx).
    pub fn problem(&self) -> Option<String> {
        match self {
            Self::Status { code, .. } if (200..300).contains(code) => None,
            Self::Status { code, .. } if (300..400).contains(code) => {
                Some(format!("HTTP {code} (redirects are not followed)"))
            }
            Self::Status { code, .. } => Some(format!("HTTP {code}")),
            Self::NoAnswer { error } => Some(error.clone()),
        }
    }
}

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Retry {
        at: DateTime<Utc>,
    },
    /// The retry horizon has passed.
    GiveUp,
    /// 410 Gone: disable the sink (the delivery stays pending).
    Disable,
}

/// A sink's retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub horizon: Duration,
}

/// The longest `Retry-After` honoured.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * 3600);
/// The longest pause between probes of a failing sink.
pub const PROBE_CAP: Duration = Duration::from_secs(10);

/// The wait before retry number `retry` (1 = the first), with `jitter` in [0, 1).
pub fn retry_delay(retry: u32, backoff: &Backoff, jitter: f64) -> Duration {
    let exponent = retry.saturating_sub(1).min(30);
    let base = backoff
        .first
        .saturating_mul(4u32.saturating_pow(exponent))
        .min(backoff.max);
    base.mul_f64(0.75 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// The pause before probing a sink again after `failures` failed attempts in a row.
pub fn probe_pause(failures: u32, backoff: &Backoff, retry_after: Option<Duration>) -> Duration {
    let exponent = failures.saturating_sub(1).min(30);
    let pause = backoff
        .first
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(PROBE_CAP.max(backoff.first));
    pause.max(retry_after.unwrap_or_default().min(RETRY_AFTER_CAP))
}

/// The verdict on an attempt made at `now` of a delivery created at
/// `created_at` with `attempts_before` earlier attempts.
pub fn judge(
    answer: &Answer,
    attempts_before: u32,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    backoff: &Backoff,
    jitter: f64,
) -> Verdict {
    match answer {
        Answer::Status { code, .. } if (200..300).contains(code) => return Verdict::Delivered,
        Answer::Status { code: 410, .. } => return Verdict::Disable,
        _ => {}
    }
    let give_up_at = created_at + span(backoff.horizon);
    if now >= give_up_at {
        return Verdict::GiveUp;
    }
    let wait = retry_delay(attempts_before.saturating_add(1), backoff, jitter).max(
        answer
            .retry_after()
            .unwrap_or_default()
            .min(RETRY_AFTER_CAP),
    );
    // One last attempt when the horizon ends, rather than none after it.
    Verdict::Retry {
        at: (now + span(wait)).min(give_up_at),
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Backoff = Backoff {
        first: Duration::from_secs(5),
        max: Duration::from_secs(6 * 3600),
        horizon: Duration::from_secs(3 * 24 * 3600),
    };

    fn status(code: u16) -> Answer {
        Answer::Status {
            code,
            retry_after: None,
        }
    }

    #[test]
    fn only_a_2xx_delivers_and_410_disables() {
        let now = Utc::now();
        for code in [200, 201, 204, 299] {
            assert_eq!(
                judge(&status(code), 0, now, now, &SPEC, 0.5),
                Verdict::Delivered
            );
        }
        assert_eq!(
            judge(&status(410), 3, now, now, &SPEC, 0.5),
            Verdict::Disable
        );
        for code in [301, 302, 400, 404, 429, 500, 502, 503] {
            assert!(
                matches!(
                    judge(&status(code), 0, now, now, &SPEC, 0.5),
                    Verdict::Retry { .. }
                ),
                "{code}"
            );
        }
        let none = Answer::NoAnswer {
            error: "timed out".into(),
        };
        assert!(matches!(
            judge(&none, 0, now, now, &SPEC, 0.5),
            Verdict::Retry { .. }
        ));
        assert!(status(302).problem().unwrap().contains("redirects"));
    }

    #[test]
    fn retries_grow_fourfold_with_jitter_up_to_the_cap() {
        let delays: Vec<u64> = (1..=9)
            .map(|n| retry_delay(n, &SPEC, 0.5).as_secs())
            .collect();
        assert_eq!(delays, [5, 20, 80, 320, 1280, 5120, 20480, 21600, 21600]);
        assert_eq!(retry_delay(1, &SPEC, 0.0), Duration::from_millis(3750));
        assert_eq!(retry_delay(1, &SPEC, 0.999_999).as_millis(), 6249);
        assert_eq!(retry_delay(u32::MAX, &SPEC, 0.5), SPEC.max);
    }

    #[test]
    fn retry_after_is_honoured_and_the_horizon_ends_the_retries() {
        let created = Utc::now();
        let asked = Answer::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(120)),
        };
        let Verdict::Retry { at } = judge(&asked, 0, created, created, &SPEC, 0.5) else {
            panic!("a 429 is retried");
        };
        assert_eq!(at - created, chrono::Duration::seconds(120));
        // Near the horizon: one last try at its end, then none.
        let late = created + chrono::Duration::hours(71);
        let Verdict::Retry { at } = judge(&status(503), 12, created, late, &SPEC, 0.5) else {
            panic!("still within the horizon");
        };
        assert_eq!(at, created + chrono::Duration::hours(72));
        assert_eq!(
            judge(&status(503), 13, created, at, &SPEC, 0.5),
            Verdict::GiveUp
        );
    }

    #[test]
    fn about_eighteen_attempts_over_the_default_three_days() {
        let created = Utc::now();
        let mut now = created;
        let mut attempts = 0;
        while let Verdict::Retry { at } = judge(&status(500), attempts, created, now, &SPEC, 0.5) {
            now = at;
            attempts += 1;
        }
        assert!((15..=22).contains(&attempts), "{attempts}");
    }

    #[test]
    fn probes_of_a_failing_sink_double_up_to_ten_seconds_or_retry_after() {
        let pauses: Vec<u64> = (1..=6)
            .map(|n| probe_pause(n, &SPEC, None).as_secs())
            .collect();
        assert_eq!(pauses, [5, 10, 10, 10, 10, 10]);
        assert_eq!(
            probe_pause(1, &SPEC, Some(Duration::from_secs(300))),
            Duration::from_secs(300)
        );
    }
}
