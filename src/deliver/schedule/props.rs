//! Properties of the delivery verdict, over arbitrary answers, attempt counts,
//! times and jitter.

use proptest::prelude::*;

use super::*;

const SPEC: Backoff = Backoff {
    first: Duration::from_secs(5),
    max: Duration::from_secs(6 * 3600),
    horizon: Duration::from_secs(3 * 24 * 3600),
};

fn any_answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        (100u16..600, proptest::option::of(0u64..200_000)).prop_map(|(code, after)| {
            Answer::Status {
                code,
                retry_after: after.map(Duration::from_secs),
            }
        }),
        "[a-z ]{0,20}".prop_map(|error| Answer::NoAnswer { error }),
    ]
}

fn instant(offset: i64) -> DateTime<Utc> {
    chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 1, 0, 0, 0).unwrap()
        + chrono::Duration::seconds(offset)
}

proptest! {
    /// A 2xx is delivered, whenever and however often it was tried before.
    #[test]
    fn a_2xx_is_always_delivered(
        code in 200u16..300,
        attempts in 0u32..1000,
        age in 0i64..30 * 24 * 3600,
        jitter in 0.0f64..1.0,
    ) {
        let answer = Answer::Status { code, retry_after: None };
        let verdict = judge(&answer, attempts, instant(0), instant(age), &SPEC, jitter);
        prop_assert_eq!(verdict, Verdict::Delivered);
        prop_assert_eq!(answer.problem(), None);
    }

    /// Nothing but a 2xx is delivered; a retry is never due before the
    /// `Retry-After` the receiver asked for (capped) nor before the backoff,
    /// except for the one last attempt when the retry horizon ends; and
    /// nothing is retried after that horizon.
    #[test]
    fn a_retry_waits_for_retry_after_and_the_horizon_bounds_it(
        answer in any_answer(),
        attempts in 0u32..1000,
        age in 0i64..4 * 24 * 3600,
        jitter in 0.0f64..1.0,
    ) {
        let (created, now) = (instant(0), instant(age));
        let give_up_at = created + span(SPEC.horizon);
        match judge(&answer, attempts, created, now, &SPEC, jitter) {
            Verdict::Delivered => prop_assert!(matches!(answer.status(), Some(200..=299))),
            Verdict::Disable => prop_assert_eq!(answer.status(), Some(410)),
            Verdict::GiveUp => prop_assert!(now >= give_up_at),
            Verdict::Retry { at } => {
                prop_assert!(now < give_up_at && at <= give_up_at);
                let asked = answer.retry_after().unwrap_or_default().min(RETRY_AFTER_CAP);
                let backoff = retry_delay(attempts.saturating_add(1), &SPEC, jitter);
                let earliest = now + span(asked.max(backoff));
                prop_assert!(at >= earliest || at == give_up_at, "{at} before {earliest}");
            }
        }
    }
}
