//! Recording poll results: status, transition, flags and next poll time of each
//! issuance change together, in one short `BEGIN IMMEDIATE` transaction per batch.
//!
//! Exactly-once: the transition row is written in the same transaction as the
//! status it moves to, and only when the stored status differs from the
//! observed one. A crash before commit records nothing (the lease expires and
//! the issuance is polled again); after commit, the stored status already equals
//! the observation, so the same change can never be written twice.

use chrono::{DateTime, Utc};
use sqlx::{Sqlite, Transaction};

use super::claim::{Lease, claim_in};
use super::rows::encode_rows;
use super::{Claimed, Context, Store, StoreError};
use crate::domain::status::Status;
use crate::domain::timefmt::to_db;
use crate::domain::{Decision, FlagKind, Observation};

/// The columns every observation writes besides `status` and `watch`, from a
/// `json_each` row laid out by [`observation_row`].
macro_rules! observation_columns {
    () => {
        "amount = COALESCE(j.value ->> 2, amount), created_at = COALESCE(j.value ->> 3, created_at),
         modified_at = COALESCE(j.value ->> 4, modified_at),
         vbank_due_at = COALESCE(j.value ->> 5, vbank_due_at),
         vbank_account_number = COALESCE(j.value ->> 6, vbank_account_number),
         bank_name = COALESCE(j.value ->> 7, bank_name),
         vbank_holder_name = COALESCE(j.value ->> 8, vbank_holder_name),
         next_poll_at = j.value ->> 10, attempts = 0, polls = polls + 1,
         last_polled_at = j.value ->> 11, last_seen_at = j.value ->> 11,
         last_error = j.value ->> 12, not_found_since = NULL"
    };
}

/// The result of one poll, ready to be written.
#[derive(Debug, Clone)]
pub struct PollRecord {
    pub claimed: Claimed,
    pub now: DateTime<Utc>,
    pub kind: RecordKind,
}

#[derive(Debug, Clone)]
pub enum RecordKind {
    Observed {
        observation: Observation,
        decision: Decision,
        /// Flags that apply now (the watcher's flag rules decided them).
        flags: Vec<FlagKind>,
    },
    Failed {
        error: String,
        attempts: u32,
        not_found_since: Option<DateTime<Utc>>,
        decision: Decision,
        /// Flags that apply from what was known before this poll.
        flags: Vec<FlagKind>,
    },
    /// The id can never be looked up; the watch ends with this reason.
    Rejected { reason: String },
}

/// What a batch changed, for logs and metrics.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    pub transitions: Vec<TransitionRecorded>,
    pub flags_raised: Vec<FlagRaised>,
    pub flags_cleared: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRecorded {
    pub issuance_id: String,
    pub from: Option<String>,
    pub to: Status,
    pub anomaly: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagRaised {
    pub issuance_id: String,
    pub kind: FlagKind,
}

impl Store {
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
                let recorded = record_in(tx, records).await?;
                let claimed = claim_in(tx, &lease).await?;
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
            record_in(tx, records).await
        })
        .await
    }
}

/// Writes a batch inside the caller's transaction.
async fn record_in(
    tx: &mut Transaction<'_, Sqlite>,
    records: &[PollRecord],
) -> Result<Recorded, StoreError> {
    let mut recorded = Recorded::default();
    let mut deferred = Deferred::default();
    let updated = update_observations_in_bulk(tx, records).await?;
    for record in records {
        // A second result for the same issuance must see the first one's writes.
        if deferred.touches(&record.claimed.raw_id) {
            deferred.flush(tx, &mut recorded).await?;
        }
        let status_written = updated.contains(&record.claimed.raw_id);
        record_one(tx, record, status_written, &mut recorded, &mut deferred).await?;
    }
    deferred.flush(tx, &mut recorded).await?;
    Ok(recorded)
}

/// The writes of a batch that go in one statement each at its end instead of
/// one per record: every statement is a round trip to sqlx's SQLite worker
/// thread, and those round trips, not SQLite, were most of a batch's cost
/// (`cargo bench --bench watcher -- write`). Same transaction, same outcome.
#[derive(Debug, Default)]
struct Deferred {
    /// `[issuance_id, from_status, to_status, observed_at, modified_at, anomaly]`, in order.
    transitions: Vec<[Option<String>; 6]>,
    /// `[issuance_id, cleared_at]` of issuances that left READY.
    clear_flags: Vec<[String; 2]>,
    ids: std::collections::HashSet<Vec<u8>>,
}

