//! The simulator's configuration: one serde-deserializable tree with a default
//! for every field, so a TOML file (or a test) only states what it changes.
//!
//! Durations are humantime strings (`"5s"`, `"1h 30m"`). Lifecycle durations are
//! *simulated* time (they scale with `speed`); fault windows and delays are *real*
//! time, because a client's timeouts and rate limits are real.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::faults::FaultConfig;

/// Everything the simulator can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// The only access key accepted in the `accessKey` claim.
    pub access_key: String,
    /// The secret key *as issued*: Base64 text. Tokens must be signed with its decoded bytes.
    pub secret_key: String,
    /// How long after `iat` a token is still accepted (the docs say 5 s, a partner guide 30 s).
    #[serde(with = "humantime_serde")]
    pub token_window: Duration,
    /// How far in the future `iat` may be (client clocks run a little ahead).
    #[serde(with = "humantime_serde")]
    pub token_future_leeway: Duration,
    /// A fixed token accepted as-is, without any JWT check (for load generators like wrk).
    pub static_token: Option<String>,
    /// Simulated seconds per real second for business time (3600: an hour per second).
    pub speed: f64,
    /// The simulated instant at start; `None` means the wall clock's now.
    pub start_at: Option<DateTime<Utc>>,
    /// Seed of every random draw: the same seed gives the same lifecycles and faults.
    pub seed: u64,
    /// Issuance ids are `id_base + 1 + n` for the n-th issuance created. Unset
    /// (the default): from the wall clock at start ([`crate::id_base_at`]), so
    /// that a restarted simulator, which keeps nothing, never hands out an id
    /// an earlier one did. Pin it (e.g. 1000000) only for ids that must be the
    /// same on every run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_base: Option<u64>,
    /// Refuse a new charge (400) while the previous one created through the API is
    /// still WAITED or READY, as the real API allows one READY charge per partner.
    pub one_ready_per_key: bool,
    /// Keep the real arrival instant of every API request (for Retry-After checks).
    pub record_requests: bool,
    /// Balance reported by `GET /api/v1/points/balance` before any charge (each
    /// charge created through the API adds its amount once DONE).
    pub balance: i64,
    /// `pointExpiredIn30Days` reported by the balance endpoint.
    pub point_expired_in_30_days: i64,
    /// How issuances evolve.
    pub lifecycle: LifecycleConfig,
    /// Injected faults; replaceable at runtime.
    pub faults: FaultConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            access_key: super::cli::DEMO_ACCESS_KEY.to_owned(),
            secret_key: super::cli::DEMO_SECRET_KEY.to_owned(),
            token_window: Duration::from_secs(5),
            token_future_leeway: Duration::from_secs(2),
            static_token: None,
            speed: 1.0,
            start_at: None,
            seed: 42,
            id_base: None,
            one_ready_per_key: false,
            record_requests: false,
            balance: 10_000_000,
            point_expired_in_30_days: 300_000,
            lifecycle: LifecycleConfig::default(),
            faults: FaultConfig::default(),
        }
    }
}

impl SimConfig {
    /// Credentials in one call, for tests that mint their own tokens.
    pub fn with_credentials(mut self, access_key: &str, secret_key_base64: &str) -> Self {
        self.access_key = access_key.to_owned();
        self.secret_key = secret_key_base64.to_owned();
        self
    }

    pub fn with_speed(mut self, speed: f64) -> Self {
        self.speed = speed;
        self
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn with_token_window(mut self, window: Duration) -> Self {
        self.token_window = window;
        self
    }

    pub fn with_lifecycle(mut self, lifecycle: LifecycleConfig) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    pub fn with_faults(mut self, faults: FaultConfig) -> Self {
        self.faults = faults;
        self
    }
}

/// How an issuance's schedule is drawn at creation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Shortest time in WAITED (the account number is being prepared).
    #[serde(with = "humantime_serde")]
    pub waited_min: Duration,
    /// Longest time in WAITED.
    #[serde(with = "humantime_serde")]
    pub waited_max: Duration,
    /// Probability that WAITED ends in FAIL instead of READY.
    pub p_fail: f64,
    /// Probability that a READY charge is paid (DONE) before its due date.
    pub p_done: f64,
    /// Probability that a READY charge is cancelled before its due date.
    pub p_cancel: f64,
    /// The due date is 23:59:59 KST this many days after the creation day (1: the next day).
    pub due_lead_days: u32,
    /// When, within READY, a deposit or cancellation happens.
    pub deposit: DepositTiming,
    /// What happens to a charge still READY at its due date.
    pub at_due: DueOutcome,
    /// How long after the due date that outcome happens.
    #[serde(with = "humantime_serde")]
    pub at_due_delay: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            waited_min: Duration::from_secs(1),
            waited_max: Duration::from_secs(5),
            p_fail: 0.03,
            p_done: 0.80,
            p_cancel: 0.07,
            due_lead_days: 1,
            deposit: DepositTiming::daily(),
            at_due: DueOutcome::Cancel,
            at_due_delay: Duration::ZERO,
        }
    }
}

