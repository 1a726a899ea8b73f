//! SQLite: batch.

use super::deferred::{Deferred, raise_flags};
use super::observe::{self, ObservedRecord, Written};
use crate::domain::timefmt::to_db;
use crate::domain::{Decision, Observation};
use crate::store::Lease;
use crate::store::sqlite::claim::{claim_in, claim_one_in};
use crate::store::sqlite::{SqliteStore, sql};
use crate::store::{Claimed, Context, StoreError, Watch};
use crate::store::{PollRecord, RecordKind, Recorded};
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Sqlite, Transaction};

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
                let recorded = Batch::write(tx, &self.owner, records).await?;
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
            Batch::write(tx, &self.owner, records).await
        })
        .await
    }
}

impl SqliteStore {
    /// Records an answer the API gave outside a poll (a cancel's, a created
    /// charge's) through the same path as a poll's: see `record_answer_in`.
    pub async fn record_answer(
        &self,
        id: &str,
        observation: &Observation,
        decision: Decision,
        now: chrono::DateTime<chrono::Utc>,
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
    now: chrono::DateTime<chrono::Utc>,
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
    Batch::write(tx, owner, std::slice::from_ref(&record)).await
}

/// A batch being written inside the caller's transaction: what it has changed
/// so far, and the rows it still owes at its end.
#[derive(Debug)]
struct Batch<'a> {
    /// The daemon whose leases the results must still be under.
    owner: &'a str,
    recorded: Recorded,
    deferred: Deferred,
}

impl<'a> Batch<'a> {
    async fn write(
        tx: &mut Transaction<'_, Sqlite>,
        owner: &'a str,
        records: &[PollRecord],
    ) -> Result<Recorded, StoreError> {
        let mut batch = Batch {
            owner,
            recorded: Recorded::default(),
            deferred: Deferred::default(),
        };
        let updated = observe::update_observations_in_bulk(tx, owner, records).await?;
        for record in records {
            // A second result for the same issuance must see the first one's writes.
            if batch.deferred.touches(&record.claimed.raw_id) {
                batch.deferred.flush(tx, &mut batch.recorded).await?;
            }
            let status_written = updated.contains(&record.claimed.raw_id);
            batch.record_one(tx, record, status_written).await?;
        }
        batch.deferred.flush(tx, &mut batch.recorded).await?;
        Ok(batch.recorded)
    }

    /// Writes one record. `status_written`: the bulk update already wrote this
    /// observation over the status it was claimed with.
    async fn record_one(
        &mut self,
        tx: &mut Transaction<'_, Sqlite>,
        record: &PollRecord,
        status_written: bool,
    ) -> Result<(), StoreError> {
        let now = to_db(record.now);
        // Ids that were polled are valid UTF-8: the scheduler rejects the rest.
        let id = String::from_utf8_lossy(&record.claimed.raw_id);
        match &record.kind {
            RecordKind::Observed {
                observation,
                decision,
                flags,
            } => {
                let observed = ObservedRecord {
                    record,
                    observation,
                    decision: *decision,
                };
                let Written::Over(previous) =
                    observe::write_observation(tx, self.owner, observed, status_written).await?
                else {
                    self.stale(&id);
                    return Ok(());
                };
                if let Some(transition) = observe::transition(&id, previous, observation.status) {
                    // Written at the end of the batch (see `Deferred`).
                    self.deferred.push(
                        &record.claimed.raw_id,
                        &transition,
                        &now,
                        observation.modified_at,
                    );
                    self.recorded.transitions.push(transition);
                }
                // Events in the order of their facts: a transition this record
                // queued goes out before the flags it brings (READY, then DUE_SOON).
                if !flags.is_empty() && self.deferred.touches(&record.claimed.raw_id) {
                    self.deferred.flush(tx, &mut self.recorded).await?;
                }
                raise_flags(tx, &id, flags, &now, &mut self.recorded).await
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
                    .bind(watch.as_str())
                    .bind(to_db(next))
                    .bind(i64::from(*attempts))
                    .bind(&now)
                    .bind(error)
                    .bind(not_found_since.map(to_db))
                    .bind(id.as_ref());
                if !self
                    .fenced(tx, failed, record, "recording a failed poll")
                    .await?
                {
                    return Ok(());
                }
                raise_flags(tx, &id, flags, &now, &mut self.recorded).await
            }
            RecordKind::Rejected { reason } => {
                // Matched by the raw bytes, which need not be valid UTF-8.
                let rejected = sqlx::query(sql::RECORD_REJECTED)
                    .bind(reason)
                    .bind(&now)
                    .bind(&record.claimed.raw_id);
                self.fenced(tx, rejected, record, "recording a rejected id")
                    .await?;
                Ok(())
            }
        }
    }

    /// A result whose lease had ended: dropped, counted, logged at debug.
    /// Runs `statement` with the lease's owner and fence bound last (every
    /// fenced write ends with them) and says whether the lease still held: a
    /// write that matched no row is a stale result, counted and dropped.
    async fn fenced(
        &mut self,
        tx: &mut Transaction<'_, Sqlite>,
        statement: Query<'_, Sqlite, SqliteArguments>,
        record: &PollRecord,
        doing: &'static str,
    ) -> Result<bool, StoreError> {
        let written = statement
            .bind(self.owner)
            .bind(record.claimed.fence)
            .execute(&mut **tx)
            .await
            .context(doing)?;
        let held = written.rows_affected() > 0;
        if !held {
            self.stale(&String::from_utf8_lossy(&record.claimed.raw_id));
        }
        Ok(held)
    }

    fn stale(&mut self, id: &str) {
        self.recorded.stale += 1;
        tracing::debug!(issuance = %id, "result dropped: its lease had ended (expired and claimed again, taken over, or the row edited meanwhile)");
    }
}
