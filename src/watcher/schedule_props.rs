//! Properties of the loop's schedule: the invariants `schedule.rs` states,
//! checked on arbitrary sequences of what the loop holds, what its writes'
//! claims found, shutdowns and the passing of time.

use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::schedule::*;

/// One turn: what the loop holds, how much time passed before it, and what
/// happened meanwhile.
#[derive(Debug, Clone)]
struct Turn {
    held: Held,
    pause_ms: Option<u64>,
    elapsed_ms: u64,
    claim_found: Option<u8>,
    write_failed: bool,
    shut_down: bool,
}

fn any_turn() -> impl Strategy<Value = Turn> {
    (
        (0usize..70, 0usize..40, 0usize..50, any::<bool>()),
        proptest::option::of(0u64..5000),
        0u64..3000,
        proptest::option::of(0u8..3),
        proptest::bool::weighted(0.1),
        proptest::bool::weighted(0.05),
    )
        .prop_map(
            |(
                (ready, inflight, pending, writing),
                pause_ms,
                elapsed_ms,
                claim_found,
                write_failed,
                shut_down,
            )| Turn {
                held: Held {
                    ready,
                    inflight,
                    pending,
                    writing,
                    paused_until: None,
                },
                pause_ms,
                elapsed_ms,
                claim_found,
                write_failed,
                shut_down,
            },
        )
}

proptest! {
    #[test]
    fn every_step_keeps_the_loops_invariants(
        concurrency in 1usize..40,
        turns in prop::collection::vec(any_turn(), 1..60),
    ) {
        let start = Instant::now();
        let mut now = start;
        let mut schedule = Schedule::new(concurrency, now);
        for turn in turns {
            now += Duration::from_millis(turn.elapsed_ms);
            match turn.claim_found {
                Some(0) => schedule.claimed(now, ClaimOutcome::Full),
                Some(1) => schedule.claimed(now, ClaimOutcome::Short {
                    next_due_in: Some(Duration::from_millis(turn.elapsed_ms)),
                    recheck: Duration::from_secs(1),
                }),
                Some(_) => schedule.claimed(now, ClaimOutcome::StoreFailed),
                None => {}
            }
            if turn.write_failed {
                schedule.write_failed(now);
            }
            if turn.shut_down {
                schedule.shut_down(now);
            }
            let held = Held {
                paused_until: turn.pause_ms.map(|ms| now + Duration::from_millis(ms)),
                ..turn.held
            };
            let paused = held.paused_until.is_some_and(|until| until > now);
            let step = schedule.next(&held, now);

            // At most one write runs.
            prop_assert!(!(held.writing && step.write.is_some()), "{step:?}");
            // Polls start only from what was claimed, in free slots.
            prop_assert!(step.start_polls <= held.ready);
            prop_assert!(step.start_polls == 0 || held.inflight + step.start_polls <= concurrency);
            if let Some(Write { claim: Some(n) }) = step.write {
                // Up to two slot-fulls claimed ahead, in batches worth a commit.
                let ahead = held.ready + held.inflight;
                prop_assert!(ahead + n <= 2 * concurrency, "{ahead} + {n}");
                prop_assert!(n >= (concurrency / 4).max(1));
                // Nothing claimed during a pause or while draining.
                prop_assert!(!paused && !schedule.draining(), "{step:?}");
            }
            if schedule.draining() {
                prop_assert_eq!(step.start_polls, 0);
            }
            // Housekeeping never runs beside a write.
            prop_assert!(!(step.housekeep && held.writing));
            // The loop never spins: a wake is in the future.
            if let Some(wake) = step.wake {
                prop_assert!(wake > now, "wake {:?} not after now", wake - start);
            }
            if step.stop.is_some() {
                prop_assert!(schedule.draining());
                break;
            }
        }
    }
}

proptest! {
    /// Live daemons' shares never add up to more than the account's
    /// concurrency (while there are no more daemons than slots), each has at
    /// least one slot, and a daemon alone has them all.
    #[test]
    fn concurrency_shares_never_exceed_the_total(total in 1usize..4097, live in 0usize..40) {
        let share = concurrency_share(total, live);
        prop_assert!(share >= 1);
        if live <= total {
            prop_assert!(share * live.max(1) <= total);
        }
        prop_assert_eq!(concurrency_share(total, 1), total);
        prop_assert_eq!(concurrency_share(total, 0), total);
    }
}
