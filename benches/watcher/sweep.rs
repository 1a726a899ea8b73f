//! The trade-off, swept: the real policy function ([`policy::decide`], with
//! the real settings type) driven poll by poll over the simulator's own drawn
//! schedules ([`bunjang_sim::draw`]), in simulated milliseconds.
//!
//! No daemon, no HTTP and no real time: each poll observes the status the
//! simulator would answer at that instant (its `modifiedAt` truncated to the
//! second, as the API writes it), and the next poll is whatever `decide` says.
//! So a whole budget range runs in seconds, and the lags carry no scheduling
//! noise from an accelerated clock: WAITED (1–5 s long) is measured as well as
//! the exits from READY. The global rate never binds here (one poll per
//! issuance at a time, as with the one or two live issuances of a real
//! account); the end-to-end rows of `efficiency` check the same settings
//! through the daemon.

use std::time::Duration;

use bunjang_sim::{LifecycleConfig, draw};
use chrono::{DateTime, TimeZone, Utc};
use issuance_watcher::domain::status::Status;
use issuance_watcher::settings::{LeadLadder, PollSettings, QuietHours, Settings};
use issuance_watcher::watcher::flags::next_rung;
use issuance_watcher::watcher::policy::{self, Decision, PollFacts, PollOutcome};

/// How the next poll is chosen.
#[derive(Debug, Clone)]
pub(crate) enum Cadence {
    /// The real policy with these settings.
    Policy(Box<PollSettings>),
    /// Every poll this much later, whatever the status or deadline.
    Fixed(Duration),
}

/// What one sweep point measured.
#[derive(Debug, Default, Clone)]
pub(crate) struct Point {
    pub(crate) calls: u64,
    pub(crate) issuances: usize,
    pub(crate) done: usize,
    /// Lags (simulated seconds, sorted) of every change after the first observation.
    pub(crate) all: Vec<f64>,
    /// Of the changes to DONE: what a user waits for.
    pub(crate) done_lags: Vec<f64>,
    /// Of the changes out of READY (DONE, CANCELLED, FAIL).
    pub(crate) ready_lags: Vec<f64>,
    /// Of the changes out of WAITED (READY or FAIL).
    pub(crate) waited_lags: Vec<f64>,
}

impl Point {
    pub(crate) fn per_paid(&self) -> f64 {
        self.calls as f64 / self.done.max(1) as f64
    }
}

/// 10:00 KST, as in the end-to-end runs: due dates at the end of the next day.
pub(crate) fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 1, 0, 0).unwrap()
}

/// The built-in defaults: the production settings.
pub(crate) fn defaults() -> Settings {
    Settings::load_with_env(
        None,
        [(
            "ISSUANCE_WATCHER__API__ACCESS_KEY".to_owned(),
            "k".to_owned(),
        )],
    )
    .expect("the built-in defaults load")
}

/// Today's (the previous) defaults: READY paced by the deadline and the time in
/// READY alone, up to a 10-minute ceiling, no quiet hours.
pub(crate) fn previous_defaults(poll: &PollSettings) -> PollSettings {
    PollSettings {
        max_interval: Duration::from_secs(600),
        ready_interval: Duration::from_secs(600),
        quiet_hours: QuietHours::NONE,
        quiet_interval: Duration::from_secs(600),
        ready_divisor: 12,
        fresh_divisor: 4,
        ..poll.clone()
    }
}

/// The READY cadence of `poll` stretched by `k` (> 1: fewer calls): every
/// READY interval times `k`, every divisor over `k`; WAITED stays as it is.
pub(crate) fn scaled(poll: &PollSettings, k: f64) -> PollSettings {
    let div = |d: u32| ((f64::from(d) / k).round() as u32).clamp(1, 1000);
    PollSettings {
        ready_interval: poll.ready_interval.mul_f64(k),
        quiet_interval: poll.quiet_interval.mul_f64(k),
        max_interval: poll.max_interval.max(poll.quiet_interval.mul_f64(k)),
        ready_divisor: div(poll.ready_divisor),
        fresh_divisor: div(poll.fresh_divisor),
        ..poll.clone()
    }
}

/// Runs `count` issuances (the simulator's default lifecycle, seed `seed`, all
/// created at [`start`]) under `cadence`, until each settles or, with a
/// `horizon`, until that long after the start.
pub(crate) fn run(
    cadence: &Cadence,
    lifecycle: &LifecycleConfig,
    ladder: &LeadLadder,
    count: usize,
    seed: u64,
    horizon: Option<Duration>,
) -> Point {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
    let created = start().timestamp_millis();
    let end = horizon.map_or(i64::MAX, |h| created + h.as_millis() as i64);
    let mut point = Point {
        issuances: count,
        ..Point::default()
    };
    for seq in 0..count as u64 {
        let schedule = draw(lifecycle, seed, seq, created);
        let events: Vec<(i64, Status)> = schedule
            .events()
            .map(|(at, s)| (at, s.as_str().parse().expect("a known status")))
            .collect();
        if events.iter().any(|e| e.1 == Status::Done && e.0 <= end) {
            point.done += 1;
        }
        let due = DateTime::<Utc>::from_timestamp_millis(schedule.due_ms);
        // The first poll when the id is added, at creation.
        let mut t = created;
        let mut seen: Option<usize> = None;
        while t <= end {
            point.calls += 1;
            let i = events.iter().rposition(|e| e.0 <= t).unwrap_or(0);
            let (since_ms, status) = events[i];
            if let Some(before) = seen
                && before != i
            {
                let lag = (t - since_ms) as f64 / 1e3;
                point.all.push(lag);
                match (events[i - 1].1, status) {
                    (Status::Ready, Status::Done) => {
                        point.done_lags.push(lag);
                        point.ready_lags.push(lag);
                    }
                    (Status::Ready, _) => point.ready_lags.push(lag),
                    (Status::Waited, _) => point.waited_lags.push(lag),
                    _ => {}
                }
            }
            seen = Some(i);
            if status.is_terminal() {
                break;
            }
            let now = DateTime::<Utc>::from_timestamp_millis(t).expect("in range");
            let next = match cadence {
                Cadence::Fixed(every) => t + every.as_millis() as i64,
                Cadence::Policy(poll) => {
                    let facts = PollFacts {
                        status: Some(status),
                        outcome: PollOutcome::Observed,
                        attempts: 0,
                        // The API shows the due date once the account exists.
                        due_at: due.filter(|_| status == Status::Ready),
                        // modifiedAt: KST text with whole seconds.
                        status_since: DateTime::<Utc>::from_timestamp_millis(
                            since_ms.div_euclid(1000) * 1000,
                        ),
                        now,
                        due_soon_lead: next_rung(ladder, due, now),
                        jitter: rng.f64(),
                        timezone: chrono_tz::Asia::Seoul,
                    };
                    match policy::decide(&facts, poll) {
                        Decision::PollAt(at) => at.timestamp_millis().max(t + 1),
                        other => panic!("a READY or WAITED poll decided {other:?}"),
                    }
                }
            };
            t = next;
        }
    }
    for lags in [
        &mut point.all,
        &mut point.done_lags,
        &mut point.ready_lags,
        &mut point.waited_lags,
    ] {
        lags.sort_by(f64::total_cmp);
    }
    point
}
