//! `[charge]`, `[balance]` and `[top_up]`: the bound on what one charge may
//! ask for, the optional balance watch, and the optional top-up rule. Leaves that `sections` uses; their ranges are
//! in `schema.rs` like every other key's.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[charge]`: asking Bunjang for a charge (`charge AMOUNT`, `charge_requests`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChargeSettings {
    /// The largest amount (KRW) one charge may ask for: a typo of a zero too
    /// many is refused here, before anything is sent.
    pub max_amount: i64,
}

impl Default for ChargeSettings {
    fn default() -> Self {
        Self {
            max_amount: 10_000_000,
        }
    }
}

/// `[balance]`: the daemon's watch on the point balance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceSettings {
    /// How often the daemon polls the balance; unset (the default): never.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// A `balance.low` event is raised when the balance falls below this
    /// (once per crossing); 0 (the default): never.
    #[serde(default)]
    pub low_threshold: i64,
}

/// `[top_up]`: the rule that asks for a charge when a polled balance falls
/// below `below` (off while `below` is 0, the default). What it may do is
/// bounded by its caps, which the database enforces (see `store/top_up.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopUpSettings {
    /// KRW: a polled balance under this asks for a charge; 0: the rule is off.
    pub below: i64,
    /// KRW: the charge brings the balance back to this, rounded up to `step`.
    pub to: i64,
    /// KRW: charges are whole multiples of this.
    pub step: i64,
    /// Charges the rule may ask for in one day (in `api.timezone`, KST).
    pub max_per_day: i64,
    /// KRW the rule may ask for in one month (in `api.timezone`, KST).
    pub max_per_month: i64,
}

impl Default for TopUpSettings {
    fn default() -> Self {
        Self {
            below: 0,
            to: 0,
            step: 10_000,
            max_per_day: 2,
            max_per_month: 20_000_000,
        }
    }
}

impl TopUpSettings {
    /// Whether the rule is on.
    pub fn enabled(&self) -> bool {
        self.below > 0
    }

    /// What the rule will do, in one sentence (for `check-config`), given the
    /// balance poll's interval.
    pub fn describe(&self, interval: Option<Duration>) -> String {
        if !self.enabled() {
            return "off (top_up.below = 0)".to_owned();
        }
        let every = interval.map_or("never (balance.interval unset)".to_owned(), |i| {
            humantime::format_duration(i).to_string()
        });
        format!(
            "when a balance polled every {every} is below {} KRW, ask for one charge that brings it back to {} KRW \
             (rounded up to {} KRW, at most {} KRW), never while a charge is open, at most {} a KST day and {} KRW a KST month; \
             suspended after a charge of unknown outcome or two refusals in a row",
            self.below,
            self.to,
            self.step,
            self.largest_amount(),
            self.max_per_day,
            self.max_per_month
        )
    }

    /// The largest amount the rule can ask for: from a balance of 0 (a
    /// balance is never negative) to `to`, rounded up to `step`.
    pub fn largest_amount(&self) -> i64 {
        round_up(self.to.max(0), self.step)
    }
}

/// `amount` rounded up to a whole multiple of `step` (`step` >= 1).
pub fn round_up(amount: i64, step: i64) -> i64 {
    let step = step.max(1);
    let whole = amount / step + i64::from(amount % step > 0);
    whole.saturating_mul(step)
}
