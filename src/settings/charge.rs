//! `[charge]` and `[balance]`: the bound on what one charge may ask for, and
//! the optional balance watch. Leaves that `sections` uses; their ranges are
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
