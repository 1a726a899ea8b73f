//! The top-up rule's decision: after a balance poll, ask for a charge of how
//! much, or hold, and why. Pure, so every case is tested without I/O.
//!
//! The decision is advice: the database checks the same guards again in the
//! statement that inserts the request (`Store::ask_top_up`), so a decision
//! made on a stale view (another daemon asked meanwhile, a restart) cannot
//! double a charge. What only this function knows is the amount: `to` minus
//! the balance, rounded up to `step`, never above `charge.max_amount` nor
//! what is left of the month's cap.

use chrono::{DateTime, Datelike, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::settings::{TopUpSettings, round_up};

/// What the rule has used in the current KST day and month, and what stands
/// in its way, as read from the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Situation {
    /// The balance just polled.
    pub balance: i64,
    /// Top-up requests asked today (KST).
    pub day_count: i64,
    /// KRW asked by top-up requests this month (KST).
    pub month_sum: i64,
    /// Something open (a WAITED or READY issuance, a request in flight or
    /// pending, an unknown one), as described to a person.
    pub open: Option<String>,
    /// Why the rule is suspended, if it is.
    pub suspended: Option<String>,
    /// A top-up charge expired unpaid today and one was asked after it: the
    /// one retry after an expiry is spent.
    pub expiry_retry_spent: bool,
}

/// Why nothing is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    Off,
    NotLow { balance: i64, below: i64 },
    Suspended(String),
    Open(String),
    DayCap { count: i64, max: i64 },
    MonthCap { used: i64, amount: i64, max: i64 },
    AboveMaxAmount { amount: i64, max: i64 },
    ExpiryRetrySpent,
}

/// What the rule does after a balance poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Ask for a charge of this many KRW.
    Ask(i64),
    Hold(Hold),
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Ask(amount) => write!(f, "ask for a charge of {amount} KRW"),
            Decision::Hold(hold) => match hold {
                Hold::Off => f.write_str("hold: the rule is off"),
                Hold::NotLow { balance, below } => {
                    write!(f, "hold: the balance {balance} is not below {below}")
                }
                Hold::Suspended(why) => write!(f, "hold: suspended ({why})"),
                Hold::Open(what) => write!(f, "hold: {what}"),
                Hold::DayCap { count, max } => {
                    write!(f, "hold: {count} charges asked today, max_per_day is {max}")
                }
                Hold::MonthCap { used, amount, max } => write!(
                    f,
                    "hold: {used} KRW asked this month, another {amount} would pass max_per_month ({max})"
                ),
                Hold::AboveMaxAmount { amount, max } => {
                    write!(f, "hold: {amount} KRW is above charge.max_amount ({max})")
                }
                Hold::ExpiryRetrySpent => f.write_str(
                    "hold: a top-up charge expired unpaid today and the one retry after it was asked",
                ),
            },
        }
    }
}

/// The amount that brings `balance` back to `to`, rounded up to `step`.
pub fn amount_for(balance: i64, to: i64, step: i64) -> i64 {
    round_up(to.saturating_sub(balance.max(0)), step)
}

/// Decides (see the module doc); `max_amount` is `charge.max_amount`.
pub fn decide(rule: &TopUpSettings, max_amount: i64, s: &Situation) -> Decision {
    let hold = |h| Decision::Hold(h);
    if !rule.enabled() {
        return hold(Hold::Off);
    }
    if let Some(why) = &s.suspended {
        return hold(Hold::Suspended(why.clone()));
    }
    if s.balance >= rule.below {
        return hold(Hold::NotLow {
            balance: s.balance,
            below: rule.below,
        });
    }
    if let Some(what) = &s.open {
        return hold(Hold::Open(what.clone()));
    }
    if s.day_count >= rule.max_per_day {
        return hold(Hold::DayCap {
            count: s.day_count,
            max: rule.max_per_day,
        });
    }
    if s.expiry_retry_spent {
        return hold(Hold::ExpiryRetrySpent);
    }
    let amount = amount_for(s.balance, rule.to, rule.step);
    if amount > max_amount {
        return hold(Hold::AboveMaxAmount {
            amount,
            max: max_amount,
        });
    }
    if s.month_sum.saturating_add(amount) > rule.max_per_month {
        return hold(Hold::MonthCap {
            used: s.month_sum,
            amount,
            max: rule.max_per_month,
        });
    }
    Decision::Ask(amount)
}

