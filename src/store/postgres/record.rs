//! PostgreSQL: record (see `store/record` for what must hold).
//!
//! The write path, top to bottom, one record after another in one
//! transaction per batch:
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
//! transition is derived from exactly the status that was replaced.
//!
//! Waits: a fenced `UPDATE` of a row another transaction has locked waits for
//! it, then re-checks the fence on the row as committed. Every transaction
//! that writes an event holds the outbox's advisory lock until it commits, so
//! two batches can wait on each other only when one holds a row the other
//! writes: a stale result for another daemon's row, or an answer outside a
//! poll (`record_answer_in`) on a row being recorded. PostgreSQL ends such a
//! deadlock after `deadlock_timeout` by failing one transaction; `record`
//! then writes that batch one record at a time.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::postgres::PgQueryResult;

use super::claim::{claim_in, claim_one_in};
use crate::domain::status::Status;
use crate::domain::{Decision, Flag, Observation};
use crate::store::Context as _;
use crate::store::record::decide::transition;
use crate::store::{
    Claimed, FlagRaised, Lease, PollRecord, RecordKind, Recorded, StoreError, Watch,
};

impl super::PgStore {
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
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
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
    conn: &mut PgConnection,
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
    conn: &mut PgConnection,
    owner: &str,
    record: &PollRecord,
    recorded: &mut Recorded,
) -> Result<(), StoreError> {
    // PostgreSQL text is always UTF-8, so every claimed id is (SQLite's
    // engine matches a rejected id by its raw bytes; nothing to do here).
    let id = String::from_utf8_lossy(&record.claimed.raw_id);
    let (fence, now) = (record.claimed.fence, record.now);
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
                    .bind(now)
                    .bind(observation.modified_at)
                    .bind(transition.anomaly.as_deref())
                    .execute(&mut *conn)
                    .await
                    .context("recording a transition")?;
                // Flags apply only to READY: leaving it clears them.
                if transition.to != Status::Ready {
                    let cleared = sqlx::query(sql::CLEAR_FLAGS)
                        .bind(id.as_ref())
                        .bind(now)
                        .execute(&mut *conn)
                        .await
                        .context("clearing flags")?;
                    recorded.flags_cleared += cleared.rows_affected();
                }
                recorded.transitions.push(transition);
            }
            raise_flags(conn, &id, flags, now, recorded).await
        }
        RecordKind::Failed {
            error,
            attempts,
            not_found_since,
            decision,
            flags,
        } => {
            let (watch, next) = Watch::after(*decision, now);
            let failed = sqlx::query(sql::RECORD_FAILED)
                .bind(id.as_ref())
                .bind(owner)
                .bind(fence)
                .bind(watch.as_str())
                .bind(next)
                .bind(i64::from(*attempts))
                .bind(now)
                .bind(error)
                .bind(*not_found_since)
                .execute(&mut *conn)
                .await
                .context("recording a failed poll")?;
            if !held(&failed) {
                stale(recorded, &id);
                return Ok(());
            }
            raise_flags(conn, &id, flags, now, recorded).await
        }
        RecordKind::Rejected { reason } => {
            let rejected = sqlx::query(sql::RECORD_REJECTED)
                .bind(id.as_ref())
                .bind(owner)
                .bind(fence)
                .bind(reason)
                .bind(now)
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
    conn: &mut PgConnection,
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
    // without ending the lease, read it again, locked and still under the
    // lease, and write over that.
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
    conn: &mut PgConnection,
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
        .bind(observation.created_at)
        .bind(observation.modified_at)
        .bind(vbank.and_then(|v| v.due_at))
        .bind(vbank.and_then(|v| v.account_number.as_deref()))
        .bind(vbank.and_then(|v| v.bank_name.as_deref()))
        .bind(vbank.and_then(|v| v.holder_name.as_deref()))
        .bind(next)
        .bind(record.now)
        .bind((!observation.warnings.is_empty()).then(|| observation.warnings.join("; ")))
        .execute(conn)
        .await
        .context("recording an observation")?;
    Ok(held(&written))
}

