//! SQLite: charges.

use super::record::record_answer_in;
use super::{SqliteStore, sql};
use crate::domain::timefmt::to_db;
use crate::store::Recorded;
use crate::store::{
    ChargeRequest, ChargeRequestRow, ChargeResult, Context, Finished, ID_REUSED, OpenCharge,
    StoreError, adoption_refused,
};
use chrono::{DateTime, Utc};
use sqlx::{Sqlite, Transaction};

mod resolve;

impl SqliteStore {
    /// Records a request that this handle sends at once (the `charge`
    /// command): it is `sending` from its first instant. Returns its id.
    pub async fn start_charge_request(
        &self,
        amount: i64,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.write("committing a charge request", async |tx| {
            sqlx::query_scalar(sql::START_CHARGE_REQUEST)
                .bind(amount)
                .bind(i64::from(force))
                .bind(&*self.owner)
                .bind(to_db(now))
                .fetch_one(&mut **tx)
                .await
                .context("recording a charge request")
        })
        .await
    }

    /// Whether any request is pending; a read, so that an idle daemon looks
    /// without taking the write lock.
    pub async fn any_pending_charge_request(&self) -> Result<bool, StoreError> {
        sqlx::query_scalar(sql::ANY_PENDING_CHARGE_REQUEST)
            .fetch_one(&self.pool)
            .await
            .context("looking for pending charge requests")
    }

    /// Claims the oldest pending request (pending -> sending) for this handle.
    pub async fn claim_charge_request(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<ChargeRequest>, StoreError> {
        let row: Option<(i64, i64, i64)> = self
            .write("committing a charge request claim", async |tx| {
                sqlx::query_as(sql::CLAIM_CHARGE_REQUEST)
                    .bind(&*self.owner)
                    .bind(to_db(now))
                    .fetch_optional(&mut **tx)
                    .await
                    .context("claiming a charge request")
            })
            .await?;
        Ok(row.map(|(id, amount, force)| ChargeRequest {
            id,
            amount,
            force: force != 0,
        }))
    }

    /// Writes request `id`'s outcome and, for a created charge, records its
    /// issuance, in one transaction (see [`Finished`]; a created charge whose
    /// id is stored as settled is written `unknown` instead, see
    /// [`adoption_refused`]). `now` stamps the request; `observed_at` (the
    /// business clock's now) the issuance's first sighting, like a poll's.
    pub async fn finish_charge_request(
        &self,
        id: i64,
        result: ChargeResult<'_>,
        now: DateTime<Utc>,
        observed_at: DateTime<Utc>,
    ) -> Result<Finished, StoreError> {
        self.write("committing a charge request's outcome", async |tx| {
            let reused = match result {
                ChargeResult::Created { issuance_id, .. } => {
                    let stored: Option<Option<String>> = sqlx::query_scalar(sql::STATUS_OF)
                        .bind(issuance_id)
                        .fetch_optional(&mut **tx)
                        .await
                        .context("reading the status stored under a created charge's id")?;
                    adoption_refused(stored.flatten().as_deref()).map(|s| (issuance_id, s))
                }
                _ => None,
            };
            let Some((issuance_id, status)) = reused else {
                return finish_in(tx, &self.owner, id, result, now, observed_at).await;
            };
            let message = format!(
                "the API answered with issuance id {issuance_id}, which this database holds as {status} (settled): \
                 not merged into that record (the id was reused, by the API or by a simulator restarted without its state); \
                 a charge MAY exist: check the partner console"
            );
            let unknown = ChargeResult::Unknown {
                http_status: None,
                code: ID_REUSED,
                detail: &message,
            };
            let mut finished = finish_in(tx, &self.owner, id, unknown, now, observed_at).await?;
            finished.reused = Some(message);
            Ok(finished)
        })
        .await
    }

    /// What stands in the way of sending request `request` (already
    /// `sending`, or about to be), if anything, most pressing first: a request
    /// of unknown outcome nobody resolved (it may have created a charge that
    /// nobody watches), an open issuance, then a request ahead of it (see
    /// `sql::REQUEST_AHEAD`: older and pending, or in flight; `max_amount`:
    /// the performer's bound, above which a pending request holds nobody up).
    pub async fn open_charge(
        &self,
        request: i64,
        max_amount: i64,
    ) -> Result<Option<OpenCharge>, StoreError> {
        let unknown: Option<(i64, i64, String)> = sqlx::query_as(sql::UNRESOLVED_UNKNOWN)
            .fetch_optional(&self.pool)
            .await
            .context("looking for charge requests of unknown outcome")?;
        if let Some((id, amount, since)) = unknown {
            return Ok(Some(OpenCharge::Unknown { id, amount, since }));
        }
        let issuance: Option<(Vec<u8>, String)> = sqlx::query_as(sql::OPEN_CHARGE)
            .fetch_optional(&self.pool)
            .await
            .context("looking for an open charge")?;
        if let Some((id, status)) = issuance {
            return Ok(Some(OpenCharge::Issuance {
                id: String::from_utf8_lossy(&id).into_owned(),
                status,
            }));
        }
        let request: Option<(i64, String)> = sqlx::query_as(sql::REQUEST_AHEAD)
            .bind(request)
            .bind(max_amount)
            .fetch_optional(&self.pool)
            .await
            .context("looking for a charge request ahead")?;
        Ok(request.map(|(id, state)| OpenCharge::Request { id, state }))
    }

    /// Records that forced request `id` (in flight for this handle) is sent
    /// past `what`, before it is sent; whether the row was still this
    /// handle's.
    pub async fn record_forced_past(&self, id: i64, what: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::RECORD_FORCED_PAST)
            .bind(id)
            .bind(&*self.owner)
            .bind(what)
            .execute(&self.writer)
            .await
            .context("recording what a forced charge request is sent past")?;
        Ok(done.rows_affected() == 1)
    }

