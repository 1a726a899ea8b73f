//! Writing observations over the stored status, and what changed.
//!
//! An observation is written only where the row is still leased to this
//! daemon under the fence it was claimed with (`fence` in its row) and the
//! stored status is still the one it is compared against (`expected_status`),
//! and [`transition`] is derived from exactly that status: the checks and the
//! write are one statement, so no other writer can come between them. A
//! result whose lease has ended is not written at all ([`Written::NotHeld`]).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sqlx::{Sqlite, Transaction};

use crate::domain::timefmt::to_db;
use crate::domain::{Decision, Observation};
use crate::store::sqlite::rows::encode_rows;
use crate::store::sqlite::sql;
use crate::store::{Context, StoreError, Watch};
use crate::store::{PollRecord, RecordKind};

pub(super) use crate::store::record::decide::transition;

/// A record that observed its issuance, with what it observed.
#[derive(Debug, Clone, Copy)]
pub(super) struct ObservedRecord<'a> {
    pub record: &'a PollRecord,
    pub observation: &'a Observation,
    pub decision: Decision,
}

impl<'a> ObservedRecord<'a> {
    fn of(record: &'a PollRecord) -> Option<Self> {
        match &record.kind {
            RecordKind::Observed {
                observation,
                decision,
                ..
            } => Some(Self {
                record,
                observation,
                decision: *decision,
            }),
            _ => None,
        }
    }

    /// The observation as a row for [`write_observations`], to be written only
    /// over the stored status `expected`.
    fn row(self, expected: Option<&'a str>) -> ObservationRow<'a> {
        let (watch, next) = Watch::after(self.decision, self.record.now);
        let observation = self.observation;
        let vbank = observation.vbank.as_ref();
        ObservationRow {
            id: String::from_utf8_lossy(&self.record.claimed.raw_id),
            status: observation.status.as_str(),
            amount: observation.amount,
            created_at: observation.created_at.map(to_db),
            modified_at: observation.modified_at.map(to_db),
            vbank_due_at: vbank.and_then(|v| v.due_at).map(to_db),
            vbank_account_number: vbank.and_then(|v| v.account_number.as_deref()),
            bank_name: vbank.and_then(|v| v.bank_name.as_deref()),
            vbank_holder_name: vbank.and_then(|v| v.holder_name.as_deref()),
            watch: watch.as_str(),
            next_poll_at: to_db(next),
            polled_at: to_db(self.record.now),
            last_error: (!observation.warnings.is_empty()).then(|| observation.warnings.join("; ")),
            expected_status: expected,
            fence: self.record.claimed.fence,
        }
    }

    /// Changes neither the stored status (as claimed) nor the watch.
    fn is_steady(self) -> bool {
        matches!(self.decision, Decision::PollAt(_))
            && self.record.claimed.status.as_deref() == Some(self.observation.status.as_str())
    }
}

/// A row of [`sql::WRITE_OBSERVATIONS`] and [`sql::WRITE_STEADY_OBSERVATIONS`],
/// read there by these field names.
#[derive(Debug, Serialize)]
struct ObservationRow<'a> {
    id: Cow<'a, str>,
    status: &'static str,
    amount: Option<i64>,
    created_at: Option<String>,
    modified_at: Option<String>,
    vbank_due_at: Option<String>,
    vbank_account_number: Option<&'a str>,
    bank_name: Option<&'a str>,
    vbank_holder_name: Option<&'a str>,
    watch: &'static str,
    next_poll_at: String,
    /// Both `last_polled_at` and `last_seen_at`.
    polled_at: String,
    /// The observation's warnings, if any.
    last_error: Option<String>,
    /// The stored status this row may be written over (`None`: never seen).
    expected_status: Option<&'a str>,
    /// The fence of the lease the poll ran under.
    fence: i64,
}

/// Which statement writes an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Same status as stored, still watched: leaves `status` and `watch` out of
    /// the `SET`, so SQLite does not rewrite the index entries that cover them
    /// (two random pages per row, most of the cost of a batch of quiet polls).
    Steady,
    /// Any observation.
    Any,
}

impl Shape {
    fn statement(self) -> &'static str {
        match self {
            Shape::Steady => sql::WRITE_STEADY_OBSERVATIONS,
            Shape::Any => sql::WRITE_OBSERVATIONS,
        }
    }
}