/// Raises each of `flags` (kind and rung) on issuance `id` that is not raised
/// yet. Each raised row writes its event (a trigger on `flags`).
async fn raise_flags(
    conn: &mut PgConnection,
    id: &str,
    flags: &[Flag],
    now: DateTime<Utc>,
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
fn held(written: &PgQueryResult) -> bool {
    written.rows_affected() > 0
}

/// A result whose lease had ended: dropped, counted, logged at debug.
fn stale(recorded: &mut Recorded, id: &str) {
    recorded.stale += 1;
    tracing::debug!(issuance = %id, "result dropped: its lease had ended (expired and claimed again, taken over, or the row edited meanwhile)");
}

/// The statements of this file. Each write of a result is fenced: it matches
/// its row only while `lease_owner` and `lease_fence` are still the claim's.
mod sql {
    /// Writes an observation: $1 id, $2 the daemon's id, $3 the claim's fence,
    /// $4 the stored status it must replace (NULL: never seen), $5 status,
    /// $6 watch, $7 amount, $8 created at, $9 modified at, $10 vbank due at,
    /// $11 account number, $12 bank name, $13 holder name (each NULL keeps the
    /// stored value), $14 next poll, $15 polled at, $16 warnings (last error).
    /// Ends the lease.
    pub(super) const WRITE_OBSERVATION: &str = "UPDATE issuances SET status = $5, watch = $6,
             amount = COALESCE($7, amount), created_at = COALESCE($8, created_at),
             modified_at = COALESCE($9, modified_at), vbank_due_at = COALESCE($10, vbank_due_at),
             vbank_account_number = COALESCE($11, vbank_account_number),
             bank_name = COALESCE($12, bank_name),
             vbank_holder_name = COALESCE($13, vbank_holder_name),
             next_poll_at = $14, attempts = 0, polls = polls + 1,
             last_polled_at = $15, last_seen_at = $15, last_error = $16,
             not_found_since = NULL, lease_owner = NULL
         WHERE id = $1 AND lease_owner = $2 AND lease_fence = $3
           AND status IS NOT DISTINCT FROM $4";

    /// The stored status of issuance $1, locked, if it is still leased to $2
    /// under fence $3.
    pub(super) const STATUS_UNDER_LEASE: &str = "SELECT status FROM issuances
         WHERE id = $1 AND lease_owner = $2 AND lease_fence = $3 FOR UPDATE";

    /// A failed poll: $1 id, $2 the daemon's id, $3 the claim's fence, $4 watch,
    /// $5 next poll, $6 consecutive failures, $7 now, $8 the error, $9 first 404
    /// of the current run. Ends the lease.
    pub(super) const RECORD_FAILED: &str = "UPDATE issuances SET watch = $4, next_poll_at = $5,
             attempts = $6, polls = polls + 1, last_polled_at = $7, last_error = $8,
             not_found_since = $9, lease_owner = NULL
         WHERE id = $1 AND lease_owner = $2 AND lease_fence = $3";

    /// Ends the watch of an id that can never be looked up: $1 id, $2 the
    /// daemon's id, $3 the claim's fence, $4 reason, $5 now. Ends the lease.
    pub(super) const RECORD_REJECTED: &str = "UPDATE issuances SET watch = 'rejected',
             last_error = $4, last_polled_at = $5, lease_owner = NULL
         WHERE id = $1 AND lease_owner = $2 AND lease_fence = $3";

    /// Appends a transition: $1 issuance, $2 from, $3 to, $4 observed at,
    /// $5 modified at, $6 anomaly. Its trigger writes the event.
    pub(super) const INSERT_TRANSITION: &str = "INSERT INTO transitions
             (issuance_id, from_status, to_status, observed_at, modified_at, anomaly)
         VALUES ($1, $2, $3, $4, $5, $6)";

    /// Clears the open flags of issuance $1 at $2 (it left READY).
    pub(super) const CLEAR_FLAGS: &str =
        "UPDATE flags SET cleared_at = $2 WHERE issuance_id = $1 AND cleared_at IS NULL";

    /// Raises flag $2 with rung $4 (ms; 0 for OVERDUE) on issuance $1 at $3,
    /// unless that flag and rung were raised before.
    pub(super) const RAISE_FLAG: &str = "INSERT INTO flags (issuance_id, kind, raised_at, lead_ms)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";

    /// Starts watching id $1, unless it is watched already.
    pub(super) const ADD_ID: &str =
        "INSERT INTO issuances (id) VALUES ($1) ON CONFLICT (id) DO NOTHING";
}
