//! The top-up rule's rows: its requests (`charge_requests.source =
//! 'top_up'`) and its state (the one-row `top_up` table).
//!
//! Invariants (migration 20261206000013 says why each lives in the database):
//! - a top-up request is inserted `pending` by one conditional statement
//!   ([`Store::ask_top_up`]) that re-checks every guard at the moment it
//!   writes: not suspended, nothing open (a WAITED or READY issuance, a
//!   request pending, in flight or unknown and unresolved), the KST day's
//!   count and month's sum under the caps, at most one retry after a top-up
//!   charge expired unpaid that day, and no charge seen DONE since the
//!   balance it acts on was asked for. SQLite serialises it with every other
//!   writer (BEGIN IMMEDIATE); PostgreSQL behind an advisory lock. A unique
//!   partial index keeps two top-up requests from being open at once,
//!   whatever inserts them;
//! - it is then performed like any request from the database (claimed,
//!   `sending` before its POST, never retried);
//! - the rule suspends itself by trigger when one of its requests becomes
//!   `unknown` or is the second refused in a row, and only
//!   [`Store::resume_top_up`] (a person) clears that.

use super::{Store, StoreError, engine};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The windows and caps a top-up request is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopUpLimits {
    /// The start of today in KST (as UTC).
    pub day_start: DateTime<Utc>,
    /// The start of this month in KST (as UTC).
    pub month_start: DateTime<Utc>,
    pub max_per_day: i64,
    pub max_per_month: i64,
}

/// The rule's state as stored, with its use of the current day and month.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TopUpState {
    pub suspended_at: Option<String>,
    pub suspended_reason: Option<String>,
    /// The request whose outcome suspended the rule.
    pub suspended_request: Option<i64>,
    pub refusals_in_a_row: i64,
    pub resumed_at: Option<String>,
    pub resumed_by: Option<String>,
    pub last_decision: Option<String>,
    pub last_decided_at: Option<String>,
    /// Top-up requests asked today (KST; those refused here unsent excluded).
    pub day_count: i64,
    /// KRW asked by top-up requests this month (KST; refused ones excluded).
    pub month_sum: i64,
    /// A top-up charge expired unpaid today and one was asked after it.
    pub expiry_retry_spent: bool,
}

impl Store {
    /// The rule's state, its use counted from `day_start` and `month_start`.
    pub async fn top_up_state(
        &self,
        day_start: DateTime<Utc>,
        month_start: DateTime<Utc>,
    ) -> Result<TopUpState, StoreError> {
        engine!(self, db => db.top_up_state(day_start, month_start).await)
    }

    /// Inserts a pending top-up request of `amount` at `now` if every guard
    /// (module doc) holds at that moment; `balance_asked_at` (business clock)
    /// is when the balance it acts on was asked for. Its id, or `None`: a
    /// guard held, nothing inserted.
    pub async fn ask_top_up(
        &self,
        amount: i64,
        now: DateTime<Utc>,
        limits: TopUpLimits,
        balance_asked_at: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        engine!(self, db => db.ask_top_up(amount, now, limits, balance_asked_at).await)
    }

    /// Records what the daemon decided after a balance poll, for a person.
    pub async fn note_top_up_decision(
        &self,
        decision: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        engine!(self, db => db.note_top_up_decision(decision, at).await)
    }

    /// Clears a suspension (and the count of refusals in a row), by `by`;
    /// whether the rule was suspended.
    pub async fn resume_top_up(&self, by: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        engine!(self, db => db.resume_top_up(by, at).await)
    }
}