/// Writes, in one statement, every observation in the batch whose stored
/// status is still the one it was claimed with, under a lease `owner` still
/// holds (the usual case). Returns the ids written; the rest (the lease ended,
/// or the id occurs twice in the batch) take [`write_observation`]. Same
/// columns and rule as that path.
pub(super) async fn update_observations_in_bulk(
    tx: &mut Transaction<'_, Sqlite>,
    owner: &str,
    records: &[PollRecord],
) -> Result<HashSet<Vec<u8>>, StoreError> {
    let mut seen = HashMap::<&[u8], usize>::new();
    for record in records {
        *seen.entry(record.claimed.raw_id.as_slice()).or_default() += 1;
    }
    let (mut steady, mut moving) = (Vec::new(), Vec::new());
    for observed in records
        .iter()
        .filter(|r| seen[r.claimed.raw_id.as_slice()] == 1)
        .filter_map(ObservedRecord::of)
    {
        let row = observed.row(observed.record.claimed.status.as_deref());
        if observed.is_steady() {
            steady.push(row);
        } else {
            moving.push(row);
        }
    }
    let mut written = write_observations(tx, owner, &steady, Shape::Steady).await?;
    written.extend(write_observations(tx, owner, &moving, Shape::Any).await?);
    Ok(written)
}

/// What [`write_observation`] wrote over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Written {
    /// The observation replaced this stored status (`None`: never seen before).
    Over(Option<String>),
    /// The lease the poll ran under has ended (expired and claimed again,
    /// taken over, or revoked by another program's edit), or the row is gone:
    /// the result is stale and nothing is recorded.
    NotHeld,
}

/// Writes one observation and returns the stored status it replaced.
/// `status_written`: [`update_observations_in_bulk`] already wrote it over the
/// status it was claimed with.
pub(super) async fn write_observation(
    tx: &mut Transaction<'_, Sqlite>,
    owner: &str,
    observed: ObservedRecord<'_>,
    status_written: bool,
) -> Result<Written, StoreError> {
    let claimed = &observed.record.claimed.status;
    if status_written || write_one(tx, owner, observed, claimed.as_deref()).await? {
        return Ok(Written::Over(claimed.clone()));
    }
    // While the lease holds, the status at claim time is still current (other
    // programs' edits of it end the lease). Should a writer have changed it
    // without ending the lease, read it again inside this transaction, where
    // it can no longer change, and write over that, still under the lease.
    let current: Option<Option<String>> = sqlx::query_scalar(sql::STATUS_OF)
        .bind(String::from_utf8_lossy(&observed.record.claimed.raw_id))
        .fetch_optional(&mut **tx)
        .await
        .context("re-reading a status changed by another writer")?;
    match current {
        Some(current) if write_one(tx, owner, observed, current.as_deref()).await? => {
            Ok(Written::Over(current))
        }
        // Not ours any more, or deleted (neither can change again: we hold
        // the write lock).
        _ => Ok(Written::NotHeld),
    }
}

/// Writes one observation over the stored status `expected` under `owner`'s
/// lease; whether it matched.
async fn write_one(
    tx: &mut Transaction<'_, Sqlite>,
    owner: &str,
    observed: ObservedRecord<'_>,
    expected: Option<&str>,
) -> Result<bool, StoreError> {
    let row = observed.row(expected);
    Ok(
        !write_observations(tx, owner, std::slice::from_ref(&row), Shape::Any)
            .await?
            .is_empty(),
    )
}

/// Writes observation rows in one statement, each only where `owner` still
/// holds the row's lease and the stored status is still the row's expected one (and, for [`Shape::Steady`], the row is still
/// watched, so that leaving `watch` out changes nothing). Returns the ids written.
async fn write_observations(
    tx: &mut Transaction<'_, Sqlite>,
    owner: &str,
    rows: &[ObservationRow<'_>],
    shape: Shape,
) -> Result<HashSet<Vec<u8>>, StoreError> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let written: Vec<String> = sqlx::query_scalar(shape.statement())
        .bind(encode_rows(&rows)?)
        .bind(owner)
        .fetch_all(&mut **tx)
        .await
        .context("recording observations")?;
    Ok(written.into_iter().map(String::into_bytes).collect())
}
