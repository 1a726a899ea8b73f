//! When a payer pays: the deposit instant within one READY window, under the
//! configured [`DepositTiming`]. Pure; the caller passes the random source, so
//! a schedule's other draws stay where they are whatever the timing.

use std::time::Duration;

use super::instants::{DAY_MS, HOUR_MS, KST_OFFSET_MS, duration_ms, uniform_ms};
use crate::config::DepositTiming;

/// The deposit instant for READY from `ready_ms`, due at `due_ms`; `None` when
/// it falls past the due date (that payer never pays). Consumes one random
/// value for `Uniform` and `Within`, two for `Daily`.
pub(super) fn deposit_ms(
    timing: &DepositTiming,
    rng: &mut fastrand::Rng,
    ready_ms: i64,
    due_ms: i64,
) -> Option<i64> {
    match timing {
        DepositTiming::Uniform => Some(uniform_ms(rng, ready_ms, due_ms.max(ready_ms))),
        DepositTiming::Within { min, max } => {
            let at = ready_ms.saturating_add(uniform_ms(rng, duration_ms(*min), duration_ms(*max)));
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
                ready_ms,
                due_ms,
                coin,
                u,
            );
            (at <= due_ms).then_some(at)
        }
    }
}

/// The `Daily` deposit instant: with probability `prompt_share` (decided by `coin`)
/// READY plus an exponential delay of mean `prompt_mean` (from `u`), which may
/// fall past the due date; otherwise an instant in `[ready_ms, due_ms]` with a
/// density proportional to the weight of its KST hour (from `u`, by inverting the
/// cumulative weight). Weights that are negative or not finite count as zero;
/// with no weight at all in the window the instant is uniform in it.
fn daily_ms(
    prompt_share: f64,
    prompt_mean: Duration,
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

#[cfg(test)]
mod tests {
    use super::super::instants::{due_date_ms, ms};
    use super::*;
    use crate::config;

    /// An issuance's READY window (WAITED for 1–5 s, as by default).
    struct Window {
        prepared_ms: i64,
        due_ms: i64,
    }

    /// READY windows of `n` issuances created at `created` and their deposit
    /// instants under `deposit`; `None` for a deposit past the due date.
    fn deposits(
        deposit: DepositTiming,
        created: i64,
        lead_days: u32,
        n: u64,
    ) -> Vec<(Window, Option<i64>)> {
        let mut rng = fastrand::Rng::with_seed(5);
        let due_ms = due_date_ms(created, lead_days);
        (0..n)
            .map(|_| {
                let prepared_ms = created + uniform_ms(&mut rng, 1_000, 5_000);
                let at = deposit_ms(&deposit, &mut rng, prepared_ms, due_ms);
                (
                    Window {
                        prepared_ms,
                        due_ms,
                    },
                    at,
                )
            })
            .collect()
    }

    fn kst_hour(ms: i64) -> usize {
        ((ms + KST_OFFSET_MS).rem_euclid(DAY_MS) / HOUR_MS) as usize
    }

    #[test]
    fn the_default_deposit_timing_is_daily() {
        assert_eq!(
            config::LifecycleConfig::default().deposit,
            DepositTiming::daily()
        );
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

    /// Daily timing with no prompt payments and all the weight on one KST hour.
    fn only_hour(hour: usize) -> DepositTiming {
        let mut hour_weights = [0.0; 24];
        hour_weights[hour] = 1.0;
        DepositTiming::Daily {
            prompt_share: 0.0,
            prompt_mean: Duration::from_secs(60),
            hour_weights,
        }
    }

    #[test]
    fn daily_timing_handles_silent_hours_and_late_prompt_draws() {
        // Only 12:00–13:00 has weight: every non-prompt deposit lands there.
        let timing = only_hour(12);
        let created = ms("2026-11-25T01:00:00Z");
        for (_, at) in deposits(timing, created, 1, 500) {
            assert_eq!(kst_hour(at.unwrap()), 12);
        }
        // A window without any weight falls back to uniform within it.
        let quiet = only_hour(3);
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
}
