//! SQLite: recording poll results (see `store/record` for what must hold).
//!
//! The write path, top to bottom, one record after another in one
//! `BEGIN IMMEDIATE` transaction per batch (the same shape as PostgreSQL's):
//! 1. The result is written by one fenced `UPDATE` of its row: only while the
//!    row is still leased to this daemon under the claim's fence and, for an
//!    observation, still has the status the poll compares against. A result
//!    that matches no row is stale: nothing of it is written.
//! 2. Only if the observation was written and its status differs from the one
//!    it replaced: the transition row (its trigger writes the event), and the
//!    clearing of the flags when READY ended.
//! 3. The flags that apply now, each (kind, rung) at most once.
//!
//! The statement that checks the lease and the status is the one that
//! writes, so no other writer can come between the check and the write; the
//! transition is derived from exactly the status that was replaced
//! (`store/record/decide.rs`). The transaction holds SQLite's write lock from
//! its first statement, so nothing else writes while a batch runs.
//!
//! Every statement is a constant in `sql.rs`; each finds its row by primary
//! key (`tests.rs` checks the plans).

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteQueryResult;
use sqlx::{Sqlite, SqliteConnection, Transaction};

use super::claim::{claim_in, claim_one_in};
use super::{SqliteStore, sql};
use crate::domain::status::Status;
use crate::domain::timefmt::to_db;
use crate::domain::{Decision, Flag, Observation};
use crate::store::Context as _;
use crate::store::record::decide::transition;
use crate::store::{
    Claimed, FlagRaised, Lease, PollRecord, RecordKind, Recorded, StoreError, Watch,
};

#[cfg(test)]
mod tests;

