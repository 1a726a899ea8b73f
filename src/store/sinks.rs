//! Webhook sinks as an operator sees and switches them: their health and
//! backlog (`status`, `sinks`, the backlog gauges) and enabling or disabling
//! one by hand or after a 410. The worker's own reads and writes (admitting
//! events, due deliveries, recording attempts) are in `events.rs`.
//!
//! A disabled sink (`sinks.disabled_at` set) admits and sends nothing; its
//! worker re-reads the row, so enabling takes effect without a restart, and
//! enabling makes its open deliveries due at once.

use super::events::{NamedSinkRow, SinkRow};
use super::{Store, StoreError, engine};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a sink has done lately ([`Store::sink_activity`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SinkActivity {
    /// When its latest delivery was made (`None`: never).
    pub last_delivered_at: Option<String>,
    /// Attempts made so far at its open deliveries.
    pub open_attempts: i64,
}

/// A sink's backlog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Open deliveries plus events not admitted yet.
    pub pending: i64,
    /// The oldest open delivery's event time.
    pub oldest: Option<DateTime<Utc>>,
}

/// A sink's deliveries as `status` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkBacklog {
    pub sink: NamedSinkRow,
    pub backlog: Backlog,
    /// Deliveries given up after the retry horizon (not discarded).
    pub given_up: i64,
}

impl Store {
    /// Disables sink `name` (its receiver answered 410 Gone).
    pub async fn disable_sink(
        &self,
        name: &str,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), StoreError> {
        engine!(self, db => db.disable_sink(name, at, reason).await)
    }

    /// Disables sink `name` by a person's hand (`sinks disable`), registering
    /// it first if no daemon has yet (it then starts after the newest event).
    /// A sink already disabled keeps its time and reason. Returns its row as
    /// it was before.
    pub async fn disable_sink_by_hand(
        &self,
        name: &str,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<SinkRow, StoreError> {
        engine!(self, db => db.disable_sink_by_hand(name, at, reason).await)
    }

    /// Enables sink `name` again (`sinks enable`): clears `disabled_at` and
    /// makes its open deliveries due at `now`, so its worker (which re-reads a
    /// disabled sink's row every few seconds) sends the backlog at once.
    /// Returns its row as it was before (`None`: not registered); a sink that
    /// was not disabled is left as it is.
    pub async fn enable_sink(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SinkRow>, StoreError> {
        engine!(self, db => db.enable_sink(name, now).await)
    }

    /// Sink `name`'s last successful delivery and the attempts made so far
    /// at its open deliveries.
    pub async fn sink_activity(&self, name: &str) -> Result<SinkActivity, StoreError> {
        engine!(self, db => db.sink_activity(name).await)
    }

    /// Sink `name`'s backlog.
    pub async fn sink_backlog(&self, name: &str) -> Result<Backlog, StoreError> {
        engine!(self, db => db.sink_backlog(name).await)
    }

    /// Every sink the database knows, with its backlog and given-up
    /// deliveries. A sink no worker runs for (not configured) is not
    /// admitting events: its backlog is its open deliveries only, so pass
    /// `configured` to tell.
    pub async fn sink_backlogs(
        &self,
        configured: &[String],
    ) -> Result<Vec<SinkBacklog>, StoreError> {
        engine!(self, db => db.sink_backlogs(configured).await)
    }
}
