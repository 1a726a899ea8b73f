//! The loop's decisions, step by step: each test builds a `Schedule`, hands
//! it what the loop would hold at a given time and checks the step it returns.
//! The tests under paused time turn it as the loop does, sleeping until each
//! wake it asks for, so its timers are checked without any I/O.

use std::time::Duration;

use tokio::time::Instant;

use super::schedule::*;

/// Sixteen slots: two slot-fulls are 32, a quarter of the slots is 4.
const SLOTS: usize = 16;
const WRITE_ONLY: Option<Write> = Some(Write { claim: None });

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn held(ready: usize, inflight: usize, pending: usize) -> Held {
    Held {
        ready,
        inflight,
        pending,
        ..Held::default()
    }
}

fn writing(h: Held) -> Held {
    Held { writing: true, ..h }
}

fn claim(n: usize) -> Option<Write> {
    Some(Write { claim: Some(n) })
}

/// A short claim; the recheck is 30 s.
fn short(next_due_in: Option<f64>) -> ClaimOutcome {
    ClaimOutcome::Short {
        next_due_in: next_due_in.map(secs),
        recheck: secs(30.0),
    }
}

#[test]
fn a_new_loop_housekeeps_and_claims_two_slot_fulls_at_once() {
    let t0 = Instant::now();
    let step = Schedule::new(SLOTS, t0).decide(&Held::default(), t0);
    assert!(step.housekeep);
    assert_eq!(step.write, claim(32));
    assert_eq!(
        (step.start_polls, step.checkpoint, step.stop),
        (0, false, None)
    );
    assert_eq!(step.wake, None, "the running write wakes the loop");
}

#[test]
fn claimed_issuances_fill_the_free_slots_and_no_more() {
    let t0 = Instant::now();
    let s = Schedule::new(SLOTS, t0);
    assert_eq!(s.decide(&held(20, 10, 0), t0).start_polls, 6);
    assert_eq!(s.decide(&held(2, 10, 0), t0).start_polls, 2);
    assert_eq!(s.decide(&held(5, SLOTS, 0), t0).start_polls, 0);
}

#[test]
fn a_shared_concurrency_starts_no_more_than_the_share() {
    let t0 = Instant::now();
    let mut s = Schedule::new(SLOTS, t0);
    // Four daemons alive: four slots each.
    assert!(s.share_slots(concurrency_share(SLOTS, 4)));
    assert_eq!(s.decide(&held(20, 1, 0), t0).start_polls, 3);
    assert_eq!(
        s.decide(&held(20, 10, 0), t0).start_polls,
        0,
        "polls in flight beyond the new share finish; none starts"
    );
    assert!(!s.share_slots(4), "unchanged");
    // Alone again: every slot.
    assert!(s.share_slots(concurrency_share(SLOTS, 1)));
    assert_eq!(s.decide(&held(20, 10, 0), t0).start_polls, 6);
}

#[test]
fn a_full_claim_claims_again_with_the_next_results() {
    let (t0, t1) = (Instant::now(), Instant::now() + secs(0.5));
    // 32 claimed and 16 of them polling; four polls finished.
    let four_done = held(16, 12, 4);
    let mut full = Schedule::new(SLOTS, t0);
    full.claimed(t0, ClaimOutcome::Full);
    let step = full.decide(&four_done, t1);
    assert_eq!(step.start_polls, 4);
    assert_eq!(
        step.write,
        claim(4),
        "the results and a claim, in one commit"
    );
    let mut short_claim = Schedule::new(SLOTS, t0);
    short_claim.claimed(t0, short(Some(10.0)));
    assert_eq!(short_claim.decide(&four_done, t1).write, WRITE_ONLY);
}

#[test]
fn a_claim_below_a_quarter_of_the_slots_waits_while_polls_run() {
    let t0 = Instant::now();
    let s = Schedule::new(SLOTS, t0);
    // After starting polls: 13 waiting and 16 polling, 3 wanted.
    assert_eq!(s.decide(&held(16, 13, 3), t0).write, WRITE_ONLY);
    assert_eq!(s.decide(&held(16, 13, 0), t0).write, None);
    // 12 waiting and 16 polling: 4 wanted, the minimum batch.
    assert_eq!(s.decide(&held(16, 12, 0), t0).write, claim(4));
    // Idle, the loop wants everything.
    assert_eq!(s.decide(&held(0, 0, 0), t0).write, claim(32));
}

#[test]
fn a_refused_claim_is_retried_after_a_pause() {
    let t0 = Instant::now();
    let mut s = Schedule::new(SLOTS, t0);
    s.next(&Held::default(), t0);
    s.claimed(t0, ClaimOutcome::StoreFailed);
    let before = s.decide(&Held::default(), t0 + STORE_RETRY - secs(0.001));
    assert_eq!((before.write, before.wake), (None, Some(t0 + STORE_RETRY)));
    assert_eq!(
        s.decide(&Held::default(), t0 + STORE_RETRY).write,
        claim(32)
    );
}

