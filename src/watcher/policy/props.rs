//! Properties of `policy::decide`, over arbitrary facts: what must hold for
//! every status, outcome, deadline, time of day and jitter, not only for the
//! hand-picked cases of `tests.rs`.

use proptest::prelude::*;

use super::tests::settings;
use super::*;

fn any_open_status() -> impl Strategy<Value = Option<Status>> {
    prop_oneof![
        Just(None),
        Just(Some(Status::Waited)),
        Just(Some(Status::Ready))
    ]
}

/// Outcomes whose wait is the policy's own (not asked for by the API).
fn any_own_outcome(now: DateTime<Utc>) -> impl Strategy<Value = PollOutcome> {
    prop_oneof![
        Just(PollOutcome::Observed),
        Just(PollOutcome::Failed),
        Just(PollOutcome::RateLimited { retry_after: None }),
        // Within the default 10-minute not-found grace.
        (0i64..590).prop_map(move |s| PollOutcome::NotFound {
            since: now - chrono::Duration::seconds(s)
        }),
    ]
}

/// Any instant in 2026, any deadline within ten days either side, any time
/// in status up to two days (or a clock up to an hour ahead), any jitter.
fn any_facts() -> impl Strategy<Value = PollFacts> {
    (0i64..365 * 24 * 3600).prop_flat_map(|offset| {
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 1, 0, 0, 0).unwrap()
            + chrono::Duration::seconds(offset);
        (
            any_open_status(),
            any_own_outcome(now),
            0u32..40,
            proptest::option::of(-10 * 24 * 3600i64..10 * 24 * 3600),
            proptest::option::of(-3600i64..2 * 24 * 3600),
            0u64..2 * 24 * 3600,
            0.0f64..1.0,
        )
            .prop_map(
                move |(status, outcome, attempts, due, since, lead, jitter)| PollFacts {
                    status,
                    outcome,
                    attempts,
                    due_at: due.map(|s| now + chrono::Duration::seconds(s)),
                    status_since: since.map(|s| now - chrono::Duration::seconds(s)),
                    now,
                    due_soon_lead: Duration::from_secs(lead),
                    jitter,
                    timezone: chrono_tz::Asia::Seoul,
                },
            )
    })
}

fn wait(decision: Decision, now: DateTime<Utc>) -> Option<Duration> {
    match decision {
        Decision::PollAt(at) => Some((at - now).to_std().unwrap_or(Duration::ZERO)),
        _ => None,
    }
}

proptest! {
    /// Outside Retry-After and auth pauses, an open issuance is polled again
    /// within `max_interval`, and never at once: at least half of `interval`
    /// later (the error backoff's full jitter), or at an instant the policy
    /// aims for (a DUE_SOON rung, the deadline, the end of the quiet hours),
    /// which is always in the future.
    #[test]
    fn an_open_issuance_is_polled_again_within_max_interval_and_never_at_once(facts in any_facts()) {
        let poll = settings();
        let decision = decide(&facts, &poll);
        if decision == Decision::GiveUpNotFound {
            let not_found = matches!(facts.outcome, PollOutcome::NotFound { .. });
            prop_assert!(not_found, "gave up on {:?}", facts.outcome);
            return Ok(());
        }
        let Decision::PollAt(at) = decision else {
            return Err(TestCaseError::fail(format!("an open issuance must be polled: {decision:?}")));
        };
        prop_assert!(at > facts.now, "{at} is not after {}", facts.now);
        let waited = wait(decision, facts.now).unwrap();
        prop_assert!(waited <= poll.max_interval, "{waited:?} > max_interval");
    }

    /// Plain observations of an issuance without a deadline are never polled
    /// sooner than `interval` less its 10 % jitter.
    #[test]
    fn without_a_deadline_observations_wait_at_least_the_jittered_interval(
        facts in any_facts()
    ) {
        let poll = settings();
        let facts = PollFacts { outcome: PollOutcome::Observed, due_at: None, ..facts };
        let waited = wait(decide(&facts, &poll), facts.now).unwrap();
        let quiet_end = poll.quiet_hours.end_after(facts.now, facts.timezone);
        let aimed = quiet_end.is_some_and(|end| facts.now + chrono_duration(waited) == end);
        prop_assert!(aimed || waited >= poll.interval.mul_f64(0.9), "{waited:?}");
    }

    /// A Retry-After is never cut short, and an auth pause is waited out.
    #[test]
    fn retry_after_and_auth_pauses_are_waited_out(
        facts in any_facts(),
        asked in 0u64..7200,
    ) {
        let poll = settings();
        let asked = Duration::from_secs(asked);
        for outcome in [
            PollOutcome::RateLimited { retry_after: Some(asked) },
            PollOutcome::Unauthorized { pause: asked },
        ] {
            let facts = PollFacts { outcome, ..facts };
            let waited = wait(decide(&facts, &poll), facts.now).unwrap();
            prop_assert!(waited >= asked, "{outcome:?}: waited {waited:?}");
        }
    }

    /// A terminal status ends the watch, whatever else happened.
    #[test]
    fn a_terminal_status_always_settles(
        facts in any_facts(),
        status in prop_oneof![Just(Status::Done), Just(Status::Cancelled), Just(Status::Fail)],
    ) {
        let facts = PollFacts { status: Some(status), ..facts };
        prop_assert_eq!(decide(&facts, &settings()), Decision::Settled);
    }
}
