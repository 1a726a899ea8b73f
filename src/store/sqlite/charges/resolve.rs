//! SQLite: resolve.

use super::super::{SqliteStore, sql};
use crate::domain::timefmt::to_db;
use crate::store::{ChargeRequestRow, Resolution, resolution_refused};
use crate::store::{Context, StoreError};
use chrono::{DateTime, Utc};

impl SqliteStore {
    /// Resolves request `id` as `resolution`, by `by` at `now`; for a
    /// charge found, its issuance is added to the watched ones. Returns the
    /// row as resolved, or why it cannot be (nothing written then).
    pub async fn resolve_charge_request(
        &self,
        id: i64,
        resolution: Resolution<'_>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<ChargeRequestRow, String>, StoreError> {
        self.write("committing a charge request's resolution", async |tx| {
            let row: Option<ChargeRequestRow> = sqlx::query_as(sql::CHARGE_REQUEST)
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
                .bind(to_db(now))
                .bind(by)
                .execute(&mut **tx)
                .await
                .context("resolving a charge request")?
                .rows_affected();
            // The checks above read inside this transaction, so this only
            // fails if they and the statement disagree: never claim a
            // resolution that was not written.
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