#[test]
fn a_short_claim_looks_again_at_the_next_due_time_or_the_recheck() {
    let t0 = Instant::now();
    let mut s = Schedule::new(SLOTS, t0);
    for (next_due_in, again) in [(Some(5.0), 5.0), (Some(90.0), 30.0), (None, 30.0)] {
        s.claimed(t0, short(next_due_in));
        let idle = Held::default();
        assert_eq!(s.decide(&idle, t0 + secs(again - 0.001)).write, None);
        assert_eq!(s.decide(&idle, t0 + secs(again)).write, claim(32));
    }
}

#[test]
fn nothing_is_claimed_during_a_pause_but_results_are_still_written() {
    let t0 = Instant::now();
    let mut s = Schedule::new(SLOTS, t0);
    let paused = |h: Held| Held {
        paused_until: Some(t0 + secs(1.0)),
        ..h
    };
    let step = s.next(&paused(Held::default()), t0);
    assert!(step.housekeep);
    assert_eq!(step.write, None);
    assert_eq!(
        step.wake,
        Some(t0 + secs(1.0)),
        "the pause's end, before housekeeping's"
    );
    assert_eq!(s.decide(&paused(held(0, 0, 2)), t0).write, WRITE_ONLY);
    // Once the pause is over (the pacer no longer reports it), claim.
    assert_eq!(s.decide(&Held::default(), t0 + secs(1.0)).write, claim(32));
}

#[test]
fn draining_starts_and_claims_nothing_and_ends_when_all_is_written() {
    let t0 = Instant::now();
    let mut s = Schedule::new(SLOTS, t0);
    s.shut_down(t0);
    let t1 = t0 + secs(1.0);
    let step = s.decide(&held(5, 2, 0), t1);
    assert_eq!((step.start_polls, step.write, step.stop), (0, None, None));
    assert!(!step.housekeep, "due, but not while draining");
    assert_eq!(step.wake, Some(t0 + SHUTDOWN_DRAIN));
    let finished = s.decide(&held(5, 0, 3), t1);
    assert_eq!((finished.write, finished.stop), (WRITE_ONLY, None));
    assert_eq!(s.decide(&writing(held(5, 0, 0)), t1).stop, None);
    assert_eq!(s.decide(&held(5, 0, 0), t1).stop, Some(Stop::Done));
    // A second request does not move the deadline.
    s.shut_down(t1);
    assert_eq!(s.decide(&held(0, 1, 0), t1).wake, Some(t0 + SHUTDOWN_DRAIN));
}

#[test]
fn the_drain_deadline_abandons_only_what_is_unfinished() {
    let t0 = Instant::now();
    let mut s = Schedule::new(SLOTS, t0);
    s.shut_down(t0);
    let late = t0 + SHUTDOWN_DRAIN;
    let abandon = Step {
        stop: Some(Stop::Abandon),
        ..Step::default()
    };
    assert_eq!(s.decide(&held(0, 1, 0), late), abandon);
    assert_eq!(s.decide(&held(0, 0, 4), late), abandon);
    assert_eq!(s.decide(&held(3, 0, 0), late).stop, Some(Stop::Done));
}

#[test]
fn housekeeping_never_runs_while_a_write_is_in_flight() {
    let t0 = Instant::now();
    let t1 = t0 + secs(10.0);
    let mut s = Schedule::new(SLOTS, t0);
    let step = s.decide(&writing(Held::default()), t1);
    assert!(!step.housekeep);
    assert_eq!(step.wake, None, "the write's end wakes the loop");
    assert!(s.next(&Held::default(), t1).housekeep);
    assert!(
        !s.decide(&held(0, 3, 0), t1 + HOUSEKEEPING - secs(0.001))
            .housekeep
    );
    assert!(s.decide(&held(0, 3, 0), t1 + HOUSEKEEPING).housekeep);
}

#[test]
fn the_wal_is_checkpointed_only_when_idle_and_due() {
    let t0 = Instant::now();
    let due = t0 + CHECKPOINT_EVERY;
    let mut s = Schedule::new(SLOTS, t0);
    s.claimed(due - secs(1.0), short(Some(10.0))); // no claim due at `due`
    let idle = Held::default();
    assert!(!s.decide(&idle, due - secs(0.001)).checkpoint, "not yet");
    assert!(!s.decide(&held(0, 1, 0), due).checkpoint, "a poll runs");
    assert!(!s.decide(&held(1, 0, 0), due).checkpoint, "a poll starts");
    assert!(!s.decide(&held(0, 0, 1), due).checkpoint, "a write starts");
    assert!(!s.decide(&writing(idle), due).checkpoint, "a write runs");
    assert!(s.next(&idle, due).checkpoint);
    assert!(!s.decide(&idle, due + secs(1.0)).checkpoint, "just done");
}

