//! The web dashboard's reads (`web`): pages of issuances and events by keyset,
//! the open charges a payer needs, the balance history, and one issuance's
//! deliveries. Everything else the dashboard shows comes from the reads the
//! CLI uses.
//!
//! Invariants:
//! - read-only: nothing here writes;
//! - every read is bounded and indexed, so a page costs the same with a
//!   million settled issuances: pages walk a primary key from a cursor
//!   (`id > cursor`, `seq < cursor`), never `OFFSET`, which would read and
//!   drop every row before the page; the open charges come from the partial
//!   index of active issuances; the balance from its time index (newest
//!   first, a bounded count); an issuance's deliveries by primary key per
//!   (sink, event). SQLite's plans are asserted in its unit tests;
//!   PostgreSQL's in `tests/it/dashboard.rs` (no page scans a table).
//!
//! A status or watch filter walks the id index and skips other rows: a page
//! of a rare status reads past the rows between its matches (an index on
//! `(status, id)` would make it one range; not added while such pages are
//! for people looking, not for programs).

use super::query::IssuanceRow;
use super::{Store, StoreError, engine};
use crate::store::EventRow;
use serde::Serialize;

/// Which issuances a page lists, and where it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuanceFilter {
    /// Last seen status (`UNSEEN`: not seen yet); `None`: any.
    pub status: Option<String>,
    /// Watch state (`active`, `settled`, ...); `None`: any.
    pub watch: Option<String>,
    /// The cursor: the last id of the previous page (ids ascend byte by byte
    /// on SQLite, in the database's collation on PostgreSQL); `None`: the first page.
    pub after: Option<String>,
}

/// One of an issuance's deliveries to one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DeliveryRow {
    pub sink: String,
    pub seq: i64,
    pub event_type: String,
    pub created_at: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
    pub failed_at: Option<String>,
}

/// One balance answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct BalancePoint {
    pub observed_at: String,
    pub balance: i64,
    pub expiring_30d: i64,
}

impl Store {
    /// Up to `limit` issuances matching `filter`, by id ascending from its
    /// cursor (keyset paging on the primary key).
    pub async fn issuances_page(
        &self,
        filter: &IssuanceFilter,
        limit: i64,
    ) -> Result<Vec<IssuanceRow>, StoreError> {
        engine!(self, db => db.issuances_page(filter, limit).await)
    }

    /// The open charges: active issuances that are `WAITED` or `READY`,
    /// soonest deadline first (no deadline last), `limit` at most (an account
    /// has one or two; the bound keeps a page small whatever the table holds).
    pub async fn open_charges(&self, limit: i64) -> Result<Vec<IssuanceRow>, StoreError> {
        engine!(self, db => db.open_charges(limit).await)
    }

    /// The newest `limit` balance answers, oldest first.
    pub async fn balance_history(&self, limit: i64) -> Result<Vec<BalancePoint>, StoreError> {
        engine!(self, db => db.balance_history(limit).await)
    }

    /// Up to `limit` events with a seq below `before`, newest first, of
    /// `event_type` if given.
    pub async fn events_before(
        &self,
        before: i64,
        event_type: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        engine!(self, db => db.events_before(before, event_type, limit).await)
    }

    /// The deliveries of issuance `id`'s events, by event then sink.
    pub async fn deliveries_of(&self, id: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        engine!(self, db => db.deliveries_of(id).await)
    }
}