impl Deferred {
    fn touches(&self, raw_id: &[u8]) -> bool {
        self.ids.contains(raw_id)
    }

    async fn flush(
        &mut self,
        tx: &mut Transaction<'_, Sqlite>,
        recorded: &mut Recorded,
    ) -> Result<(), StoreError> {
        if !self.transitions.is_empty() {
            let rows = encode_rows(&self.transitions)?;
            sqlx::query(
                "INSERT INTO transitions (issuance_id, from_status, to_status, observed_at, modified_at, anomaly)
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5
                 FROM json_each(?1) ORDER BY key",
            )
            .bind(rows)
            .execute(&mut **tx)
            .await
            .context("recording transitions")?;
        }
        if !self.clear_flags.is_empty() {
            let rows = encode_rows(&self.clear_flags)?;
            let cleared = sqlx::query(
                "UPDATE flags SET cleared_at = (SELECT j.value ->> 1 FROM json_each(?1) AS j
                                                WHERE j.value ->> 0 = flags.issuance_id)
                 WHERE cleared_at IS NULL AND issuance_id IN (SELECT value ->> 0 FROM json_each(?1))",
            )
            .bind(rows)
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

impl Recorded {
    fn merge(&mut self, other: Recorded) {
        self.transitions.extend(other.transitions);
        self.flags_raised.extend(other.flags_raised);
        self.flags_cleared += other.flags_cleared;
    }
}

fn watch_and_next(decision: Decision, now: DateTime<Utc>) -> (&'static str, String) {
    match decision {
        Decision::PollAt(at) => ("active", to_db(at)),
        Decision::Settled => ("settled", to_db(now)),
        Decision::GiveUpNotFound => ("not_found", to_db(now)),
    }
}

/// Writes one record. `status_written`: the bulk update already wrote this
/// observation over the status it was claimed with.
async fn record_one(
    tx: &mut Transaction<'_, Sqlite>,
    record: &PollRecord,
    status_written: bool,
    recorded: &mut Recorded,
    deferred: &mut Deferred,
) -> Result<(), StoreError> {
    let now = to_db(record.now);
    // Ids that were polled are valid UTF-8: the scheduler rejects the rest.
    let id = String::from_utf8_lossy(&record.claimed.raw_id);
    match &record.kind {
        RecordKind::Observed {
            observation, flags, ..
        } => {
            record_observation(
                tx,
                &id,
                record,
                status_written,
                observation,
                flags,
                recorded,
                deferred,
            )
            .await
        }
        RecordKind::Failed {
            error,
            attempts,
            not_found_since,
            decision,
            flags,
        } => {
            let (watch, next) = watch_and_next(*decision, record.now);
            sqlx::query(
                "UPDATE issuances SET watch = ?1, next_poll_at = ?2, attempts = ?3, polls = polls + 1,
                     last_polled_at = ?4, last_error = ?5, not_found_since = ?6
                 WHERE id = ?7",
            )
            .bind(watch)
            .bind(next)
            .bind(i64::from(*attempts))
            .bind(&now)
            .bind(error)
            .bind(not_found_since.map(to_db))
            .bind(id.as_ref())
            .execute(&mut **tx)
            .await
            .context("recording a failed poll")?;
            raise_flags(tx, &id, flags, &now, recorded).await
        }
        RecordKind::Rejected { reason } => {
            // Matched by the raw bytes, which need not be valid UTF-8.
            sqlx::query(
                "UPDATE issuances SET watch = 'rejected', last_error = ?1, last_polled_at = ?2
                 WHERE id = CAST(?3 AS TEXT)",
            )
            .bind(reason)
            .bind(&now)
            .bind(&record.claimed.raw_id)
            .execute(&mut **tx)
            .await
            .context("recording a rejected id")?;
            Ok(())
        }
    }
}

#[allow(clippy::too_many_arguments)] // the batch's outputs (`recorded`, `deferred`) travel separately
async fn record_observation(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
    record: &PollRecord,
    status_written: bool,
    observation: &Observation,
    flags: &[FlagKind],
    recorded: &mut Recorded,
    deferred: &mut Deferred,
) -> Result<(), StoreError> {
    let now = to_db(record.now);
    let mut previous = record.claimed.status.clone();
    // The status at claim time is almost always still current (we hold the
    // lease); if another writer changed it meanwhile, read it again inside this
    // transaction, where it can no longer change, and compare against that.
    for _ in 0..2 {
        if status_written {
            break;
        }
        let row = observation_row(record, previous.as_deref());
        if !write_observations(tx, &Vec::from_iter(row), Shape::Any)
            .await?
            .is_empty()
        {
            break;
        }
        let current: Option<Option<String>> =
            sqlx::query_scalar("SELECT status FROM issuances WHERE id = ?1")
                .bind(id)
                .fetch_optional(&mut **tx)
                .await
                .context("re-reading a status changed by another writer")?;
        match current {
            // Deleted by another program meanwhile: nothing to record.
            None => return Ok(()),
            Some(status) => previous = status,
        }
    }
    let to = observation.status;
    if previous.as_deref() != Some(to.as_str()) {
        let from = previous.as_deref().map(str::parse::<Status>);
        let anomaly = match from {
            Some(Err(_)) => Some(format!(
                "unexpected move from unknown stored status to {to}"
            )),
            Some(Ok(from)) if !Status::is_expected_move(Some(from), to) => {
                Some(format!("unexpected move {from} -> {to}"))
            }
            _ => None,
        };
        // Written at the end of the batch (see `Deferred`); flags only ever
        // apply to READY, so none is raised below that the clearing could hit.
        deferred.transitions.push([
            Some(id.to_owned()),
            previous.clone(),
            Some(to.as_str().to_owned()),
            Some(now.clone()),
            observation.modified_at.map(to_db),
            anomaly.clone(),
        ]);
        if to != Status::Ready {
            deferred.clear_flags.push([id.to_owned(), now.clone()]);
        }
        deferred.ids.insert(record.claimed.raw_id.clone());
        recorded.transitions.push(TransitionRecorded {
            issuance_id: id.to_owned(),
            from: previous,
            to,
            anomaly,
        });
    }
    raise_flags(tx, id, flags, &now, recorded).await
}

/// Writes, in one statement, every observation in the batch whose stored
/// status is still the one it was claimed with (the usual case: we hold the
/// lease). Returns the ids written; the rest (a concurrent writer changed the
/// status, or the id occurs twice in the batch) take the one-by-one path, which
/// re-reads the status first. Same columns and rule as that path's `UPDATE`.
async fn update_observations_in_bulk(
    tx: &mut Transaction<'_, Sqlite>,
    records: &[PollRecord],
) -> Result<std::collections::HashSet<Vec<u8>>, StoreError> {
    let mut seen = std::collections::HashMap::<&[u8], usize>::new();
    for record in records {
        *seen.entry(record.claimed.raw_id.as_slice()).or_default() += 1;
    }
    let (mut steady, mut moving) = (Vec::new(), Vec::new());
    for record in records
        .iter()
        .filter(|r| seen[r.claimed.raw_id.as_slice()] == 1)
    {
        let expected = record.claimed.status.as_deref();
        if let Some(row) = observation_row(record, expected) {
            if is_steady(record) {
                steady.push(row);
            } else {
                moving.push(row);
            }
        }
    }
    let mut written = write_observations(tx, &steady, Shape::Steady).await?;
    written.extend(write_observations(tx, &moving, Shape::Any).await?);
    Ok(written)
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

/// An observation that changes neither the stored status nor the watch.
fn is_steady(record: &PollRecord) -> bool {
    match &record.kind {
        RecordKind::Observed {
            observation,
            decision: Decision::PollAt(_),
            ..
        } => record.claimed.status.as_deref() == Some(observation.status.as_str()),
        _ => false,
    }
}

/// An observation as a row for [`write_observations`], to be written only over
/// the stored status `expected` (`None` for records that observed nothing).
fn observation_row(record: &PollRecord, expected: Option<&str>) -> Option<serde_json::Value> {
    let RecordKind::Observed {
        observation,
        decision,
        ..
    } = &record.kind
    else {
        return None;
    };
    let (watch, next) = watch_and_next(*decision, record.now);
    let warnings = (!observation.warnings.is_empty()).then(|| observation.warnings.join("; "));
    let vbank = observation.vbank.clone().unwrap_or_default();
    Some(serde_json::json!([
        String::from_utf8_lossy(&record.claimed.raw_id),
        observation.status.as_str(),
        observation.amount,
        observation.created_at.map(to_db),
        observation.modified_at.map(to_db),
        vbank.due_at.map(to_db),
        vbank.account_number,
        vbank.bank_name,
        vbank.holder_name,
        watch,
        next,
        to_db(record.now),
        warnings,
        expected,
    ]))
}

/// Writes observation rows in one statement, each only where the stored status
/// is still the row's expected one (and, for [`Shape::Steady`], the row is still
/// watched, so that leaving `watch` out changes nothing). Returns the ids written.
async fn write_observations(
    tx: &mut Transaction<'_, Sqlite>,
    rows: &[serde_json::Value],
    shape: Shape,
) -> Result<std::collections::HashSet<Vec<u8>>, StoreError> {
    if rows.is_empty() {
        return Ok(Default::default());
    }
    let sql = match shape {
        Shape::Steady => concat!(
            "UPDATE issuances SET ",
            observation_columns!(),
            " FROM json_each(?1) AS j
             WHERE issuances.id = j.value ->> 0 AND issuances.status IS j.value ->> 13
               AND issuances.watch = 'active'
             RETURNING issuances.id"
        ),
        Shape::Any => concat!(
            "UPDATE issuances SET status = j.value ->> 1, watch = j.value ->> 9, ",
            observation_columns!(),
            " FROM json_each(?1) AS j
             WHERE issuances.id = j.value ->> 0 AND issuances.status IS j.value ->> 13
             RETURNING issuances.id"
        ),
    };
    let written: Vec<String> = sqlx::query_scalar(sql)
        .bind(encode_rows(&rows)?)
        .fetch_all(&mut **tx)
        .await
        .context("recording observations")?;
    Ok(written.into_iter().map(String::into_bytes).collect())
}

async fn raise_flags(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
    flags: &[FlagKind],
    now: &str,
    recorded: &mut Recorded,
) -> Result<(), StoreError> {
    for kind in flags {
        let raised = sqlx::query(
            "INSERT INTO flags (issuance_id, kind, raised_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(kind.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await
        .context("raising a flag")?;
        if raised.rows_affected() == 1 {
            recorded.flags_raised.push(FlagRaised {
                issuance_id: id.to_owned(),
                kind: *kind,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{query_plan, temp_store};
    use super::*;
    use crate::domain::Vbank;
    use crate::store::Lease;

    fn observed(status: Status, claimed_status: Option<&str>, flags: Vec<FlagKind>) -> PollRecord {
        let now = Utc::now();
        PollRecord {
            claimed: Claimed {
                raw_id: b"42".to_vec(),
                status: claimed_status.map(str::to_owned),
                due_at: None,
                attempts: 0,
                not_found_since: None,
            },
            now,
            kind: RecordKind::Observed {
                observation: Observation {
                    status,
                    amount: Some(1000),
                    created_at: None,
                    modified_at: None,
                    vbank: Some(Vbank {
                        due_at: Some(now),
                        ..Vbank::default()
                    }),
                    warnings: vec![],
                },
                decision: if status.is_terminal() {
                    Decision::Settled
                } else {
                    Decision::PollAt(now)
                },
                flags,
            },
        }
    }

    async fn transitions(store: &Store) -> Vec<(Option<String>, String, Option<String>)> {
        sqlx::query_as("SELECT from_status, to_status, anomaly FROM transitions ORDER BY seq")
            .fetch_all(store.pool())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_batch_and_the_claim_for_its_freed_slots_commit_together() {
        let (store, _dir) = temp_store().await;
        sqlx::query("INSERT INTO issuances (id, status) VALUES ('42', 'WAITED'), ('43', NULL)")
            .execute(store.pool())
            .await
            .unwrap();
        let mut done = observed(Status::Ready, Some("WAITED"), vec![]);
        let later = done.now + chrono::Duration::minutes(5);
        if let RecordKind::Observed { decision, .. } = &mut done.kind {
            *decision = Decision::PollAt(later);
        }
        let lease = Lease {
            now: done.now + chrono::Duration::seconds(1),
            until: done.now + chrono::Duration::minutes(2),
            limit: 10,
        };
        let (recorded, claimed) = store.record_and_claim(&[done], lease).await.unwrap();
        assert_eq!(recorded.transitions.len(), 1);
        let claimed: Vec<Vec<u8>> = claimed.unwrap().into_iter().map(|c| c.raw_id).collect();
        // 42 was just written with its next poll in 5 minutes: only 43 is due.
        assert_eq!(claimed, [b"43".to_vec()]);
        assert_eq!(
            transitions(&store).await,
            [(Some("WAITED".into()), "READY".into(), None)]
        );
    }

    #[tokio::test]
    async fn a_steady_observation_of_a_row_no_longer_watched_still_takes_effect() {
        // Another program ended the watch while the poll was in flight: the
        // narrow statement for unchanged observations skips the row, and the
        // one-by-one path writes it as it always has.
        let (store, _dir) = temp_store().await;
        sqlx::query("INSERT INTO issuances (id, status, watch) VALUES ('42', 'READY', 'rejected')")
            .execute(store.pool())
            .await
            .unwrap();
        let ready = observed(Status::Ready, Some("READY"), vec![]);
        store.record(&[ready]).await.unwrap();
        let (watch, polls): (String, i64) =
            sqlx::query_as("SELECT watch, polls FROM issuances WHERE id = '42'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!((watch.as_str(), polls), ("active", 1));
        assert!(transitions(&store).await.is_empty());
    }

    #[tokio::test]
    async fn the_same_observation_recorded_twice_is_one_transition() {
        let (store, _dir) = temp_store().await;
        sqlx::query("INSERT INTO issuances (id) VALUES ('42')")
            .execute(store.pool())
            .await
            .unwrap();
        // A replay of the same claim (e.g. a retried batch) must not double-record.
        store
            .record(&[observed(Status::Waited, None, vec![])])
            .await
            .unwrap();
        store
            .record(&[observed(Status::Waited, None, vec![])])
            .await
            .unwrap();
        assert_eq!(transitions(&store).await, [(None, "WAITED".into(), None)]);
    }

    #[tokio::test]
    async fn a_backward_move_is_recorded_as_an_anomaly() {
        let (store, _dir) = temp_store().await;
        sqlx::query("INSERT INTO issuances (id, status) VALUES ('42', 'DONE')")
            .execute(store.pool())
            .await
            .unwrap();
        let recorded = store
            .record(&[observed(Status::Ready, Some("DONE"), vec![])])
            .await
            .unwrap();
        assert_eq!(
            recorded.transitions[0].anomaly.as_deref(),
            Some("unexpected move DONE -> READY")
        );
        assert_eq!(
            transitions(&store).await[0].2.as_deref(),
            Some("unexpected move DONE -> READY")
        );
    }

    #[tokio::test]
    async fn flags_are_raised_once_and_cleared_when_ready_ends() {
        let (store, _dir) = temp_store().await;
        sqlx::query("INSERT INTO issuances (id, status) VALUES ('42', 'READY')")
            .execute(store.pool())
            .await
            .unwrap();
        let first = store
            .record(&[observed(
                Status::Ready,
                Some("READY"),
                vec![FlagKind::DueSoon],
            )])
            .await
            .unwrap();
        let again = store
            .record(&[observed(
                Status::Ready,
                Some("READY"),
                vec![FlagKind::DueSoon],
            )])
            .await
            .unwrap();
        assert_eq!((first.flags_raised.len(), again.flags_raised.len()), (1, 0));
        let done = store
            .record(&[observed(Status::Done, Some("READY"), vec![])])
            .await
            .unwrap();
        assert_eq!(done.flags_cleared, 1);
        let open: i64 = sqlx::query_scalar("SELECT count(*) FROM flags WHERE cleared_at IS NULL")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(open, 0);
        let watch: String = sqlx::query_scalar("SELECT watch FROM issuances")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(watch, "settled");
    }

    #[tokio::test]
    async fn a_status_changed_by_another_writer_is_the_from_of_the_transition() {
        let (store, _dir) = temp_store().await;
        sqlx::query("INSERT INTO issuances (id, status) VALUES ('42', 'READY')")
            .execute(store.pool())
            .await
            .unwrap();
        // Claimed as WAITED, but the row says READY by the time the result is written.
        store
            .record(&[observed(Status::Done, Some("WAITED"), vec![])])
            .await
            .unwrap();
        assert_eq!(
            transitions(&store).await,
            [(Some("READY".into()), "DONE".into(), None)]
        );
    }

    #[tokio::test]
    async fn a_non_utf8_id_is_rejected_by_its_bytes() {
        let (store, _dir) = temp_store().await;
        sqlx::query("INSERT INTO issuances (id) VALUES (CAST(x'ff41' AS TEXT))")
            .execute(store.pool())
            .await
            .unwrap();
        let now = Utc::now() + chrono::Duration::seconds(1);
        let claimed = store.claim_due(now, now, 5).await.unwrap();
        assert_eq!(claimed[0].raw_id, vec![0xff, 0x41]);
        let record = PollRecord {
            claimed: claimed[0].clone(),
            now,
            kind: RecordKind::Rejected {
                reason: "not UTF-8".into(),
            },
        };
        store.record(&[record]).await.unwrap();
        let (watch, error): (String, String) =
            sqlx::query_as("SELECT watch, last_error FROM issuances")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!((watch.as_str(), error.as_str()), ("rejected", "not UTF-8"));
    }

    fn observed_id(id: &str, status: Status, claimed_status: Option<&str>) -> PollRecord {
        let mut record = observed(status, claimed_status, vec![]);
        record.claimed.raw_id = id.as_bytes().to_vec();
        record
    }

    #[tokio::test]
    async fn a_batch_records_each_change_once_and_raced_rows_by_their_current_status() {
        let (store, _dir) = temp_store().await;
        sqlx::query("INSERT INTO issuances (id, status) VALUES ('a', NULL), ('b', 'WAITED'), ('c', 'READY'), ('d', 'READY')")
            .execute(store.pool())
            .await
            .unwrap();
        let batch = [
            observed_id("a", Status::Waited, None),
            observed_id("b", Status::Waited, Some("WAITED")),
            // Claimed as WAITED, but another writer set READY meanwhile.
            observed_id("c", Status::Done, Some("WAITED")),
            observed_id("d", Status::Done, Some("READY")),
        ];
        let recorded = store.record(&batch).await.unwrap();
        assert_eq!(recorded.transitions.len(), 3);
        store.record(&batch).await.unwrap();
        let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
            "SELECT issuance_id, from_status, to_status FROM transitions ORDER BY issuance_id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let expected = [
            ("a", None, "WAITED"),
            ("c", Some("READY"), "DONE"),
            ("d", Some("READY"), "DONE"),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(i, f, t)| (i.to_string(), f.map(str::to_owned), t.to_string()))
            .collect();
        assert_eq!(rows, expected);
        let polls: i64 = sqlx::query_scalar("SELECT polls FROM issuances WHERE id = 'b'")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(polls, 2, "unchanged observations are still counted");
    }

    #[tokio::test]
    async fn the_bulk_update_finds_rows_by_primary_key() {
        let (store, _dir) = temp_store().await;
        let details = query_plan(
            &store,
            "EXPLAIN QUERY PLAN UPDATE issuances SET polls = polls + 1 FROM json_each(?1) AS j
             WHERE issuances.id = j.value ->> 0 AND issuances.status IS j.value ->> 13",
        )
        .await;
        assert!(
            details
                .iter()
                .any(|d| d.contains("SEARCH issuances USING INDEX sqlite_autoindex_issuances_1")),
            "{details:?}"
        );
        assert!(
            !details.iter().any(|d| d.starts_with("SCAN issuances")),
            "{details:?}"
        );
    }

    #[tokio::test]
    async fn transitions_cannot_be_rewritten() {
        let (store, _dir) = temp_store().await;
        sqlx::query("INSERT INTO issuances (id) VALUES ('42')")
            .execute(store.pool())
            .await
            .unwrap();
        store
            .record(&[observed(Status::Waited, None, vec![])])
            .await
            .unwrap();
        assert!(
            sqlx::query("UPDATE transitions SET to_status = 'DONE'")
                .execute(store.pool())
                .await
                .is_err()
        );
    }
}
