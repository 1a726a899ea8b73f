//! The pure lifecycle model: no I/O, no clock, no locks.
//!
//! At creation an issuance draws its whole future (a [`Schedule`]) from an RNG
//! seeded with the simulator seed and the issuance's sequence number, so the
//! result does not depend on request order or timing. Its status at any instant
//! is then a function of that schedule plus the rare forced changes (API
//! cancellations, `/_sim` forcing). Nothing runs per issuance: a million
//! issuances cost a million small structs and no timers.
//!
//! Instants are milliseconds since the Unix epoch (UTC). KST has been a fixed
//! UTC+9 since 1988, so day boundaries are plain integer arithmetic.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::config::{DepositTiming, DueOutcome, LifecycleConfig};

/// Korea Standard Time, in milliseconds east of UTC.
pub const KST_OFFSET_MS: i64 = 9 * 3_600_000;
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

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

/// An issuance status as the API spells it; `Other` carries anything forced
/// through `/_sim` verbatim, so clients can be tested against unknown statuses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    Waited,
    Ready,
    Done,
    Cancelled,
    Fail,
    Other(Arc<str>),
}

impl Status {
    pub fn as_str(&self) -> &str {
        match self {
            Status::Waited => "WAITED",
            Status::Ready => "READY",
            Status::Done => "DONE",
            Status::Cancelled => "CANCELLED",
            Status::Fail => "FAIL",
            Status::Other(s) => s,
        }
    }

    /// Any string is a status; the five documented ones map to their variants.
    pub fn parse(s: &str) -> Status {
        match s {
            "WAITED" => Status::Waited,
            "READY" => Status::Ready,
            "DONE" => Status::Done,
            "CANCELLED" => Status::Cancelled,
            "FAIL" => Status::Fail,
            other => Status::Other(Arc::from(other)),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Status::parse(&s))
    }
}

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
    /// Index into [`BANKS`].
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

/// 23:59:59 KST on the day `lead_days` after the KST day of `created_ms`.
pub fn due_date_ms(created_ms: i64, lead_days: u32) -> i64 {
    let kst_day = (created_ms + KST_OFFSET_MS).div_euclid(DAY_MS);
    (kst_day + i64::from(lead_days) + 1) * DAY_MS - 1_000 - KST_OFFSET_MS
}

fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Uniform in `[lo, hi]` (swapped if given backwards).
fn uniform_ms(rng: &mut fastrand::Rng, lo: i64, hi: i64) -> i64 {
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    rng.i64(lo..=hi)
}

