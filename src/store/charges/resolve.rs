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

use super::ChargeRequestRow;
use crate::store::{Store, StoreError, engine};
use chrono::{DateTime, Utc};

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
        engine!(self, db => db.resolve_charge_request(id, resolution, by, now).await)
    }
}
