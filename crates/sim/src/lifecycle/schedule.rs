//! One issuance's drawn future ([`Schedule`]) and the state machine over it:
//! WAITED at creation, then READY (or FAIL), then how READY ends, unless a
//! forced change (an API cancellation, `/_sim` forcing) freezes the schedule.

use super::deposit::deposit_ms;
use super::instants::{due_date_ms, duration_ms, uniform_ms};
use super::status::Status;
use crate::config::{DueOutcome, LifecycleConfig};

/// Banks that issue the virtual accounts (a small, plausible list).
pub const BANKS: [&str; 6] = [
    "국민은행",
    "신한은행",
    "우리은행",
    "하나은행",
    "농협은행",
    "기업은행",
];
/// The account holder name the API shows.
pub const VBANK_HOLDER: &str = "번개장터";

/// How READY ends, if it ends by schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Done,
    Cancelled,
    Fail,
}

impl Settle {
    pub fn status(self) -> Status {
        match self {
            Settle::Done => Status::Done,
            Settle::Cancelled => Status::Cancelled,
            Settle::Fail => Status::Fail,
        }
    }
}

/// One issuance's drawn future. Kept small (about 56 bytes): it is stored per issuance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub created_ms: i64,
    /// When WAITED ends (in READY, or in FAIL when `failed`).
    pub prepared_ms: i64,
    pub failed: bool,
    /// `vbankDueDate`: 23:59:59 KST, `due_lead_days` after the creation day.
    pub due_ms: i64,
    /// How and when READY ends by schedule; `None`: it stays READY.
    pub settle: Option<(i64, Settle)>,
    /// The 12-digit virtual account number (drawn even for FAIL, for forced READY).
    pub account: u64,
    /// Index into `BANKS`.
    pub bank: u8,
}

/// A status change: at `at_ms`, the issuance became `status`.
pub type Event = (i64, Status);

/// A well-mixed 64-bit value from the run seed and an issuance's sequence
/// number (splitmix64), so neighbouring sequence numbers draw unrelated futures.
pub fn issuance_seed(seed: u64, seq: u64) -> u64 {
    let mut z = seed
        ^ seq
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0x6A09_E667_F3BC_C909);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Draws an issuance's future. Always consumes the same number of random values
/// for a given deposit timing (one for `Uniform` and `Within`, two for `Daily`,
/// the last ones drawn), so changing one probability does not reshuffle unrelated
/// draws.
pub fn draw(config: &LifecycleConfig, seed: u64, seq: u64, created_ms: i64) -> Schedule {
    let mut rng = fastrand::Rng::with_seed(issuance_seed(seed, seq));
    let waited = uniform_ms(
        &mut rng,
        duration_ms(config.waited_min),
        duration_ms(config.waited_max),
    );
    let prepared_ms = created_ms.saturating_add(waited);
    let failed = rng.f64() < config.p_fail;
    let account = rng.u64(100_000_000_000..=999_999_999_999);
    let bank = rng.u8(..BANKS.len() as u8);
    let outcome = rng.f64();
    let due_ms = due_date_ms(created_ms, config.due_lead_days);
    let when = deposit_ms(&config.deposit, &mut rng, prepared_ms, due_ms);
    let at_due_ms = due_ms
        .max(prepared_ms)
        .saturating_add(duration_ms(config.at_due_delay));
    let at_due = match config.at_due {
        DueOutcome::StayReady => None,
        DueOutcome::Cancel => Some((at_due_ms, Settle::Cancelled)),
        DueOutcome::Fail => Some((at_due_ms, Settle::Fail)),
    };
    let settle = match when {
        _ if failed => None,
        Some(at) if outcome < config.p_done => Some((at, Settle::Done)),
        Some(at) if outcome < config.p_done + config.p_cancel => Some((at, Settle::Cancelled)),
        _ => at_due,
    };
    Schedule {
        created_ms,
        prepared_ms,
        failed,
        due_ms,
        settle,
        account,
        bank,
    }
}

impl Schedule {
    /// The scheduled changes, in order: WAITED at creation, READY or FAIL, then the settlement.
    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        let prepared = if self.failed {
            Status::Fail
        } else {
            Status::Ready
        };
        let settle = if self.failed {
            None
        } else {
            self.settle.map(|(at, s)| (at, s.status()))
        };
        [
            (self.created_ms, Status::Waited),
            (self.prepared_ms, prepared),
        ]
        .into_iter()
        .chain(settle)
    }
}