impl SqliteStore {
    /// Writes a batch in one transaction. Should the batch fail for a reason other
    /// than contention, each record is retried alone, so one bad record cannot
    /// hold the others back; a record that still fails is dropped (its lease
    /// expires and the issuance is simply polled again).
    pub async fn record(&self, records: &[PollRecord]) -> Result<Recorded, StoreError> {
        match self.record_together(records).await {
            Ok(recorded) => Ok(recorded),
            Err(batch_error) if records.len() > 1 => {
                tracing::warn!(error = %batch_error, records = records.len(), "batch write failed; writing records one by one");
                let mut recorded = Recorded::default();
                let mut last_error = None;
                for record in records {
                    match self.record_together(std::slice::from_ref(record)).await {
                        Ok(one) => recorded.merge(one),
                        Err(e) => last_error = Some(e),
                    }
                }
                match last_error {
                    Some(e)
                        if recorded.transitions.is_empty() && recorded.flags_raised.is_empty() =>
                    {
                        Err(e)
                    }
                    _ => Ok(recorded),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Writes a batch and, in the same transaction, claims issuances for the
    /// slots it frees: one commit instead of two, which is most of the cost of
    /// a small batch. Should that fail, the batch is written alone through
    /// [`Store::record`] and nothing is claimed (`None`): the caller claims again
    /// later, after a pause, rather than retrying a failing claim at once.
    pub async fn record_and_claim(
        &self,
        records: &[PollRecord],
        lease: Lease,
    ) -> Result<(Recorded, Option<Vec<Claimed>>), StoreError> {
        let together = self
            .write("committing poll results", async |tx| {
                let recorded = write_batch(tx, &self.owner, records).await?;
                let claimed = claim_in(tx, &self.owner, &lease).await?;
                Ok((recorded, Some(claimed)))
            })
            .await;
        match together {
            Err(e) if !records.is_empty() => {
                tracing::warn!(error = %e, records = records.len(), "recording and claiming together failed; recording alone");
                Ok((self.record(records).await?, None))
            }
            other => other,
        }
    }

    async fn record_together(&self, records: &[PollRecord]) -> Result<Recorded, StoreError> {
        self.write("committing poll results", async |tx| {
            write_batch(tx, &self.owner, records).await
        })
        .await
    }

    /// Records an answer the API gave outside a poll (a cancel's, a created
    /// charge's) through the same path as a poll's: see `record_answer_in`.
    pub async fn record_answer(
        &self,
        id: &str,
        observation: &Observation,
        decision: Decision,
        now: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        self.write("committing an answer", async |tx| {
            record_answer_in(tx, &self.owner, id, observation, decision, now).await
        })
        .await
    }
}

/// Records `observation` of issuance `id` inside the caller's transaction: the
/// row is added if missing, leased to `owner` with a new fence (so a poll of it
/// in flight right now writes nothing when it ends), and written as a poll's
/// result under that lease. A status change is thus recorded once, whoever
/// sees it first: if a poll recorded it before this transaction, the stored
/// status already equals the observation and no second transition is written.
/// No flags are raised here; the next poll raises what applies.
pub(in crate::store) async fn record_answer_in(
    tx: &mut Transaction<'_, Sqlite>,
    owner: &str,
    id: &str,
    observation: &Observation,
    decision: Decision,
    now: DateTime<Utc>,
) -> Result<Recorded, StoreError> {
    sqlx::query(sql::ADD_ID)
        .bind(id)
        .execute(&mut **tx)
        .await
        .context("adding an answered issuance")?;
    let Some(claimed) = claim_one_in(tx, owner, id, now).await? else {
        return Ok(Recorded::default());
    };
    let record = PollRecord {
        claimed,
        now,
        kind: RecordKind::Observed {
            observation: observation.clone(),
            decision,
            flags: Vec::new(),
        },
    };
    write_batch(tx, owner, std::slice::from_ref(&record)).await
}

/// Writes `records` in order, each under the lease it was polled with (held
/// by `owner`), in the caller's transaction.
async fn write_batch(
    conn: &mut SqliteConnection,
    owner: &str,
    records: &[PollRecord],
) -> Result<Recorded, StoreError> {
    let mut recorded = Recorded::default();
    for record in records {
        write_record(conn, owner, record, &mut recorded).await?;
    }
    Ok(recorded)
}

/// Writes one poll's result and what follows from it.
async fn write_record(
    conn: &mut SqliteConnection,
    owner: &str,
    record: &PollRecord,
    recorded: &mut Recorded,
) -> Result<(), StoreError> {
    // Ids that were polled are valid UTF-8: the scheduler rejects the rest
    // (and a rejected id is matched by its raw bytes, below).
    let id = String::from_utf8_lossy(&record.claimed.raw_id);
    let fence = record.claimed.fence;
    let now = to_db(record.now);
    match &record.kind {
        RecordKind::Observed {
            observation,
            decision,
            flags,
        } => {
            let Written::Over(previous) =
                write_observation(conn, owner, record, observation, *decision).await?
            else {
                stale(recorded, &id);
                return Ok(());
            };
            if let Some(transition) = transition(&id, previous, observation.status) {
                sqlx::query(sql::INSERT_TRANSITION)
                    .bind(id.as_ref())
                    .bind(transition.from.as_deref())
                    .bind(transition.to.as_str())
                    .bind(&now)
                    .bind(observation.modified_at.map(to_db))
                    .bind(transition.anomaly.as_deref())
                    .execute(&mut *conn)
                    .await
                    .context("recording a transition")?;
                // Flags apply only to READY: leaving it clears them.
                if transition.to != Status::Ready {
                    let cleared = sqlx::query(sql::CLEAR_FLAGS)
                        .bind(id.as_ref())
                        .bind(&now)
                        .execute(&mut *conn)
                        .await
                        .context("clearing flags")?;
                    recorded.flags_cleared += cleared.rows_affected();
                }
                recorded.transitions.push(transition);
            }
            raise_flags(conn, &id, flags, &now, recorded).await
        }
        RecordKind::Failed {
            error,
            attempts,
            not_found_since,
            decision,
            flags,
        } => {
            let (watch, next) = Watch::after(*decision, record.now);
            let failed = sqlx::query(sql::RECORD_FAILED)
                .bind(id.as_ref())
                .bind(owner)
                .bind(fence)
                .bind(watch.as_str())
                .bind(to_db(next))
                .bind(i64::from(*attempts))
                .bind(&now)
                .bind(error)
                .bind(not_found_since.map(to_db))
                .execute(&mut *conn)
                .await
                .context("recording a failed poll")?;
            if !held(&failed) {
                stale(recorded, &id);
                return Ok(());
            }
            raise_flags(conn, &id, flags, &now, recorded).await
        }
        RecordKind::Rejected { reason } => {
            // Matched by the raw bytes, which need not be valid UTF-8.
            let rejected = sqlx::query(sql::RECORD_REJECTED)
                .bind(&record.claimed.raw_id)
                .bind(owner)
                .bind(fence)
                .bind(reason)
                .bind(&now)
                .execute(&mut *conn)
                .await
                .context("recording a rejected id")?;
            if !held(&rejected) {
                stale(recorded, &id);
            }
            Ok(())
        }
    }
}

/// What [`write_observation`] wrote over.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Written {
    /// The observation replaced this stored status (`None`: never seen before).
    Over(Option<String>),
    /// The lease the poll ran under has ended (expired and claimed again,
    /// taken over, or revoked by another program's edit), or the row is gone.
    NotHeld,
}

/// Writes an observation over the status it was claimed with, and returns
/// the stored status it replaced.
async fn write_observation(
    conn: &mut SqliteConnection,
    owner: &str,
    record: &PollRecord,
    observation: &Observation,
    decision: Decision,
) -> Result<Written, StoreError> {
    let claimed = record.claimed.status.as_deref();
    if update_observation(conn, owner, record, observation, decision, claimed).await? {
        return Ok(Written::Over(claimed.map(str::to_owned)));
    }
    // While the lease holds, the status at claim time is still current (other
    // programs' edits of it end the lease). Should a writer have changed it
    // without ending the lease, read it again, still under the lease (it can
    // no longer change: this transaction holds the write lock), and write
    // over that.
    let current: Option<Option<String>> = sqlx::query_scalar(sql::STATUS_UNDER_LEASE)
        .bind(String::from_utf8_lossy(&record.claimed.raw_id).as_ref())
        .bind(owner)
        .bind(record.claimed.fence)
        .fetch_optional(&mut *conn)
        .await
        .context("re-reading a status changed by another writer")?;
    match current {
        Some(current)
            if update_observation(
                conn,
                owner,
                record,
                observation,
                decision,
                current.as_deref(),
            )
            .await? =>
        {
            Ok(Written::Over(current))
        }
        _ => Ok(Written::NotHeld),
    }
}

/// The fenced write of one observation over the stored status `expected`;
/// whether it matched the row.
async fn update_observation(
    conn: &mut SqliteConnection,
    owner: &str,
    record: &PollRecord,
    observation: &Observation,
    decision: Decision,
    expected: Option<&str>,
) -> Result<bool, StoreError> {
    let (watch, next) = Watch::after(decision, record.now);
    let vbank = observation.vbank.as_ref();
    let written = sqlx::query(sql::WRITE_OBSERVATION)
        .bind(String::from_utf8_lossy(&record.claimed.raw_id).as_ref())
        .bind(owner)
        .bind(record.claimed.fence)
        .bind(expected)
        .bind(observation.status.as_str())
        .bind(watch.as_str())
        .bind(observation.amount)
        .bind(observation.created_at.map(to_db))
        .bind(observation.modified_at.map(to_db))
        .bind(vbank.and_then(|v| v.due_at).map(to_db))
        .bind(vbank.and_then(|v| v.account_number.as_deref()))
        .bind(vbank.and_then(|v| v.bank_name.as_deref()))
        .bind(vbank.and_then(|v| v.holder_name.as_deref()))
        .bind(to_db(next))
        .bind(to_db(record.now))
        .bind((!observation.warnings.is_empty()).then(|| observation.warnings.join("; ")))
        .execute(conn)
        .await
        .context("recording an observation")?;
    Ok(held(&written))
}

/// Raises each of `flags` (kind and rung) on issuance `id` that is not raised
/// yet. Each raised row writes its event (a trigger on `flags`).
async fn raise_flags(
    conn: &mut SqliteConnection,
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
            .execute(&mut *conn)
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

/// Whether a fenced write found its row still under the lease.
fn held(written: &SqliteQueryResult) -> bool {
    written.rows_affected() > 0
}

/// A result whose lease had ended: dropped, counted, logged at debug.
fn stale(recorded: &mut Recorded, id: &str) {
    recorded.stale += 1;
    tracing::debug!(issuance = %id, "result dropped: its lease had ended (expired and claimed again, taken over, or the row edited meanwhile)");
}
