//! What attempts come to, decided without I/O: each attempt's verdict and
//! the row to write for it, and the sink's next state (failing or not, until
//! when it pauses, whether it has come back, whether a 410 disables it). The
//! worker assesses each attempt as it ends (a slice of one) and applies the
//! [`Assessment`]: it writes the row and logs, counts and reports what it says.
//!
//! The sink's state is about its endpoint, not one issuance: a `Retry-After`
//! on any answer (a 429, a 503, whatever the other attempts came to) pauses
//! the whole sink until then; [`PROBE_AFTER`] failed attempts in a row with
//! no 2xx between them make it *probing* (one attempt at a time, and the
//! earliest pending delivery tried every [`probe_pause`] whatever its own
//! schedule); any 2xx ends that, and a 2xx that ends it makes everything
//! pending due at once (`back`). One issuance whose events fail among others
//! that succeed never makes the sink probe: the others' 2xx reset the count.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::schedule::{Answer, Backoff, RETRY_AFTER_CAP, Verdict, judge, probe_pause};
use crate::domain::time::after;
use crate::domain::timefmt::to_db;
use crate::store::AttemptRow;

/// One attempt, as the assessment needs it.
#[derive(Debug, Clone)]
pub struct AttemptFacts<'a> {
    pub seq: i64,
    /// When its delivery was created (the retry horizon counts from here).
    pub created_at: DateTime<Utc>,
    /// Attempts of this delivery before this one.
    pub attempts_before: u32,
    pub answer: &'a Answer,
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// How long it took.
    pub took: Duration,
    /// The first KiB of the answer's body, sanitised (the delivery log).
    pub response: Option<&'a str>,
}

/// Failed attempts in a row (no 2xx between them) that make a sink probing.
pub const PROBE_AFTER: u32 = 3;

/// A sink's delivery state, carried from one attempt to the next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkState {
    /// Failed attempts in a row since the last 2xx (0: healthy).
    pub failures: u32,
    /// No new attempt starts before this (a `Retry-After`).
    pub paused_until: Option<DateTime<Utc>>,
    /// While probing: the next probe (of a delivery not due yet) is not
    /// before this (`None`: at once).
    pub probe_at: Option<DateTime<Utc>>,
}

impl SinkState {
    /// The state of a sink recorded as failing (`sinks.failing_since`) when
    /// its worker starts: probing, the first probe at once.
    pub fn failing() -> Self {
        Self {
            failures: PROBE_AFTER,
            ..Self::default()
        }
    }

    /// Whether the endpoint fails (not one issuance): one attempt at a time.
    pub fn probing(&self) -> bool {
        self.failures >= PROBE_AFTER
    }
}

/// One attempt's verdict and the row that records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub verdict: Verdict,
    pub row: AttemptRow,
    /// What went wrong (`None` for a 2xx).
    pub problem: Option<String>,
}

/// What a batch came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// One per attempt, in the batch's order.
    pub judged: Vec<Judged>,
    /// Attempts delivered.
    pub delivered: usize,
    /// The sink answered again after failing: everything pending is due now.
    pub back: bool,
    /// A 410 came (at this attempt's time): the sink is disabled.
    pub disable_at: Option<DateTime<Utc>>,
    /// The last problem of a batch in which nothing was delivered: the sink fails.
    pub failing: Option<String>,
    /// The sink's state after the batch.
    pub next: SinkState,
}

