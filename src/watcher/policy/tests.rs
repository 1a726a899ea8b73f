//! Unit tests of `policy.rs`.

use super::*;
use chrono::TimeZone;

pub(super) fn settings() -> PollSettings {
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

/// 12:00 in Seoul: a paying hour.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 0).unwrap()
}

/// The same day at `hour`:00 in Seoul.
fn kst(hour: u32) -> DateTime<Utc> {
    now() + chrono::Duration::hours(i64::from(hour) - 12)
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
        timezone: chrono_tz::Asia::Seoul,
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
fn ready_polling_keeps_the_ready_interval_and_tightens_in_the_last_minutes() {
    let poll = settings();
    let at = |left: u64| wait_of(decide(&ready_due_in(Duration::from_secs(left)), &poll));
    assert_eq!(at(36 * 3600), poll.ready_interval);
    assert_eq!(at(3600), poll.ready_interval);
    // Ten minutes left: a fraction of the time left, below the READY cadence.
    assert_eq!(at(600), Duration::from_secs(600) / poll.ready_divisor);
    assert!(at(600) < poll.ready_interval);
    assert_eq!(at(60), poll.interval);
    let waits: Vec<Duration> = [1, 60, 300, 600, 1200, 3600, 86_400]
        .into_iter()
        .map(at)
        .collect();
    assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
}

/// READY for `in_ready` so far, due in 30 hours (the deadline alone would wait
/// `ready_interval`).
fn ready_for(in_ready: Duration) -> PollFacts {
    PollFacts {
        status_since: Some(now() - chrono_duration(in_ready)),
        ..ready_due_in(Duration::from_secs(30 * 3600))
    }
}

#[test]
fn fresh_ready_issuances_are_polled_densely_then_at_the_ready_interval() {
    let poll = settings();
    let at = |in_ready: u64| wait_of(decide(&ready_for(Duration::from_secs(in_ready)), &poll));
    assert_eq!(at(0), poll.interval);
    assert_eq!(at(1), poll.interval);
    // In between: a fraction of the time in READY, jittered (jitter 0.5: exact).
    assert_eq!(at(600), Duration::from_secs(600) / poll.fresh_divisor);
    assert!(at(600) > poll.interval && at(600) < poll.ready_interval);
    let waits: Vec<Duration> = [0, 60, 300, 900, 1800, 3600, 86_400]
        .into_iter()
        .map(at)
        .collect();
    assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
    assert_eq!(*waits.last().unwrap(), poll.ready_interval);
}

#[test]
fn quiet_hours_are_polled_calmly_with_one_poll_as_they_end() {
    let poll = settings();
    assert!(
        !poll.quiet_hours.is_empty(),
        "quiet hours are on by default"
    );
    let at = |now: DateTime<Utc>, in_ready: i64| PollFacts {
        now,
        status_since: Some(now - chrono::Duration::seconds(in_ready)),
        due_at: Some(now + chrono::Duration::hours(20)),
        ..facts(Some(Status::Ready), PollOutcome::Observed)
    };
    let wait = |f: PollFacts| match decide(&f, &poll) {
        Decision::PollAt(t) => (t - f.now).to_std().unwrap(),
        other => panic!("{other:?}"),
    };
    // 03:00, READY for hours: the quiet cadence.
    assert_eq!(wait(at(kst(3), 20 * 3600)), poll.quiet_interval);
    assert!(poll.quiet_interval > poll.ready_interval);
    // Just READY at 03:00 (someone paying at checkout at night): still dense.
    assert_eq!(wait(at(kst(3), 0)), poll.interval);
    // Two minutes before the quiet hours end: the next poll is when they end.
    let end = kst(7);
    let f = at(end - chrono::Duration::minutes(2), 20 * 3600);
    assert_eq!(decide(&f, &poll), Decision::PollAt(end));
    // At 07:00 and at noon: the READY cadence.
    assert_eq!(wait(at(kst(7), 20 * 3600)), poll.ready_interval);
    assert_eq!(wait(at(kst(12), 20 * 3600)), poll.ready_interval);
    // No quiet hours: every hour is a paying hour.
    let always = PollSettings {
        quiet_hours: crate::settings::QuietHours::NONE,
        ..settings()
    };
    assert_eq!(
        decide(&at(kst(3), 20 * 3600), &always),
        Decision::PollAt(kst(3) + chrono_duration(always.ready_interval))
    );
    // The quiet hours are read in the configured zone: 03:00 UTC is noon in Seoul.
    let utc = PollFacts {
        timezone: chrono_tz::UTC,
        ..at(kst(3), 20 * 3600)
    };
    assert_eq!(wait(utc), poll.ready_interval);
}

/// The shape before `ready_interval` and `quiet_hours` existed is these
/// settings: READY paced by the deadline and the time in READY alone, up to
/// `max_interval`.
#[test]
fn a_ready_interval_of_max_interval_and_no_quiet_hours_is_the_previous_shape() {
    let old = PollSettings {
        ready_interval: Duration::from_secs(600),
        max_interval: Duration::from_secs(600),
        quiet_hours: crate::settings::QuietHours::NONE,
        ready_divisor: 12,
        fresh_divisor: 4,
        ..settings()
    };
    let wait = |f: PollFacts| wait_of(decide(&f, &old));
    assert_eq!(
        wait(ready_due_in(Duration::from_secs(36 * 3600))),
        old.max_interval
    );
    assert_eq!(
        wait(ready_due_in(Duration::from_secs(3600))),
        Duration::from_secs(300)
    );
    assert_eq!(
        wait(ready_for(Duration::from_secs(120))),
        Duration::from_secs(30)
    );
    assert_eq!(
        wait(ready_for(Duration::from_secs(86_400))),
        old.max_interval
    );
}

#[test]
fn the_shortest_of_the_fresh_the_deadline_and_the_hourly_waits_applies() {
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
        status_since: Some(now() - chrono::Duration::seconds(200)),
        ..near
    };
    assert_eq!(
        wait_of(decide(&fresh, &poll)),
        (Duration::from_secs(200) / poll.fresh_divisor).max(poll.interval)
    );
    // Unknown start, deadline far: the hour of day alone.
    let unknown = PollFacts {
        status_since: None,
        ..ready_for(Duration::ZERO)
    };
    assert_eq!(wait_of(decide(&unknown, &poll)), poll.ready_interval);
    // No due date at all: the same, never the calm ceiling.
    let no_due = PollFacts {
        due_at: None,
        ..unknown
    };
    assert_eq!(wait_of(decide(&no_due, &poll)), poll.ready_interval);
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
    assert_eq!(
        wait_of(decide(&ahead(9 * 3600), &poll)),
        poll.ready_interval
    );
}