    /// The newest requests first, `limit` at most.
    pub async fn charge_requests(&self, limit: i64) -> Result<Vec<ChargeRequestRow>, StoreError> {
        sqlx::query_as(sql::CHARGE_REQUESTS)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .context("listing charge requests")
    }

    pub async fn charge_request(&self, id: i64) -> Result<Option<ChargeRequestRow>, StoreError> {
        sqlx::query_as(sql::CHARGE_REQUEST)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context("reading a charge request")
    }

    /// The requests in flight of the dead performer `owner` become unknown.
    pub(super) async fn abandon_charge_requests_of(
        &self,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::ABANDON_CHARGE_REQUESTS_OF)
            .bind(owner)
            .bind(to_db(now))
            .execute(&self.writer)
            .await
            .context("marking a dead performer's charge requests unknown")?;
        Ok(done.rows_affected())
    }

    /// The requests of `owner` sent before `before` become unknown.
    pub(super) async fn abandon_stale_charge_requests_of(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::ABANDON_STALE_CHARGE_REQUESTS_OF)
            .bind(owner)
            .bind(to_db(now))
            .bind(to_db(before))
            .execute(&self.writer)
            .await
            .context("marking stale charge requests unknown")?;
        Ok(done.rows_affected())
    }

    /// Performers with requests in flight.
    pub(super) async fn charge_performers(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(sql::CHARGE_PERFORMERS)
            .fetch_all(&self.pool)
            .await
            .context("listing charge requests in flight")
    }

    /// Appends a balance answer and, if `low` (the threshold it fell below),
    /// a `balance.low` event, together.
    pub async fn record_balance(
        &self,
        now: DateTime<Utc>,
        balance: i64,
        expiring_30d: i64,
        low: Option<i64>,
    ) -> Result<(), StoreError> {
        let at = to_db(now);
        self.write("committing a balance", async |tx| {
            sqlx::query(sql::INSERT_BALANCE)
                .bind(&at)
                .bind(balance)
                .bind(expiring_30d)
                .execute(&mut **tx)
                .await
                .context("recording a balance")?;
            if let Some(threshold) = low {
                sqlx::query(sql::INSERT_BALANCE_LOW)
                    .bind(&at)
                    .bind(balance)
                    .bind(threshold)
                    .bind(expiring_30d)
                    .execute(&mut **tx)
                    .await
                    .context("raising balance.low")?;
            }
            Ok(())
        })
        .await
    }

    /// The last balance recorded.
    pub async fn last_balance(&self) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(sql::LAST_BALANCE)
            .fetch_optional(&self.pool)
            .await
            .context("reading the last balance")
    }
}

/// Writes request `id`'s outcome as `result` says, and records a created
/// charge's issuance, inside the caller's transaction.
async fn finish_in(
    tx: &mut Transaction<'_, Sqlite>,
    owner: &str,
    id: i64,
    result: ChargeResult<'_>,
    now: DateTime<Utc>,
    observed_at: DateTime<Utc>,
) -> Result<Finished, StoreError> {
    let (state, issuance, http_status, code, message) = match result {
        ChargeResult::Created {
            issuance_id,
            problem,
            ..
        } => ("created", Some(issuance_id), None, None, problem),
        ChargeResult::Refused {
            http_status,
            code,
            reason,
        } => ("refused", None, Some(http_status), Some(code), Some(reason)),
        ChargeResult::Unknown {
            http_status,
            code,
            detail,
        } => ("unknown", None, http_status, Some(code), Some(detail)),
        ChargeResult::Rejected { code, message } => {
            ("rejected", None, None, Some(code), Some(message))
        }
    };
    // The charge exists whatever becomes of the request row: watch it. First,
    // so that the charge.created event the state change below writes (by a
    // trigger, migration 20261206000011) carries the issuance as recorded:
    // its vbank, the account a person transfers to.
    let recorded = match result {
        ChargeResult::Created {
            issuance_id,
            observation: Some(observation),
            decision,
            ..
        } => record_answer_in(tx, owner, issuance_id, observation, decision, observed_at).await?,
        ChargeResult::Created { issuance_id, .. } => {
            sqlx::query(sql::ADD_ID)
                .bind(issuance_id)
                .execute(&mut **tx)
                .await
                .context("adding a created issuance")?;
            Recorded::default()
        }
        _ => Recorded::default(),
    };
    let written = sqlx::query(sql::FINISH_CHARGE_REQUEST)
        .bind(id)
        .bind(owner)
        .bind(state)
        .bind(issuance)
        .bind(http_status.map(i64::from))
        .bind(code)
        .bind(message)
        .bind(to_db(now))
        .execute(&mut **tx)
        .await
        .context("recording a charge request's outcome")?
        .rows_affected()
        == 1;
    Ok(Finished {
        written,
        recorded,
        reused: None,
    })
}

#[cfg(test)]
mod safety_tests;

#[cfg(test)]
mod tests;