/// Distribution of the deposit (or cancellation) instant within READY.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DepositTiming {
    /// Uniform between READY and the due date.
    Uniform,
    /// Uniform between `min` and `max` after READY; a draw past the due date means
    /// no deposit (the due-date outcome applies). Lets tests see DONE quickly.
    Within {
        #[serde(with = "humantime_serde")]
        min: Duration,
        #[serde(with = "humantime_serde")]
        max: Duration,
    },
    /// The default: how people pay a virtual account. A share `prompt_share` pay
    /// (or cancel) right after getting the account number, at checkout: READY plus
    /// an exponential delay of mean `prompt_mean`. The others pay at an instant
    /// between READY and the due date drawn with a density proportional to
    /// `hour_weights[h]`, `h` the KST hour of day (00..23): busy at lunch and in
    /// the evening, almost nobody between 01:00 and 07:00. A prompt draw past the
    /// due date means no deposit (the due-date outcome applies), as for `Within`.
    /// In TOML: `deposit = { kind = "daily" }` (every field has this default),
    /// or e.g. `{ kind = "daily", prompt_share = 0.5, prompt_mean = "10m" }`.
    Daily {
        #[serde(default = "default_prompt_share")]
        prompt_share: f64,
        #[serde(default = "default_prompt_mean", with = "humantime_serde")]
        prompt_mean: Duration,
        #[serde(default = "default_hour_weights")]
        hour_weights: [f64; 24],
    },
}

impl DepositTiming {
    /// [`DepositTiming::Daily`] with its default parameters (see `DEFAULT_HOUR_WEIGHTS`).
    pub fn daily() -> Self {
        DepositTiming::Daily {
            prompt_share: default_prompt_share(),
            prompt_mean: default_prompt_mean(),
            hour_weights: default_hour_weights(),
        }
    }
}

/// Share of READY charges settled right after READY, in the default model. An
/// assumption, not a measurement (no public data): a virtual account is usually
/// requested at checkout with the banking app at hand, so a large minority pay at
/// once; 0.4 leaves the majority to the daily pattern.
pub const DEFAULT_PROMPT_SHARE: f64 = 0.4;
/// Mean delay of the prompt payments: the time to open a banking app and send a
/// transfer, with a tail for people who finish another errand first (median ~10 min).
pub const DEFAULT_PROMPT_MEAN: Duration = Duration::from_secs(15 * 60);
/// Relative deposit activity by KST hour of day, 00:00 first. Near zero from 01:00
/// to 07:00 (about 1 % of the daily mass), rising through the morning, peaks at
/// lunch (12:00) and in the evening (20:00–22:00), still busy just before midnight.
/// A plausible shape for consumer payments in Korea, not fitted to data.
pub const DEFAULT_HOUR_WEIGHTS: [f64; 24] = [
    3.0, 0.5, 0.2, 0.1, 0.1, 0.1, 0.3, 1.0, // 00–07
    3.0, 5.0, 6.0, 7.0, 9.0, 8.0, 6.0, 6.0, // 08–15
    6.0, 6.0, 7.0, 8.0, 9.0, 9.0, 8.0, 6.0, // 16–23
];

fn default_prompt_share() -> f64 {
    DEFAULT_PROMPT_SHARE
}

fn default_prompt_mean() -> Duration {
    DEFAULT_PROMPT_MEAN
}

fn default_hour_weights() -> [f64; 24] {
    DEFAULT_HOUR_WEIGHTS
}

/// What the API does with a charge still READY when its due date passes
/// (undocumented upstream, so every plausible answer is selectable).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DueOutcome {
    StayReady,
    Cancel,
    Fail,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_toml_gives_the_defaults() {
        let config: SimConfig = toml::from_str("").unwrap();
        assert_eq!(config.token_window, Duration::from_secs(5));
        assert_eq!(config.lifecycle, LifecycleConfig::default());
    }

    #[test]
    fn a_toml_file_sets_nested_fields_and_humantime_durations() {
        let config: SimConfig = toml::from_str(
            r#"
            speed = 3600.0
            token_window = "30s"
            [lifecycle]
            at_due = "stay_ready"
            deposit = { kind = "within", min = "1h", max = "2h" }
            [faults.server_error]
            rate = 0.1
            windows = [{ start = "10s", end = "40s" }]
            "#,
        )
        .unwrap();
        assert_eq!(config.token_window, Duration::from_secs(30));
        assert_eq!(config.lifecycle.at_due, DueOutcome::StayReady);
        assert_eq!(
            config.lifecycle.deposit,
            DepositTiming::Within {
                min: Duration::from_secs(3600),
                max: Duration::from_secs(7200)
            }
        );
        assert_eq!(config.faults.server_error.rate, 0.1);
        assert_eq!(
            config.faults.server_error.windows[0].end,
            Duration::from_secs(40)
        );
    }

    #[test]
    fn the_daily_deposit_timing_reads_from_toml_with_defaults_for_what_is_left_out() {
        let config: SimConfig = toml::from_str(
            r#"
            [lifecycle]
            deposit = { kind = "daily" }
            "#,
        )
        .unwrap();
        assert_eq!(config.lifecycle.deposit, DepositTiming::daily());
        let config: SimConfig = toml::from_str(
            r#"
            [lifecycle]
            deposit = { kind = "daily", prompt_share = 0.5, prompt_mean = "10m" }
            "#,
        )
        .unwrap();
        assert_eq!(
            config.lifecycle.deposit,
            DepositTiming::Daily {
                prompt_share: 0.5,
                prompt_mean: Duration::from_secs(600),
                hour_weights: DEFAULT_HOUR_WEIGHTS,
            }
        );
        let uniform: SimConfig =
            toml::from_str("[lifecycle]\ndeposit = { kind = \"uniform\" }\n").unwrap();
        assert_eq!(uniform.lifecycle.deposit, DepositTiming::Uniform);
        assert!(
            toml::from_str::<SimConfig>(
                "[lifecycle]\ndeposit = { kind = \"daily\", hour_weights = [1.0] }\n"
            )
            .is_err(),
            "24 weights, one per hour"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<SimConfig>("sped = 2.0").is_err());
    }
}