/// The `Daily` deposit instant: with probability `prompt_share` (decided by `coin`)
/// READY plus an exponential delay of mean `prompt_mean` (from `u`), which may
/// fall past the due date; otherwise an instant in `[ready_ms, due_ms]` with a
/// density proportional to the weight of its KST hour (from `u`, by inverting the
/// cumulative weight). Weights that are negative or not finite count as zero;
/// with no weight at all in the window the instant is uniform in it.
fn daily_ms(
    prompt_share: f64,
    prompt_mean: std::time::Duration,
    weights: &[f64; 24],
    ready_ms: i64,
    due_ms: i64,
    coin: f64,
    u: f64,
) -> i64 {
    if coin < prompt_share {
        let delay = -(1.0 - u).ln() * prompt_mean.as_secs_f64() * 1e3;
        return ready_ms.saturating_add(delay.min(i64::MAX as f64 / 4.0) as i64);
    }
    let hi = due_ms.max(ready_ms);
    let w = weights.map(|w| if w.is_finite() { w.max(0.0) } else { 0.0 });
    // cum[h]: weight of a day before hour h; a weight is per hour of time.
    let mut cum = [0.0; 25];
    for h in 0..24 {
        cum[h + 1] = cum[h] + w[h];
    }
    let day_weight = cum[24];
    // Cumulative weight from the KST epoch to `ms`, in weight-hours.
    let weight_before = |ms: i64| -> f64 {
        let kst = ms + KST_OFFSET_MS;
        let day = kst.div_euclid(DAY_MS);
        let in_day = kst.rem_euclid(DAY_MS);
        let hour = (in_day / HOUR_MS) as usize;
        let frac = (in_day % HOUR_MS) as f64 / HOUR_MS as f64;
        day as f64 * day_weight + cum[hour] + w[hour] * frac
    };
    let (from, to) = (weight_before(ready_ms), weight_before(hi));
    if to <= from {
        return ready_ms + ((hi - ready_ms) as f64 * u) as i64;
    }
    let target = from + u * (to - from);
    let day = (target / day_weight).floor();
    let rest = target - day * day_weight;
    // The hour holding `rest`: the last one with positive weight that starts at or before it.
    let hour = (0..24)
        .rev()
        .find(|&h| w[h] > 0.0 && cum[h] <= rest)
        .unwrap_or(0);
    let frac = ((rest - cum[hour]) / w[hour].max(f64::MIN_POSITIVE)).clamp(0.0, 1.0);
    let kst = day as i64 * DAY_MS + hour as i64 * HOUR_MS + (frac * HOUR_MS as f64) as i64;
    (kst - KST_OFFSET_MS).clamp(ready_ms, hi)
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
    let when = match &config.deposit {
        DepositTiming::Uniform => Some(uniform_ms(&mut rng, prepared_ms, due_ms.max(prepared_ms))),
        DepositTiming::Within { min, max } => {
            let at = prepared_ms.saturating_add(uniform_ms(
                &mut rng,
                duration_ms(*min),
                duration_ms(*max),
            ));
            (at <= due_ms).then_some(at)
        }
        DepositTiming::Daily {
            prompt_share,
            prompt_mean,
            hour_weights,
        } => {
            let (coin, u) = (rng.f64(), rng.f64());
            let at = daily_ms(
                *prompt_share,
                *prompt_mean,
                hour_weights,
                prepared_ms,
                due_ms,
                coin,
                u,
            );
            (at <= due_ms).then_some(at)
        }
    };
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

/// The API's datetime format: naive KST, second precision, no offset.
pub fn format_kst(ms: i64) -> String {
    let kst = FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset");
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) => t
            .with_timezone(&kst)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string(),
        None => "1970-01-01T09:00:00".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::config;
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn the_due_date_is_the_end_of_the_next_kst_day() {
        // 2023-10-27 10:00 KST
        assert_eq!(
            format_kst(due_date_ms(ms("2023-10-27T01:00:00Z"), 1)),
            "2023-10-28T23:59:59"
        );
        // 2023-10-27 23:30 KST is 14:30 UTC the same day: still the 27th in Seoul.
        assert_eq!(
            format_kst(due_date_ms(ms("2023-10-27T14:30:00Z"), 1)),
            "2023-10-28T23:59:59"
        );
        // 2023-10-28 00:30 KST is still the 27th in UTC.
        assert_eq!(
            format_kst(due_date_ms(ms("2023-10-27T15:30:00Z"), 1)),
            "2023-10-29T23:59:59"
        );
        assert_eq!(
            format_kst(due_date_ms(ms("2023-10-27T01:00:00Z"), 0)),
            "2023-10-27T23:59:59"
        );
    }

    #[test]
    fn datetimes_are_naive_kst_truncated_to_seconds() {
        assert_eq!(
            format_kst(ms("2023-10-27T01:00:05.999Z")),
            "2023-10-27T10:00:05"
        );
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
        let s = Schedule {
            created_ms: 0,
            prepared_ms: 1_000,
            failed: false,
            due_ms: 100_000,
            settle: Some((50_000, Settle::Done)),
            account: 123_456_789_012,
            bank: 0,
        };
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
        let s = Schedule {
            created_ms: 0,
            prepared_ms: 1_000,
            failed: true,
            due_ms: 100_000,
            settle: Some((50_000, Settle::Done)),
            account: 1,
            bank: 0,
        };
        let state = state_at(&s, &[], 200_000);
        assert_eq!(state.status, Status::Fail);
        assert!(!state.has_account);
        assert_eq!(timeline(&s, &[], 200_000).len(), 2);
    }

    #[test]
    fn a_forced_change_freezes_the_schedule() {
        let s = Schedule {
            created_ms: 0,
            prepared_ms: 1_000,
            failed: false,
            due_ms: 100_000,
            settle: Some((50_000, Settle::Done)),
            account: 1,
            bank: 0,
        };
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
    /// no cancel), with the given timing; `None` for a deposit past the due date.
    fn deposits(
        deposit: DepositTiming,
        created: i64,
        lead_days: u32,
        n: u64,
    ) -> Vec<(Schedule, Option<i64>)> {
        let config = LifecycleConfig {
            p_fail: 0.0,
            p_done: 1.0,
            p_cancel: 0.0,
            due_lead_days: lead_days,
            deposit,
            at_due: DueOutcome::StayReady,
            ..LifecycleConfig::default()
        };
        (0..n)
            .map(|seq| {
                let s = draw(&config, 5, seq, created);
                (s, s.settle.map(|(at, _)| at))
            })
            .collect()
    }

    fn kst_hour(ms: i64) -> usize {
        ((ms + KST_OFFSET_MS).rem_euclid(DAY_MS) / HOUR_MS) as usize
    }

    #[test]
    fn the_default_deposit_timing_is_daily() {
        assert_eq!(LifecycleConfig::default().deposit, DepositTiming::daily());
    }

    #[test]
    fn daily_timing_pays_promptly_or_by_the_hour_weights_and_never_after_the_due_date() {
        let (share, mean, weights) = (
            config::DEFAULT_PROMPT_SHARE,
            config::DEFAULT_PROMPT_MEAN,
            config::DEFAULT_HOUR_WEIGHTS,
        );
        // 10:00 KST; the due date is 23:59:59 KST the next day, 38 h later.
        let created = ms("2026-11-25T01:00:00Z");
        let n = 10_000;
        let drawn = deposits(DepositTiming::daily(), created, 1, n);
        let mut first_hour = 0;
        let mut quiet = 0;
        for (s, at) in &drawn {
            let at = at.expect("every daily draw lands before the due date here");
            assert!(at >= s.prepared_ms && at <= s.due_ms, "{at} out of READY");
            if at - s.prepared_ms < HOUR_MS {
                first_hour += 1;
            }
            if (1..7).contains(&kst_hour(at)) {
                quiet += 1;
            }
        }
        // The window holds 10:00–24:00 of the first day and all of the second.
        let window: f64 = weights[10..].iter().sum::<f64>() + weights.iter().sum::<f64>();
        let share_of = |mass: f64| (1.0 - share) * mass / window;
        let prompt_in_an_hour = share * (1.0 - (-3600.0 / mean.as_secs_f64()).exp());
        let expected_first_hour = prompt_in_an_hour + share_of(weights[10]);
        let first_hour = first_hour as f64 / n as f64;
        assert!(
            (first_hour - expected_first_hour).abs() < 0.02,
            "first hour {first_hour:.3}, expected {expected_first_hour:.3}"
        );
        // 01:00–07:00 carries its small weight and no more (prompt payments made at
        // 10:00 do not reach the night).
        let expected_quiet = share_of(weights[1..7].iter().sum());
        let quiet = quiet as f64 / n as f64;
        assert!(
            quiet <= expected_quiet + 0.003,
            "quiet hours {quiet:.4}, expected {expected_quiet:.4}"
        );
        assert!(expected_quiet < 0.01, "the night is nearly silent");
    }

    #[test]
    fn daily_timing_without_prompt_payments_follows_the_hour_weights() {
        let weights = config::DEFAULT_HOUR_WEIGHTS;
        let timing = DepositTiming::Daily {
            prompt_share: 0.0,
            prompt_mean: Duration::from_secs(60),
            hour_weights: weights,
        };
        // Created at 00:00 KST, due the same day at 23:59:59: one whole KST day.
        let created = ms("2026-11-24T15:00:00Z");
        let n = 20_000;
        let mut by_hour = [0usize; 24];
        for (s, at) in deposits(timing, created, 0, n as u64) {
            let at = at.unwrap();
            assert!(at >= s.prepared_ms && at <= s.due_ms);
            by_hour[kst_hour(at)] += 1;
        }
        let total: f64 = weights.iter().sum();
        for (hour, count) in by_hour.iter().enumerate() {
            let expected = n as f64 * weights[hour] / total;
            // Five standard deviations of a binomial count, plus a little for the first
            // seconds of hour 0 (spent in WAITED).
            let slack = 5.0 * expected.sqrt() + 5.0;
            assert!(
                (*count as f64 - expected).abs() <= slack,
                "hour {hour}: {count} deposits, expected {expected:.0}"
            );
        }
    }

    #[test]
    fn daily_timing_handles_silent_hours_and_late_prompt_draws() {
        // Only 12:00–13:00 has weight: every non-prompt deposit lands there.
        let mut weights = [0.0; 24];
        weights[12] = 1.0;
        let timing = DepositTiming::Daily {
            prompt_share: 0.0,
            prompt_mean: Duration::from_secs(60),
            hour_weights: weights,
        };
        let created = ms("2026-11-25T01:00:00Z");
        for (_, at) in deposits(timing, created, 1, 500) {
            assert_eq!(kst_hour(at.unwrap()), 12);
        }
        // A window without any weight falls back to uniform within it.
        let mut night = [0.0; 24];
        night[3] = 1.0;
        let quiet = DepositTiming::Daily {
            prompt_share: 0.0,
            prompt_mean: Duration::from_secs(60),
            hour_weights: night,
        };
        for (s, at) in deposits(quiet, ms("2026-11-25T05:00:00Z"), 0, 200) {
            let at = at.unwrap();
            assert!(at >= s.prepared_ms && at <= s.due_ms);
        }
        // Prompt payments with a mean far beyond the due date mostly never come.
        let slow = DepositTiming::Daily {
            prompt_share: 1.0,
            prompt_mean: Duration::from_secs(1000 * 3600),
            hour_weights: config::DEFAULT_HOUR_WEIGHTS,
        };
        let drawn = deposits(slow, created, 1, 1_000);
        let late = drawn.iter().filter(|(_, at)| at.is_none()).count();
        assert!(late > 900, "{late} of 1000 past the due date");
        for (s, _) in drawn.iter().filter(|(_, at)| at.is_none()) {
            assert_eq!(s.settle, None, "stays READY (the configured due outcome)");
        }
    }

    #[test]
    fn uniform_timing_is_still_selectable() {
        let created = ms("2026-11-25T01:00:00Z");
        let drawn = deposits(DepositTiming::Uniform, created, 1, 4_000);
        let mut mean = 0.0;
        for (s, at) in &drawn {
            let at = at.unwrap();
            assert!(at >= s.prepared_ms && at <= s.due_ms);
            mean += (at - s.prepared_ms) as f64 / (s.due_ms - s.prepared_ms) as f64;
        }
        mean /= drawn.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean position {mean}");
    }

    #[test]
    fn the_deposit_timing_does_not_disturb_the_other_draws() {
        let created = ms("2026-11-25T01:00:00Z");
        let uniform = deposits(DepositTiming::Uniform, created, 1, 50);
        let daily = deposits(DepositTiming::daily(), created, 1, 50);
        for ((u, _), (d, _)) in uniform.iter().zip(&daily) {
            assert_eq!(
                (u.prepared_ms, u.failed, u.account, u.bank),
                (d.prepared_ms, d.failed, d.account, d.bank)
            );
        }
    }

    #[test]
    fn unknown_statuses_round_trip_verbatim() {
        let s = Status::parse("WEIRD");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"WEIRD\"");
        assert_eq!(
            serde_json::from_str::<Status>("\"DONE\"").unwrap(),
            Status::Done
        );
    }
}
