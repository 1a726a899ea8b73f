//! PostgreSQL: resolving a charge request of unknown outcome (see
//! `store/charges/resolve.rs`).
//!
//! The trigger `charge_requests_resolve_once` refuses a second resolution.
//! On SQLite its refusal fails one statement; here it would abort the whole
//! transaction. So, as on SQLite, everything is checked first, and under
//! locks that make the check hold until commit: the request's row is read
//! `FOR UPDATE` (a concurrent resolution of the same request waits, then
//! reads it resolved and is refused with the reason), and resolutions take
//! one advisory lock (two requests resolved at once to the same issuance
//! cannot both pass "no other request has it"). The trigger then never fires
//! for this code; it is there for other programs.

use chrono::{DateTime, Utc};

use super::sql;
use crate::store::Context as _;
use crate::store::{ChargeRequestRow, Resolution, StoreError, resolution_refused};

impl super::super::PgStore {
    pub async fn resolve_charge_request(
        &self,
        id: i64,
        resolution: Resolution<'_>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<ChargeRequestRow, String>, StoreError> {
        self.write("committing a charge request's resolution", async |tx| {
            sqlx::query(sql::LOCK_CHARGE_ISSUANCES)
                .execute(&mut **tx)
                .await
                .context("waiting for other charge resolutions")?;
            let row: Option<ChargeRequestRow> = sqlx::query_as(sql::CHARGE_REQUEST_FOR_UPDATE)
                .bind(id)
                .fetch_optional(&mut **tx)
                .await
                .context("reading the charge request to resolve")?;
            if let Some(refused) = resolution_refused(id, row.as_ref()) {
                return Ok(Err(refused));
            }
            let issuance = match resolution {
                Resolution::Issuance(issuance) => Some(issuance),
                Resolution::None => None,
            };
            if let Some(issuance) = issuance {
                let other: Option<i64> = sqlx::query_scalar(sql::REQUEST_OF_ISSUANCE)
                    .bind(issuance)
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await
                    .context("looking for the request of an issuance")?;
                if let Some(other) = other {
                    return Ok(Err(format!(
                        "issuance {issuance} is the charge of charge request {other}: it cannot be request {id}'s too"
                    )));
                }
            }
            let resolved = sqlx::query(sql::RESOLVE_CHARGE_REQUEST)
                .bind(id)
                .bind(resolution.as_str())
                .bind(issuance)
                .bind(now)
                .bind(by)
                .execute(&mut **tx)
                .await
                .context("resolving a charge request")?
                .rows_affected();
            // The row is locked since it was checked, so this only fails if
            // the check and the statement disagree: never claim a resolution
            // that was not written.
            if resolved != 1 {
                return Ok(Err(format!(
                    "charge request {id} could not be resolved (it is not an unresolved unknown request)"
                )));
            }
            if let Some(issuance) = issuance {
                sqlx::query(sql::ADD_ID)
                    .bind(issuance)
                    .execute(&mut **tx)
                    .await
                    .context("adding the issuance found")?;
            }
            let resolved: ChargeRequestRow = sqlx::query_as(sql::CHARGE_REQUEST)
                .bind(id)
                .fetch_one(&mut **tx)
                .await
                .context("reading the resolved charge request")?;
            Ok(Ok(resolved))
        })
        .await
    }
}