/// The effective history up to `until_ms`: scheduled changes before the first
/// forced one, then the forced ones (a forced status freezes the schedule).
/// Consecutive repeats of the same status are not changes and are dropped.
/// Creation (WAITED) is always included, even if `until_ms` precedes it.
pub fn timeline(schedule: &Schedule, forced: &[Event], until_ms: i64) -> Vec<Event> {
    let cut = forced.first().map_or(i64::MAX, |(at, _)| *at);
    let scheduled = schedule
        .events()
        .enumerate()
        .filter(|(i, (at, _))| *i == 0 || *at < cut)
        .map(|(_, e)| e);
    let mut out: Vec<Event> = Vec::with_capacity(4);
    for (at, status) in scheduled.chain(forced.iter().cloned()) {
        if at > until_ms && !out.is_empty() {
            break;
        }
        if out.last().is_some_and(|(_, last)| *last == status) {
            continue;
        }
        out.push((at, status));
    }
    out
}

/// What the API shows at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub status: Status,
    pub modified_ms: i64,
    /// Whether the virtual account exists (the issuance has been READY by now).
    pub has_account: bool,
}

pub fn state_at(schedule: &Schedule, forced: &[Event], at_ms: i64) -> State {
    let history = timeline(schedule, forced, at_ms);
    let has_account = history.iter().any(|(_, s)| *s == Status::Ready);
    let (modified_ms, status) = history
        .last()
        .cloned()
        .unwrap_or((schedule.created_ms, Status::Waited));
    State {
        status,
        modified_ms,
        has_account,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::instants::ms;
    use super::*;
    use crate::config::DepositTiming;

    /// Created at 0, prepared at 1 s (or failed then), due at 100 s, paid at 50 s.
    fn prepared_at_1s_done_at_50s(failed: bool) -> Schedule {
        Schedule {
            created_ms: 0,
            prepared_ms: 1_000,
            failed,
            due_ms: 100_000,
            settle: Some((50_000, Settle::Done)),
            account: 123_456_789_012,
            bank: 0,
        }
    }

    #[test]
    fn the_same_seed_and_sequence_draw_the_same_schedule() {
        let config = LifecycleConfig::default();
        let created = ms("2026-01-01T00:00:00Z");
        assert_eq!(draw(&config, 7, 3, created), draw(&config, 7, 3, created));
        let others: Vec<_> = (0..20).map(|seq| draw(&config, 7, seq, created)).collect();
        assert!(others.windows(2).any(|w| w[0].account != w[1].account));
        assert_ne!(
            draw(&config, 7, 3, created).account,
            draw(&config, 8, 3, created).account
        );
    }

    #[test]
    fn schedules_respect_the_configured_ranges() {
        let config = LifecycleConfig::default();
        let created = ms("2026-01-01T00:00:00Z");
        for seq in 0..2_000 {
            let s = draw(&config, 1, seq, created);
            let waited = s.prepared_ms - s.created_ms;
            assert!((1_000..=5_000).contains(&waited), "waited {waited}");
            assert!((100_000_000_000..=999_999_999_999).contains(&s.account));
            assert!((s.bank as usize) < BANKS.len());
            if let Some((at, _)) = s.settle {
                assert!(
                    at >= s.prepared_ms && at <= s.due_ms,
                    "settles out of READY"
                );
            }
        }
    }

    #[test]
    fn outcome_frequencies_follow_the_probabilities() {
        let config = LifecycleConfig::default();
        let created = ms("2026-01-01T00:00:00Z");
        let n = 20_000;
        let schedules: Vec<_> = (0..n).map(|seq| draw(&config, 99, seq, created)).collect();
        let share = |f: &dyn Fn(&Schedule) -> bool| {
            schedules.iter().filter(|s| f(s)).count() as f64 / n as f64
        };
        let fail = share(&|s| s.failed);
        let done = share(&|s| matches!(s.settle, Some((_, Settle::Done))));
        let cancelled_early =
            share(&|s| matches!(s.settle, Some((at, Settle::Cancelled)) if at < s.due_ms));
        assert!((fail - 0.03).abs() < 0.01, "fail {fail}");
        assert!((done - 0.97 * 0.80).abs() < 0.02, "done {done}");
        assert!(
            (cancelled_early - 0.97 * 0.07).abs() < 0.02,
            "cancelled {cancelled_early}"
        );
    }

    #[test]
    fn status_follows_the_schedule_over_time() {
        let s = prepared_at_1s_done_at_50s(false);
        assert_eq!(
            state_at(&s, &[], 500),
            State {
                status: Status::Waited,
                modified_ms: 0,
                has_account: false
            }
        );
        assert_eq!(
            state_at(&s, &[], 1_000),
            State {
                status: Status::Ready,
                modified_ms: 1_000,
                has_account: true
            }
        );
        assert_eq!(
            state_at(&s, &[], 60_000),
            State {
                status: Status::Done,
                modified_ms: 50_000,
                has_account: true
            }
        );
        // Before creation (clock skew) it is still WAITED, never nothing.
        assert_eq!(state_at(&s, &[], -5).status, Status::Waited);
    }

    #[test]
    fn a_failed_issuance_never_gets_an_account() {
        let s = prepared_at_1s_done_at_50s(true);
        let state = state_at(&s, &[], 200_000);
        assert_eq!(state.status, Status::Fail);
        assert!(!state.has_account);
        assert_eq!(timeline(&s, &[], 200_000).len(), 2);
    }

    #[test]
    fn a_forced_change_freezes_the_schedule() {
        let s = prepared_at_1s_done_at_50s(false);
        let forced = [
            (10_000, Status::Cancelled),
            (20_000, Status::parse("WEIRD")),
        ];
        assert_eq!(
            timeline(&s, &forced, i64::MAX),
            vec![
                (0, Status::Waited),
                (1_000, Status::Ready),
                (10_000, Status::Cancelled),
                (20_000, Status::parse("WEIRD"))
            ]
        );
        assert_eq!(state_at(&s, &forced, 15_000).status, Status::Cancelled);
        // Forcing the current status is not a change.
        assert_eq!(timeline(&s, &[(5_000, Status::Ready)], i64::MAX).len(), 2);
    }

    #[test]
    fn due_outcomes_are_configurable() {
        let mut config = LifecycleConfig {
            p_fail: 0.0,
            p_done: 0.0,
            p_cancel: 0.0,
            ..LifecycleConfig::default()
        };
        config.at_due_delay = Duration::from_secs(60);
        let s = draw(&config, 1, 1, 0);
        assert_eq!(s.settle, Some((s.due_ms + 60_000, Settle::Cancelled)));
        config.at_due = DueOutcome::Fail;
        assert_eq!(
            draw(&config, 1, 1, 0).settle,
            Some((s.due_ms + 60_000, Settle::Fail))
        );
        config.at_due = DueOutcome::StayReady;
        assert_eq!(draw(&config, 1, 1, 0).settle, None);
    }

    #[test]
    fn within_timing_pays_soon_after_ready() {
        let config = LifecycleConfig {
            p_fail: 0.0,
            p_done: 1.0,
            deposit: DepositTiming::Within {
                min: Duration::from_secs(60),
                max: Duration::from_secs(120),
            },
            ..LifecycleConfig::default()
        };
        for seq in 0..100 {
            let s = draw(&config, 3, seq, 0);
            let (at, how) = s.settle.unwrap();
            assert_eq!(how, Settle::Done);
            assert!((60_000..=120_000).contains(&(at - s.prepared_ms)));
        }
    }

    /// Deposit instants of `n` issuances created at `created` that all pay (no FAIL,
    /// Schedules of `n` issuances created at `created` that all pay (no FAIL,
    /// no cancel) with the given timing, and stay READY if they do not.
    fn paying(deposit: DepositTiming, created: i64, n: u64) -> Vec<Schedule> {
        let config = LifecycleConfig {
            p_fail: 0.0,
            p_done: 1.0,
            p_cancel: 0.0,
            deposit,
            at_due: DueOutcome::StayReady,
            ..LifecycleConfig::default()
        };
        (0..n).map(|seq| draw(&config, 5, seq, created)).collect()
    }

    #[test]
    fn a_deposit_past_the_due_date_leaves_the_configured_due_outcome() {
        // Prompt payments with a mean far beyond the due date mostly never come.
        let slow = DepositTiming::Daily {
            prompt_share: 1.0,
            prompt_mean: Duration::from_secs(1000 * 3600),
            hour_weights: crate::config::DEFAULT_HOUR_WEIGHTS,
        };
        let drawn = paying(slow, ms("2026-11-25T01:00:00Z"), 1_000);
        let unpaid = drawn.iter().filter(|s| s.settle.is_none()).count();
        assert!(unpaid > 900, "{unpaid} of 1000 stay READY");
        for s in &drawn {
            if let Some((at, how)) = s.settle {
                assert!(at <= s.due_ms && how == Settle::Done, "{s:?}");
            }
        }
    }

    #[test]
    fn the_deposit_timing_does_not_disturb_the_other_draws() {
        let created = ms("2026-11-25T01:00:00Z");
        let uniform = paying(DepositTiming::Uniform, created, 50);
        let daily = paying(DepositTiming::daily(), created, 50);
        for (u, d) in uniform.iter().zip(&daily) {
            assert_eq!(
                (u.prepared_ms, u.failed, u.account, u.bank),
                (d.prepared_ms, d.failed, d.account, d.bank)
            );
        }
    }
}
