//! The delivery log and what an operator does with time: each attempt's
//! row (`attempts`: time, status or error, duration, the first KiB of the
//! answer, sanitised), written by `record_attempts` in the transaction of
//! the attempt's outcome; read per event (`events show`); pruned after the
//! sink's `attempts_retention` together with delivered deliveries (never an
//! undelivered one); events selected by time and type for a range replay
//! (`events redeliver --since`); and a sink failing continuously for its
//! `disable_after` disabled once, with a `sink.disabled` event.
//!
//! `sink.disabled` is written here, directly, in the transaction that
//! disables the sink: the fact is an act of the daemon (like `balance.low`),
//! not a row other programs write, so no trigger announces it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::events::{EventRow, SinkRow};
use super::{Store, StoreError, engine};

/// One attempt of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LoggedAttempt {
    pub sink: String,
    pub attempted_at: String,
    pub duration_ms: i64,
    /// HTTP status (`None`: no answer, see `error`).
    pub http_status: Option<i64>,
    pub error: Option<String>,
    /// The first KiB of the answer's body, sanitised (no control characters
    /// but `\n` and `\t`); `None` without an answer.
    pub response: Option<String>,
}

/// What one pruning removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Attempts older than the cutoff (with those of pruned deliveries).
    pub attempts: u64,
    /// Delivered deliveries delivered before the cutoff.
    pub deliveries: u64,
}

/// The events of a range replay: `occurred_at` in `[since, until)`, of
/// `event_type` if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRange {
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
    pub event_type: Option<String>,
}

impl Store {
    /// Event `seq`, if there is one.
    pub async fn event(&self, seq: i64) -> Result<Option<EventRow>, StoreError> {
        engine!(self, db => db.event(seq).await)
    }

    /// Event `seq`'s attempts, by sink then time (oldest first).
    pub async fn attempts_of(&self, seq: i64) -> Result<Vec<LoggedAttempt>, StoreError> {
        engine!(self, db => db.attempts_of(seq).await)
    }

    /// Sink `name`'s attempts made before `before`, and its delivered
    /// deliveries delivered before it (with their attempts), deleted in one
    /// transaction. Undelivered deliveries (open, given up or discarded)
    /// are never deleted.
    pub async fn prune_delivery_log(
        &self,
        name: &str,
        before: DateTime<Utc>,
    ) -> Result<Pruned, StoreError> {
        engine!(self, db => db.prune_delivery_log(name, before).await)
    }

    /// The seqs and types of the events in `range`, oldest first (what a
    /// range replay schedules with `redeliver`, and what its dry run counts).
    pub async fn events_in_range(
        &self,
        range: &EventRange,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        engine!(self, db => db.events_in_range(range).await)
    }

    /// Disables sink `name` if it has failed continuously for `disable_after`
    /// by `now` (`domain::delivery::disable_due`, on its row read in the same
    /// transaction), with a `sink.disabled` event, once: a sink already
    /// disabled is left alone. Returns its row after, if this call disabled it.
    pub async fn disable_if_failing(
        &self,
        name: &str,
        disable_after: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<SinkRow>, StoreError> {
        engine!(self, db => db.disable_if_failing(name, None, disable_after, now).await)
    }
}

/// Why a sink failing since `since` for `disable_after` is disabled.
pub(super) fn failing_reason(since: &str, disable_after: Duration) -> String {
    format!(
        "every attempt failed since {since}, for longer than disable_after ({})",
        humantime::format_duration(disable_after)
    )
}
