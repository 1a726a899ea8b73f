//! The outbox (`events`) and its deliveries to webhook sinks.
//!
//! Events are written by triggers (migration `20261202000004_events.sql`), not
//! by this code: a trigger on `transitions`, on `flags` and on `issuances.watch`
//! inserts the event in the same statement, hence the same transaction, as the
//! fact it announces. Chosen over an `INSERT … SELECT` after each write because
//! it also covers facts that other programs (or future code paths) write, and
//! cannot be forgotten on one of them; the cost is one indexed insert per fact.
//!
//! Deliveries: a sink's worker first *admits* events (one `deliveries` row per
//! event of a type the sink takes, in one transaction with its cursor
//! `sinks.admitted_seq`), then reads due deliveries, each the oldest open one of
//! its issuance, so events of one issuance go out in order. An attempt's
//! outcome is written after it ends; `delivered_at` only after a 2xx, so a
//! crash at any moment means a redelivery (same `webhook-id`), never a loss.
//! With the outcomes, the sink's `failing_since` is set (first failure after a
//! 2xx) or cleared (a 2xx), so any reader of the file can tell a failing sink.
//!
//! A delivery is *open* while `delivered_at` and `failed_at` are both NULL;
//! only open deliveries are read or changed by a worker. `failed_at` closes
//! it without a 2xx: the retry horizon passed, or an operator discarded it
//! (`discarded_at` set too). `redeliver` opens any delivery again, as new.
//! Events about no issuance (`balance.low`) have a NULL `events.issuance_id`
//! and `''` as their deliveries' issuance, so they are ordered among
//! themselves like one issuance's events.

use super::query::RawId;
use super::{Store, StoreError, engine};
use crate::domain::DeliveryState;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One event of the outbox.
#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub seq: i64,
    /// The `webhook-id`: the same on every delivery attempt.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `None` for an event about no issuance (`balance.low`): JSON `null`.
    pub issuance_id: Option<String>,
    /// The body's `timestamp`: when the fact happened.
    pub occurred_at: String,
    pub data: serde_json::Value,
}

/// A sink's row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SinkRow {
    pub admitted_seq: i64,
    pub disabled_at: Option<String>,
    pub disabled_reason: Option<String>,
    /// The first failed attempt after its last 2xx (`None`: not failing).
    pub failing_since: Option<String>,
    /// What the last failed attempt came to, while failing.
    pub last_problem: Option<String>,
}

/// A sink's row with its name (every sink the database knows).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NamedSinkRow {
    pub name: String,
    #[sqlx(flatten)]
    pub row: SinkRow,
}

/// What a batch of attempts says about a sink's receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkVerdict<'a> {
    /// At least one 2xx: not failing (any more).
    Answered,
    /// Every attempt failed, the last with `problem`.
    Failing { at: DateTime<Utc>, problem: &'a str },
}

/// A delivery due now, with its event as stored (`data` as its exact text).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub seq: i64,
    pub id: String,
    #[sqlx(rename = "type")]
    pub event_type: String,
    #[sqlx(try_from = "RawId")]
    pub issuance_id: String,
    pub occurred_at: String,
    pub data: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// When the delivery was created (the retry horizon counts from here).
    pub created_at: String,
}

/// What one attempt came to, to be written (its delivery's outcome, and a
/// row of the delivery log, `attempts`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AttemptRow {
    pub seq: i64,
    pub attempted_at: String,
    /// HTTP status, if an answer came.
    pub status: Option<u16>,
    pub error: Option<String>,
    /// How long the attempt took, in milliseconds.
    pub duration_ms: i64,
    /// The first KiB of the receiver's answer, sanitised
    /// (`domain::excerpt::response_excerpt`); `None` without an answer.
    pub response: Option<String>,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    pub failed_at: Option<String>,
}

/// An undelivered delivery that failed at least once, or whose sink is no
/// longer configured, and what it is waiting for ([`DeliveryState`]).
#[derive(Debug, Clone, Serialize)]
pub struct FailedDelivery {
    pub sink: String,
    pub seq: i64,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `None` for an event about no issuance (`balance.low`).
    pub issuance_id: Option<String>,
    pub occurred_at: String,
    /// `retrying`, `given_up`, `sink_disabled` or `sink_removed`.
    pub state: DeliveryState,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<String>,
    /// When it is attempted next: only while [`DeliveryState::Retrying`]
    /// (the stored value of any other state is a time nothing will happen at).
    pub next_attempt_at: Option<String>,
    /// Set once the retry horizon passed: no more attempts (see `events redeliver`).
    pub failed_at: Option<String>,
    /// Since when its sink is disabled (410), if it is.
    pub sink_disabled_at: Option<String>,
}