/// Over many states: one write at a time, slots respected, and the loop
/// never spins (a wake lies ahead) nor waits for nothing.
#[test]
fn every_step_keeps_the_loops_invariants() {
    let t0 = Instant::now();
    let counts = [0, 1, 3, 4, SLOTS, 40];
    let mut cases = Vec::new();
    for (ready, inflight, pending) in counts
        .iter()
        .flat_map(|r| counts.iter().map(move |i| (*r, (*i).min(SLOTS))))
        .flat_map(|(r, i)| [(r, i, 0), (r, i, 2)])
    {
        for paused_until in [None, Some(t0 + secs(1.5))] {
            for writing in [false, true] {
                cases.push(Held {
                    ready,
                    inflight,
                    pending,
                    writing,
                    paused_until,
                });
            }
        }
    }
    for draining in [false, true] {
        let mut s = Schedule::new(SLOTS, t0);
        if draining {
            s.shut_down(t0 + secs(1.0));
        }
        for (held, since) in cases
            .iter()
            .flat_map(|h| [0.0, 1.0, 2.5, 61.0].map(|t| (h, t)))
        {
            let now = t0 + secs(since);
            let step = s.decide(held, now);
            let case = format!("{held:?} at +{since}s, draining {draining}: {step:?}");
            assert!(step.wake.is_none_or(|w| w > now), "spins: {case}");
            assert!(
                !(held.writing && step.write.is_some()),
                "two writes: {case}"
            );
            assert!(
                !(held.writing && step.housekeep),
                "housekeeps while writing: {case}"
            );
            assert!(
                held.inflight + step.start_polls <= SLOTS,
                "over the slots: {case}"
            );
            if let Some(Write { claim: Some(n) }) = step.write {
                assert!(!draining && n >= 4, "bad claim: {case}");
            }
            let waits_on_something = held.writing
                || step.write.is_some()
                || held.inflight + step.start_polls > 0
                || step.stop.is_some()
                || step.wake.is_some();
            assert!(waits_on_something, "waits for nothing: {case}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn after_a_short_claim_the_next_claim_waits_for_the_next_due_issuance() {
    let start = Instant::now();
    let mut s = Schedule::new(SLOTS, start);
    assert_eq!(s.next(&Held::default(), start).write, claim(32));
    // The write claimed 3 of 32; the next issuance falls due in 5 s.
    s.claimed(Instant::now(), short(Some(5.0)));
    let step = s.next(&held(3, 0, 0), Instant::now());
    assert_eq!((step.start_polls, step.write), (3, None));
    // Turn as the loop does, at each wake (housekeeping's too), until a write.
    let write = loop {
        let step = s.next(&held(0, 3, 0), Instant::now());
        if let Some(write) = step.write {
            break write;
        }
        tokio::time::sleep_until(step.wake.expect("a loop that will claim has a timer")).await;
    };
    assert_eq!(write, Write { claim: Some(29) });
    assert_eq!(start.elapsed(), secs(5.0));
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_polls_in_flight_the_drain_time_then_abandons_them() {
    let start = Instant::now();
    let mut s = Schedule::new(SLOTS, start);
    s.next(&held(0, 2, 0), start);
    s.shut_down(Instant::now());
    let stop = loop {
        let step = s.next(&held(4, 2, 0), Instant::now());
        if let Some(stop) = step.stop {
            break stop;
        }
        assert_eq!((step.start_polls, step.write), (0, None));
        tokio::time::sleep_until(step.wake.expect("the drain deadline")).await;
    };
    assert_eq!(stop, Stop::Abandon);
    assert_eq!(start.elapsed(), SHUTDOWN_DRAIN);
}

#[test]
fn a_wake_up_claims_at_once_but_not_before_a_failed_writes_retry() {
    let t0 = Instant::now();
    let mut s = Schedule::new(SLOTS, t0);
    s.next(&Held::default(), t0);
    s.claimed(t0, short(None));
    let t1 = t0 + secs(1.0);
    assert_eq!(s.decide(&Held::default(), t1).write, None);
    s.woken(t1);
    assert_eq!(s.decide(&Held::default(), t1).write, claim(32));

    s.claimed(t1, short(None));
    s.write_failed(t1);
    s.woken(t1);
    let step = s.decide(&Held::default(), t1);
    assert_eq!((step.write, step.wake), (None, Some(t1 + STORE_RETRY)));
}
