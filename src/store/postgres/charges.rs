//! PostgreSQL: charge requests and the balance (see `store/charges.rs` for
//! what each call must do, and its module doc for the money-safety argument).
//!
//! Several daemons may write at once here: a pending request is claimed with
//! `FOR UPDATE SKIP LOCKED` in a CTE, so two claims never take the same row;
//! an outcome is written only by its performer over `sending` (or an
//! unresolved `unknown`); the status a created charge's id is judged by
//! (`adoption_refused`) is read with its row locked, so it cannot change
//! before the issuance is recorded in the same transaction.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};

use super::record::record_answer_in;
use crate::store::Context as _;
use crate::store::{
    ChargeRequest, ChargeRequestRow, ChargeResult, Finished, ID_REUSED, OpenCharge, Recorded,
    StoreError, adoption_refused,
};

mod resolve;
mod sql;

impl super::PgStore {
    pub async fn start_charge_request(
        &self,
        amount: i64,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(sql::START_CHARGE_REQUEST)
            .bind(amount)
            .bind(i64::from(force))
            .bind(&*self.owner)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .context("recording a charge request")
    }

    pub async fn any_pending_charge_request(&self) -> Result<bool, StoreError> {
        sqlx::query_scalar(sql::ANY_PENDING_CHARGE_REQUEST)
            .fetch_one(&self.pool)
            .await
            .context("looking for pending charge requests")
    }

    pub async fn claim_charge_request(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<ChargeRequest>, StoreError> {
        let row: Option<(i64, i64, i64)> = sqlx::query_as(sql::CLAIM_CHARGE_REQUEST)
            .bind(&*self.owner)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .context("claiming a charge request")?;
        Ok(row.map(|(id, amount, force)| ChargeRequest {
            id,
            amount,
            force: force != 0,
        }))
    }

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
                    // Resolutions check that an issuance is the charge of one
                    // request only: they must see this one's, or it theirs.
                    sqlx::query(sql::LOCK_CHARGE_ISSUANCES)
                        .execute(&mut **tx)
                        .await
                        .context("waiting for charge resolutions")?;
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
        // Read as text: PostgreSQL text is always valid UTF-8 (SQLite's
        // lossy decoding of a raw id has nothing to do here).
        let issuance: Option<(String, String)> = sqlx::query_as(sql::OPEN_CHARGE)
            .fetch_optional(&self.pool)
            .await
            .context("looking for an open charge")?;
        if let Some((id, status)) = issuance {
            return Ok(Some(OpenCharge::Issuance { id, status }));
        }
        let request: Option<(i64, String)> = sqlx::query_as(sql::REQUEST_AHEAD)
            .bind(request)
            .bind(max_amount)
            .fetch_optional(&self.pool)
            .await
            .context("looking for a charge request ahead")?;
        Ok(request.map(|(id, state)| OpenCharge::Request { id, state }))
    }

    pub async fn record_forced_past(&self, id: i64, what: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::RECORD_FORCED_PAST)
            .bind(id)
            .bind(&*self.owner)
            .bind(what)
            .execute(&self.pool)
            .await
            .context("recording what a forced charge request is sent past")?;
        Ok(done.rows_affected() == 1)
    }

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

    pub async fn record_balance(
        &self,
        now: DateTime<Utc>,
        balance: i64,
        expiring_30d: i64,
        low: Option<i64>,
    ) -> Result<(), StoreError> {
        self.write("committing a balance", async |tx| {
            sqlx::query(sql::INSERT_BALANCE)
                .bind(now)
                .bind(balance)
                .bind(expiring_30d)
                .execute(&mut **tx)
                .await
                .context("recording a balance")?;
            if let Some(threshold) = low {
                sqlx::query(sql::INSERT_BALANCE_LOW)
                    .bind(now)
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
    tx: &mut Transaction<'_, Postgres>,
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
        .bind(now)
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