/// Settings whose READY cadence alone would wait long (the calm ceiling), so
/// the deadline polls show.
fn calm() -> PollSettings {
    PollSettings {
        ready_interval: Duration::from_secs(600),
        ..settings()
    }
}

#[test]
fn the_fresh_wait_does_not_move_the_due_soon_and_after_due_polls() {
    let poll = calm();
    let lead = Duration::from_secs(6 * 3600);
    // Long in READY, so the fresh wait is long; DUE_SOON starts in a minute.
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
        ..calm()
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
    let lead = Duration::from_secs(6 * 3600);
    // Whether the READY cadence is calm or not.
    for (poll, before) in [(calm(), 60), (settings(), 5)] {
        let f = ready_due_in(lead + Duration::from_secs(before));
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
}

#[test]
fn one_poll_comes_shortly_after_the_due_date() {
    // With divisor 1 the computed interval would overshoot the deadline by far.
    let poll = PollSettings {
        ready_divisor: 1,
        ..calm()
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
    // An hour left, jitter 0.5: the READY cadence, exactly.
    let expected = poll.ready_interval;
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
    for (status, at) in [None, Some(Status::Waited), Some(Status::Ready)]
        .into_iter()
        .flat_map(|s| {
            [
                (s, now()),
                (s, kst(3)),
                (s, kst(7) - chrono::Duration::seconds(1)),
            ]
        })
    {
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
                            now: at,
                            ..facts(status, outcome)
                        };
                        let Decision::PollAt(next) = decide(&f, &poll) else {
                            panic!("{f:?}")
                        };
                        let wait = (next - at).to_std().unwrap();
                        assert!(wait <= poll.max_interval, "{f:?}");
                        // Never more often than `interval`, except the one poll as
                        // the quiet hours end.
                        if outcome == PollOutcome::Observed && next != kst(7) {
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
