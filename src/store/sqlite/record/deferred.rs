//! What follows from a status change besides the status: the transition row
//! and the clearing of flags, collected while a batch runs and written by one
//! statement each at its end ([`Deferred`]); and raising flags, written at once.
//!
//! Deferring changes when, not whether: the rows go out in the same transaction
//! as the statuses they record, before it commits.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Sqlite, Transaction};

use crate::domain::Flag;
use crate::domain::status::Status;
use crate::domain::timefmt::to_db;
use crate::store::sqlite::rows::encode_rows;
use crate::store::sqlite::sql;
use crate::store::{Context, StoreError};
use crate::store::{FlagRaised, Recorded, TransitionRecorded};

/// The writes of a batch that go in one statement each at its end instead of
/// one per record: every statement is a round trip to sqlx's SQLite worker
/// thread, and those round trips, not SQLite, were most of a batch's cost
/// (`cargo bench --bench watcher -- write`). Same transaction, same outcome.
#[derive(Debug, Default)]
pub(super) struct Deferred {
    /// In the order they were observed.
    transitions: Vec<TransitionRow>,
    /// Issuances that left READY.
    clear_flags: Vec<ClearFlagsRow>,
    /// Raw ids of the issuances above: a later record for one of them must
    /// see these writes first.
    ids: HashSet<Vec<u8>>,
}

/// A row of [`sql::INSERT_TRANSITIONS`]: the columns of `transitions` it fills.
#[derive(Debug, Serialize)]
struct TransitionRow {
    issuance_id: String,
    from_status: Option<String>,
    to_status: &'static str,
    observed_at: String,
    modified_at: Option<String>,
    anomaly: Option<String>,
}

/// A row of [`sql::CLEAR_FLAGS`].
#[derive(Debug, Serialize)]
struct ClearFlagsRow {
    issuance_id: String,
    cleared_at: String,
}

impl Deferred {
    /// Whether writes for the issuance with `raw_id` are waiting here.
    pub(super) fn touches(&self, raw_id: &[u8]) -> bool {
        self.ids.contains(raw_id)
    }

    /// Queues the row of `transition`, observed at `observed_at` (the stored
    /// layout), and the clearing of the issuance's flags if it left READY.
    /// Flags only ever apply to READY, so no flag raised in the same batch is
    /// one the clearing could hit.
    pub(super) fn push(
        &mut self,
        raw_id: &[u8],
        transition: &TransitionRecorded,
        observed_at: &str,
        modified_at: Option<DateTime<Utc>>,
    ) {
        self.transitions.push(TransitionRow {
            issuance_id: transition.issuance_id.clone(),
            from_status: transition.from.clone(),
            to_status: transition.to.as_str(),
            observed_at: observed_at.to_owned(),
            modified_at: modified_at.map(to_db),
            anomaly: transition.anomaly.clone(),
        });
        if transition.to != Status::Ready {
            self.clear_flags.push(ClearFlagsRow {
                issuance_id: transition.issuance_id.clone(),
                cleared_at: observed_at.to_owned(),
            });
        }
        self.ids.insert(raw_id.to_vec());
    }

    /// Writes what is queued (nothing if nothing is) and empties the queue.
    pub(super) async fn flush(
        &mut self,
        tx: &mut Transaction<'_, Sqlite>,
        recorded: &mut Recorded,
    ) -> Result<(), StoreError> {
        if !self.transitions.is_empty() {
            sqlx::query(sql::INSERT_TRANSITIONS)
                .bind(encode_rows(&self.transitions)?)
                .execute(&mut **tx)
                .await
                .context("recording transitions")?;
        }
        if !self.clear_flags.is_empty() {
            let cleared = sqlx::query(sql::CLEAR_FLAGS)
                .bind(encode_rows(&self.clear_flags)?)
                .execute(&mut **tx)
                .await
                .context("clearing flags")?;
            recorded.flags_cleared += cleared.rows_affected();
        }
        self.transitions.clear();
        self.clear_flags.clear();
        self.ids.clear();
        Ok(())
    }
}

/// Raises each of `flags` (kind and rung) on issuance `id` that is not raised
/// yet, one statement a flag (flags are rare: READY issuances near their due
/// date). Each raised row writes its event (a trigger on `flags`).
pub(super) async fn raise_flags(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
    flags: &[Flag],
    now: &str,
    recorded: &mut Recorded,
) -> Result<(), StoreError> {
    for flag in flags {
        let raised = sqlx::query(sql::RAISE_FLAG)
            .bind(id)
            .bind(flag.kind.as_str())
            .bind(now)
            .bind(flag.lead_ms())
            .execute(&mut **tx)
            .await
            .context("raising a flag")?;
        if raised.rows_affected() == 1 {
            recorded.flags_raised.push(FlagRaised {
                issuance_id: id.to_owned(),
                kind: flag.kind,
                lead: flag.lead,
            });
        }
    }
    Ok(())
}