impl Store {
    /// Events after the cursor `after`, oldest first, `limit` at most.
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        engine!(self, db => db.events_after(after, limit).await)
    }

    /// The events of one issuance, oldest first.
    pub async fn events_of(&self, id: &str) -> Result<Vec<EventRow>, StoreError> {
        engine!(self, db => db.events_of(id).await)
    }

    /// The newest event's seq (0 when there is none).
    pub async fn last_event_seq(&self) -> Result<i64, StoreError> {
        engine!(self, db => db.last_event_seq().await)
    }

    /// Events after `after` by type, with the newest seq among them.
    pub async fn event_counts_after(
        &self,
        after: i64,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        engine!(self, db => db.event_counts_after(after).await)
    }

    /// Registers sink `name` if new (it then starts after the newest event)
    /// and returns its row.
    pub async fn register_sink(&self, name: &str) -> Result<SinkRow, StoreError> {
        engine!(self, db => db.register_sink(name).await)
    }

    /// Sink `name`'s row, if registered.
    pub async fn sink(&self, name: &str) -> Result<Option<SinkRow>, StoreError> {
        engine!(self, db => db.sink(name).await)
    }

    /// Every sink the database knows (configured now or not), by name.
    pub async fn sinks(&self) -> Result<Vec<NamedSinkRow>, StoreError> {
        engine!(self, db => db.sinks().await)
    }

    /// Creates deliveries for up to `limit` events after sink `name`'s cursor
    /// (those of `types`), due at `now`, and moves the cursor past them, in one
    /// transaction. Returns how many events it looked at (0: caught up).
    /// Unfenced: a daemon's worker writes through [`Store::admit_held_events`].
    pub async fn admit_events(
        &self,
        name: &str,
        types: &[&str],
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<i64, StoreError> {
        engine!(self, db => db.admit_events(name, None, types, now, limit).await)
    }

    /// Up to `limit` deliveries of sink `name` due at `now`, never two of one issuance.
    pub async fn due_deliveries(
        &self,
        name: &str,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        engine!(self, db => db.due_deliveries(name, now, limit).await)
    }

    /// When sink `name`'s next open delivery is due.
    pub async fn next_delivery_due(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        engine!(self, db => db.next_delivery_due(name).await)
    }

    /// Writes what attempts came to (one primary-key update each, and one
    /// row each in the delivery log, `attempts`: a batch is
    /// at most a few times the sink's concurrency) and what they say about the
    /// sink (`verdict`: its `failing_since`), in one transaction; with `due_now` set,
    /// also makes every other open delivery of the sink due then (the receiver
    /// answered again after failing). Unfenced: a daemon's worker writes
    /// through [`Store::record_held_attempts`].
    pub async fn record_attempts(
        &self,
        name: &str,
        attempts: &[AttemptRow],
        verdict: Option<SinkVerdict<'_>>,
        due_now: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        engine!(self, db => db.record_attempts(name, None, attempts, verdict, due_now).await)
    }

    /// Undelivered deliveries that failed at least once or whose sink is not
    /// among `configured` (never to be attempted), discarded ones excepted.
    pub async fn failed_deliveries(
        &self,
        configured: &[String],
        limit: i64,
    ) -> Result<Vec<FailedDelivery>, StoreError> {
        engine!(self, db => db.failed_deliveries(configured, limit).await)
    }

    /// Schedules event `seq` again for each of `sinks` (registering them if
    /// new), due at `now`, as a new delivery, in one transaction of its own
    /// (so one event's failure leaves the others of a list scheduled).
    /// `false`: there is no such event.
    pub async fn redeliver(
        &self,
        sinks: &[String],
        seq: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        engine!(self, db => db.redeliver(sinks, seq, now).await)
    }

    /// Discards sink `name`'s undelivered deliveries (only those of `seqs`,
    /// if given) at `now`: never attempted again, kept with `discarded_at`.
    /// Returns how many were discarded.
    pub async fn discard(
        &self,
        name: &str,
        seqs: Option<&[i64]>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        engine!(self, db => db.discard(name, seqs, now).await)
    }
}
