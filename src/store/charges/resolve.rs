//! Resolving a charge request of unknown outcome (`charges resolve`): a
//! person looked in the partner console and says what they found.
//!
//! Invariants: only an `unknown` request that nobody resolved can be
//! resolved, and only once (checked here with a reason, and by a trigger for
//! other programs); the request keeps its state (`unknown` is what the
//! program knew) and gains `resolution`, `resolved_at` and `resolved_by`. A
//! charge found (`Resolution::Issuance`) is watched from the same
//! transaction on, like `add`; one issuance is never the charge of two
//! requests.

use chrono::{DateTime, Utc};

use super::super::{Context, Store, StoreError, sql};
use super::ChargeRequestRow;
use crate::domain::timefmt::to_db;

/// What a person found for a request of unknown outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution<'a> {
    /// The request created this issuance (an id that passed `reject_reason`).
    Issuance(&'a str),
    /// No charge was created.
    None,
}

impl Resolution<'_> {
    /// As stored in `charge_requests.resolution`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Issuance(_) => "issuance",
            Resolution::None => "none",
        }
    }
}

/// Why request `id` (as read, `None`: no such row) cannot be resolved, if
/// it cannot.
pub fn resolution_refused(id: i64, row: Option<&ChargeRequestRow>) -> Option<String> {
    let Some(row) = row else {
        return Some(format!("there is no charge request {id}"));
    };
    if let (Some(resolution), Some(at)) = (&row.resolution, &row.resolved_at) {
        let found = match (resolution.as_str(), &row.issuance_id) {
            ("issuance", Some(issuance)) => format!("its charge is issuance {issuance}"),
            _ => "no charge was created".to_owned(),
        };
        return Some(format!(
            "charge request {id} was resolved already at {at} by {} ({found}); a resolution is never changed",
            row.resolved_by.as_deref().unwrap_or("-")
        ));
    }
    (row.state != "unknown").then(|| {
        format!(
            "charge request {id} is {}, not unknown: only a request of unknown outcome needs resolving",
            row.state
        )
    })
}

impl Store {
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
