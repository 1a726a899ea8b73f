//! Which daemon sends each webhook sink's deliveries. Several daemons on one
//! database each run a worker per configured sink, but only the one that
//! *holds* the sink sends: so one sink's backlog is never sent twice in
//! parallel, and an issuance's events leave in order whichever daemon sends.
//!
//! A hold is a fenced lease, like an issuance's claim (`claim.rs`): the row
//! `sinks` records the holder's owner id, a fence that grows at every take,
//! and `hold_expires_at`, which the holder keeps renewing. Invariants:
//! - a sink is taken only when unheld, held by this daemon already, held by a
//!   dead daemon (its owner lock is free: at once, see `owners.rs`), or held
//!   past `hold_expires_at` (a frozen holder: SIGSTOP, a paused VM, cut off);
//! - every write of the holder's worker (admitting events, an attempt's
//!   outcome, a `disable_after` disable) checks holder and fence in its
//!   transaction, so a daemon that lost the sink while frozen writes nothing
//!   late ([`StoreError::NotHeld`]); its attempt is sent again by the new
//!   holder, with the same `webhook-id`;
//! - a daemon's takeover of a dead owner also frees its sinks, so a holder
//!   that died is never left holding once its lock file or registry row is gone.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::events::SinkVerdict;
use super::{AttemptRow, SinkRow, Store, StoreError, engine};

/// A sink held by this daemon: the fence its worker's writes carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkHold {
    pub sink: String,
    pub fence: i64,
}

/// Who holds a sink, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SinkHolder {
    pub sink: String,
    /// The holder's owner id (`None`: nobody holds it).
    pub holder: Option<String>,
    /// Until when its hold runs unless renewed.
    pub hold_expires_at: Option<String>,
}

impl Store {
    /// Takes sink `name` for this daemon until `until` when nobody else may
    /// send it: it is unheld, held by this daemon, held by a daemon found dead,
    /// or held past `hold_expires_at` as of `now`. Each take bumps the fence.
    /// Registers the sink if new. `None`: a live daemon holds it.
    pub async fn take_sink(
        &self,
        name: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<SinkHold>, StoreError> {
        engine!(self, db => db.take_sink(name, now, until).await)
    }

    /// Extends `hold` to `until`. `false`: the sink is no longer this daemon's
    /// with that fence (another daemon took it): stop sending it.
    pub async fn renew_sink(
        &self,
        hold: &SinkHold,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        engine!(self, db => db.renew_sink(hold, until).await)
    }

    /// Hands `hold` back (a clean stop), so another daemon takes the sink at
    /// once. Nothing if it is no longer held with that fence.
    pub async fn release_sink(&self, hold: &SinkHold) -> Result<(), StoreError> {
        engine!(self, db => db.release_sink(hold).await)
    }

    /// Who holds each sink the database knows, by name.
    pub async fn sink_holders(&self) -> Result<Vec<SinkHolder>, StoreError> {
        engine!(self, db => db.sink_holders().await)
    }

    /// [`Store::admit_events`] for the sink of `hold`, written only while this
    /// daemon holds it with that fence ([`StoreError::NotHeld`] otherwise).
    pub async fn admit_held_events(
        &self,
        hold: &SinkHold,
        types: &[&str],
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<i64, StoreError> {
        engine!(self, db => db.admit_events(&hold.sink, Some(hold.fence), types, now, limit).await)
    }

    /// [`Store::record_attempts`] for the sink of `hold`, written only while
    /// this daemon holds it with that fence ([`StoreError::NotHeld`]
    /// otherwise: nothing is written, and the attempts are made again by the
    /// sink's new holder).
    pub async fn record_held_attempts(
        &self,
        hold: &SinkHold,
        attempts: &[AttemptRow],
        verdict: Option<SinkVerdict<'_>>,
        due_now: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        engine!(self, db => db.record_attempts(&hold.sink, Some(hold.fence), attempts, verdict, due_now).await)
    }

    /// [`Store::disable_if_failing`] for the sink of `hold`, decided only
    /// while this daemon holds it with that fence ([`StoreError::NotHeld`]
    /// otherwise).
    pub async fn disable_held_if_failing(
        &self,
        hold: &SinkHold,
        disable_after: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<SinkRow>, StoreError> {
        engine!(self, db => db.disable_if_failing(&hold.sink, Some(hold.fence), disable_after, now).await)
    }
}