/// Assesses `batch`, judged at `now`, for a sink in state `before`. `jitter`
/// gives each retry its random number in [0, 1).
pub fn assess(
    batch: &[AttemptFacts<'_>],
    before: SinkState,
    now: DateTime<Utc>,
    backoff: &Backoff,
    mut jitter: impl FnMut() -> f64,
) -> Assessment {
    let mut judged = Vec::with_capacity(batch.len());
    let (mut delivered, mut disable_at, mut last_problem) = (0, None, None);
    let mut retry_after: Option<Duration> = None;
    for a in batch {
        let verdict = judge(
            a.answer,
            a.attempts_before,
            a.created_at,
            now,
            backoff,
            jitter(),
        );
        let problem = a.answer.problem();
        let mut row = AttemptRow {
            seq: a.seq,
            attempted_at: to_db(a.at),
            status: a.answer.status(),
            error: problem.clone(),
            duration_ms: i64::try_from(a.took.as_millis()).unwrap_or(i64::MAX),
            response: a.response.map(str::to_owned),
            next_attempt_at: None,
            delivered_at: None,
            failed_at: None,
        };
        match verdict {
            Verdict::Delivered => {
                delivered += 1;
                row.delivered_at = Some(to_db(now));
            }
            Verdict::Retry { at } => row.next_attempt_at = Some(to_db(at)),
            Verdict::GiveUp => row.failed_at = Some(to_db(now)),
            Verdict::Disable => {
                // The delivery stays pending for when the sink is enabled again.
                row.next_attempt_at = Some(to_db(now));
                disable_at = Some(a.at);
            }
        }
        if problem.is_some() {
            last_problem.clone_from(&problem);
        }
        retry_after = retry_after.max(a.answer.retry_after());
        judged.push(Judged {
            verdict,
            row,
            problem,
        });
    }
    let back = delivered > 0 && before.probing();
    let mut next = before;
    let mut failing = None;
    if delivered > 0 {
        next = SinkState {
            paused_until: before.paused_until,
            ..SinkState::default()
        };
    } else if let Some(problem) = last_problem {
        let failed = u32::try_from(judged.len()).unwrap_or(u32::MAX);
        next.failures = before.failures.saturating_add(failed);
        let pause = probe_pause(next.failures, backoff, retry_after);
        next.probe_at = Some(after(now, pause));
        failing = Some(problem);
    }
    // "Too many requests" is about the endpoint: whatever the other attempts
    // came to, nothing new starts before the time asked (the longest pause
    // asked so far wins).
    if let Some(wait) = retry_after {
        let until = after(now, wait.min(RETRY_AFTER_CAP));
        next.paused_until = Some(before.paused_until.map_or(until, |p| p.max(until)));
    }
    Assessment {
        judged,
        delivered,
        back,
        disable_at,
        failing,
        next,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const BACKOFF: Backoff = Backoff {
        first: Duration::from_secs(5),
        max: Duration::from_secs(6 * 3600),
        horizon: Duration::from_secs(3 * 24 * 3600),
    };

    fn now() -> DateTime<Utc> {
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 5, 10, 0, 0).unwrap()
    }

    fn status(code: u16, retry_after: Option<u64>) -> Answer {
        Answer::Status {
            code,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    fn facts(seq: i64, answer: &Answer) -> AttemptFacts<'_> {
        AttemptFacts {
            seq,
            created_at: now(),
            attempts_before: 0,
            answer,
            at: now(),
            took: Duration::from_millis(12),
            response: Some("ok"),
        }
    }

    #[test]
    fn a_failing_sink_that_delivers_again_is_back_and_healthy() {
        let ok = status(204, None);
        let failing = SinkState {
            failures: 3,
            paused_until: None,
            probe_at: Some(now()),
        };
        let a = assess(&[facts(1, &ok)], failing, now(), &BACKOFF, || 0.5);
        assert_eq!((a.delivered, a.back, a.failing.clone()), (1, true, None));
        assert_eq!(a.next, SinkState::default());
        assert_eq!(
            a.judged[0].row.delivered_at.as_deref(),
            Some("2026-12-05T10:00:00.000Z")
        );
        assert_eq!(
            (
                a.judged[0].row.duration_ms,
                a.judged[0].row.response.as_deref()
            ),
            (12, Some("ok")),
            "the delivery log's duration and answer"
        );
    }

    #[test]
    fn a_batch_with_nothing_delivered_fails_the_sink_and_pauses_it() {
        let (busy, down) = (
            status(503, None),
            Answer::NoAnswer {
                error: "refused".into(),
            },
        );
        let a = assess(
            &[facts(1, &busy), facts(2, &down)],
            SinkState::default(),
            now(),
            &BACKOFF,
            || 0.5,
        );
        assert_eq!(a.delivered, 0);
        assert_eq!(a.failing.as_deref(), Some("refused"), "the last problem");
        assert_eq!(a.next.failures, 2);
        assert!(!a.next.probing(), "one more failure before the sink probes");
        assert_eq!(a.next.paused_until, None, "no Retry-After, no pause");
        assert_eq!(
            a.next.probe_at,
            Some(after(now(), probe_pause(2, &BACKOFF, None)))
        );
        assert!(
            a.judged
                .iter()
                .all(|j| matches!(j.verdict, Verdict::Retry { .. }))
        );
    }

    #[test]
    fn a_410_disables_and_keeps_the_delivery_pending() {
        let gone = status(410, None);
        let a = assess(
            &[facts(7, &gone)],
            SinkState::default(),
            now(),
            &BACKOFF,
            || 0.5,
        );
        assert_eq!(a.disable_at, Some(now()));
        assert_eq!(a.judged[0].verdict, Verdict::Disable);
        assert_eq!(
            a.judged[0].row.next_attempt_at.as_deref(),
            Some("2026-12-05T10:00:00.000Z")
        );
    }

    #[test]
    fn a_retry_after_pauses_the_sink_even_among_successes_and_never_shortens_a_pause() {
        let (ok, slow_down) = (status(204, None), status(503, Some(2)));
        let paused = SinkState {
            paused_until: Some(after(now(), Duration::from_secs(10))),
            ..SinkState::default()
        };
        let a = assess(&[facts(1, &ok)], paused, now(), &BACKOFF, || 0.5);
        assert_eq!(
            a.next.paused_until, paused.paused_until,
            "a 2xx keeps a pause"
        );
        let a = assess(&[facts(1, &slow_down)], paused, now(), &BACKOFF, || 0.5);
        assert_eq!(
            a.next.paused_until, paused.paused_until,
            "the longer one wins"
        );
        let a = assess(
            &[facts(1, &slow_down)],
            SinkState::default(),
            now(),
            &BACKOFF,
            || 0.5,
        );
        assert_eq!(
            a.next.paused_until,
            Some(after(now(), Duration::from_secs(2)))
        );
    }

    #[test]
    fn a_partly_delivered_batch_asked_to_wait_still_waits() {
        let (ok, slow_down) = (status(200, None), status(429, Some(3)));
        let a = assess(
            &[facts(1, &ok), facts(2, &slow_down)],
            SinkState::default(),
            now(),
            &BACKOFF,
            || 0.5,
        );
        assert_eq!(a.delivered, 1);
        assert_eq!(a.failing, None);
        assert_eq!(
            a.next.paused_until,
            Some(after(now(), Duration::from_secs(3)))
        );
    }

    fn any_answer() -> impl Strategy<Value = Answer> {
        prop_oneof![
            (100u16..600, proptest::option::of(0u64..100_000))
                .prop_map(|(code, after)| status(code, after)),
            Just(Answer::NoAnswer {
                error: "timeout".into()
            }),
        ]
    }

    proptest! {
        /// Whatever the batch, one row per attempt in order; a 2xx anywhere
        /// keeps the sink healthy; nothing delivered means one more failure
        /// per attempt and a probe in the future; any `Retry-After` (capped)
        /// pauses the sink at least that long, whatever else came.
        #[test]
        fn a_batch_is_assessed_consistently(
            answers in prop::collection::vec(any_answer(), 1..20),
            failures in 0u32..50,
        ) {
            let batch: Vec<_> = answers.iter().enumerate().map(|(i, a)| facts(i as i64, a)).collect();
            let before = SinkState { failures, ..SinkState::default() };
            let a = assess(&batch, before, now(), &BACKOFF, || 0.5);
            prop_assert_eq!(a.judged.len(), batch.len());
            for (i, j) in a.judged.iter().enumerate() {
                prop_assert_eq!(j.row.seq, i as i64);
            }
            let any_2xx = answers.iter().any(|x| matches!(x.status(), Some(200..=299)));
            prop_assert_eq!(a.delivered > 0, any_2xx);
            if any_2xx {
                prop_assert_eq!(a.next.failures, 0);
                prop_assert_eq!(a.back, failures >= PROBE_AFTER);
                prop_assert!(a.failing.is_none());
            } else {
                prop_assert_eq!(a.next.failures, failures + answers.len() as u32);
                prop_assert!(a.next.probe_at.unwrap() > now());
            }
            match answers.iter().filter_map(Answer::retry_after).max() {
                Some(asked) => {
                    let asked = asked.min(RETRY_AFTER_CAP);
                    prop_assert_eq!(a.next.paused_until, Some(after(now(), asked)));
                }
                None => prop_assert_eq!(a.next.paused_until, None),
            }
        }
    }
}