/// The start of `now`'s day and month in `zone` (KST), as UTC instants: the
/// windows of `max_per_day` and `max_per_month`.
pub fn windows(now: DateTime<Utc>, zone: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let local = now.with_timezone(&zone).date_naive();
    let start = |date: chrono::NaiveDate| {
        zone.from_local_datetime(&date.and_time(NaiveTime::MIN))
            .earliest()
            .map_or(now, |t| t.with_timezone(&Utc))
    };
    let month = local.with_day(1).unwrap_or(local);
    (start(local), start(month))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule() -> TopUpSettings {
        TopUpSettings {
            below: 500_000,
            to: 3_000_000,
            step: 10_000,
            max_per_day: 2,
            max_per_month: 20_000_000,
        }
    }

    fn low(balance: i64) -> Situation {
        Situation {
            balance,
            ..Situation::default()
        }
    }

    #[test]
    fn a_low_balance_asks_for_the_difference_rounded_up_to_step() {
        assert_eq!(
            decide(&rule(), 10_000_000, &low(123_456)),
            Decision::Ask(2_880_000)
        );
        assert_eq!(
            decide(&rule(), 10_000_000, &low(0)),
            Decision::Ask(3_000_000)
        );
        assert_eq!(
            decide(&rule(), 10_000_000, &low(490_000)),
            Decision::Ask(2_510_000)
        );
    }

    #[test]
    fn each_guard_holds() {
        let r = rule();
        let off = TopUpSettings { below: 0, ..rule() };
        assert_eq!(decide(&off, 10_000_000, &low(0)), Decision::Hold(Hold::Off));
        assert!(matches!(
            decide(&r, 10_000_000, &low(500_000)),
            Decision::Hold(Hold::NotLow { .. })
        ));
        let cases = [
            (
                Situation {
                    suspended: Some("x".into()),
                    ..low(1)
                },
                "suspended",
            ),
            (
                Situation {
                    open: Some("issuance 1 is still READY".into()),
                    ..low(1)
                },
                "still READY",
            ),
            (
                Situation {
                    day_count: 2,
                    ..low(1)
                },
                "max_per_day",
            ),
            (
                Situation {
                    month_sum: 18_000_000,
                    ..low(1)
                },
                "max_per_month",
            ),
            (
                Situation {
                    expiry_retry_spent: true,
                    ..low(1)
                },
                "expired unpaid",
            ),
        ];
        for (situation, said) in cases {
            let d = decide(&r, 10_000_000, &situation);
            assert!(matches!(d, Decision::Hold(_)), "{situation:?}");
            assert!(d.to_string().contains(said), "{d}");
        }
        assert!(matches!(
            decide(&r, 1_000_000, &low(1)),
            Decision::Hold(Hold::AboveMaxAmount { .. })
        ));
    }

    #[test]
    fn kst_windows_start_at_local_midnight() {
        let now: DateTime<Utc> = "2026-12-31T16:30:00Z".parse().unwrap(); // 01:30 KST, Jan 1
        let (day, month) = windows(now, chrono_tz::Asia::Seoul);
        assert_eq!(day.to_rfc3339(), "2026-12-31T15:00:00+00:00");
        assert_eq!(month, day);
        let now: DateTime<Utc> = "2026-12-05T14:59:00Z".parse().unwrap(); // 23:59 KST
        let (day, month) = windows(now, chrono_tz::Asia::Seoul);
        assert_eq!(day.to_rfc3339(), "2026-12-04T15:00:00+00:00");
        assert_eq!(month.to_rfc3339(), "2026-11-30T15:00:00+00:00");
    }

    proptest! {
        #[test]
        fn an_ask_never_passes_a_cap_and_is_the_rounded_up_difference(
            below in 1i64..5_000_000,
            extra in 1i64..5_000_000,
            step in 1i64..200_000,
            max_per_day in 0i64..5,
            max_per_month in 0i64..50_000_000,
            max_amount in 1i64..20_000_000,
            balance in 0i64..10_000_000,
            day_count in 0i64..6,
            month_sum in 0i64..50_000_000,
        ) {
            let rule = TopUpSettings { below, to: below + extra, step, max_per_day, max_per_month };
            let situation = Situation { balance, day_count, month_sum, ..Situation::default() };
            if let Decision::Ask(amount) = decide(&rule, max_amount, &situation) {
                prop_assert!(balance < below);
                prop_assert!(day_count < max_per_day);
                prop_assert!(month_sum + amount <= max_per_month);
                prop_assert!(amount <= max_amount);
                prop_assert_eq!(amount % step, 0);
                prop_assert!(amount >= rule.to - balance);
                prop_assert!(amount < rule.to - balance + step);
                prop_assert!(balance + amount >= rule.to);
            }
        }
    }
}
