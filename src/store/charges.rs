//! Charge requests (`charge_requests`) and the balance history.
//!
//! Invariants (the money-safety argument):
//! - a request is `sending` *before* its POST can leave: the `charge` command
//!   inserts it so, and the daemon claims a `pending` one in one statement
//!   ([`Store::claim_charge_request`]); a claim can match a row only once, so
//!   no two performers ever send the same row;
//! - only its performer writes its outcome, and only over `sending` (or over
//!   an unresolved `unknown`, which the answer can only improve on);
//! - a row is never moved back to `pending`: a performer that dies leaves it
//!   `sending`, and whoever finds that performer dead makes it `unknown`
//!   (`owners.rs`), so a request of unknown outcome is shown, never re-sent;
//! - a created charge's issuance is recorded (added, first transition,
//!   events) in the same transaction as the request's outcome, unless its id
//!   is already stored as settled: an id is never merged into an old record
//!   (the request becomes `unknown`, `ISSUANCE_ID_REUSED`, for a person);
//! - an `unknown` request stands in the way of every new charge until a
//!   person resolves it ([`Store::open_charge`], `resolve.rs`).

use super::{Recorded, Store, StoreError, engine};
use crate::domain::{Decision, Observation};
use chrono::{DateTime, Utc};
use serde::Serialize;
mod resolve;
pub use resolve::{Resolution, resolution_refused};

/// A request claimed for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargeRequest {
    pub id: i64,
    pub amount: i64,
    /// Send even while a charge is open.
    pub force: bool,
}

/// A row of `charge_requests`, as the CLI shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ChargeRequestRow {
    pub id: i64,
    pub amount: i64,
    pub requested_at: String,
    pub state: String,
    pub force: i64,
    pub performed_by: Option<String>,
    pub sent_at: Option<String>,
    pub finished_at: Option<String>,
    pub issuance_id: Option<String>,
    pub http_status: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// `issuance` or `none`, once a person resolved an `unknown` request.
    pub resolution: Option<String>,
    pub resolved_at: Option<String>,
    pub resolved_by: Option<String>,
    /// What a forced request was sent past, if anything stood in the way.
    pub forced_past: Option<String>,
    /// Who asked: `cli` (the `charge` command, another program's INSERT) or
    /// `top_up` (the top-up rule).
    pub source: String,
}

/// What a request came to, to be written.
#[derive(Debug, Clone, Copy)]
pub enum ChargeResult<'a> {
    /// Issuance `issuance_id` was created; `observation` is its object as
    /// answered, recorded as its first sighting with `decision`.
    Created {
        issuance_id: &'a str,
        observation: Option<&'a Observation>,
        decision: Decision,
        /// Why the object could not be read, if it could not.
        problem: Option<&'a str>,
    },
    /// The API refused: nothing was created.
    Refused {
        http_status: u16,
        code: &'a str,
        reason: &'a str,
    },
    /// No answer that says what happened.
    Unknown {
        http_status: Option<u16>,
        code: &'a str,
        detail: &'a str,
    },
    /// Refused here before sending.
    Rejected { code: &'a str, message: &'a str },
}

/// What stands in the way of a new charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenCharge {
    /// A request of unknown outcome nobody resolved: it may have created a
    /// charge that nobody watches.
    Unknown {
        id: i64,
        amount: i64,
        /// When it became unknown (as stored).
        since: String,
    },
    /// An issuance still WAITED or READY (Bunjang allows one READY charge).
    Issuance { id: String, status: String },
    /// Another request in flight, or pending since before this one.
    Request { id: i64, state: String },
}

/// Whether a created charge's issuance id may be recorded as a new charge,
/// given the status stored under that id (if any). A settled issuance never
/// changes again: a "new" charge under its id means the id was reused (by
/// the API, or a simulator restarted without its state), and merging the two
/// would record a transition out of a terminal status and lose the charge.
pub fn adoption_refused(stored_status: Option<&str>) -> Option<String> {
    let status: crate::domain::Status = stored_status?.parse().ok()?;
    status.is_terminal().then(|| status.as_str().to_owned())
}

/// What writing a request's outcome did.
#[derive(Debug, Default)]
pub struct Finished {
    /// Whether the request row was still this handle's to write.
    pub written: bool,
    /// What the issuance's recording changed.
    pub recorded: Recorded,
    /// A created charge whose id is stored as settled: not merged; the
    /// request was written `unknown` ([`ID_REUSED`]) with this message.
    pub reused: Option<String>,
}

/// The code of a created charge whose issuance id was already settled here.
pub const ID_REUSED: &str = "ISSUANCE_ID_REUSED";

impl Store {
    /// Records a request that this handle sends at once (the `charge`
    /// command): it is `sending` from its first instant. Returns its id.
    pub async fn start_charge_request(
        &self,
        amount: i64,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        engine!(self, db => db.start_charge_request(amount, force, now).await)
    }

    /// Whether any request is pending; a read, so that an idle daemon looks
    /// without taking the write lock.
    pub async fn any_pending_charge_request(&self) -> Result<bool, StoreError> {
        engine!(self, db => db.any_pending_charge_request().await)
    }

    /// Claims the oldest pending request (pending -> sending) for this handle.
    pub async fn claim_charge_request(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<ChargeRequest>, StoreError> {
        engine!(self, db => db.claim_charge_request(now).await)
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
        engine!(self, db => db.finish_charge_request(id, result, now, observed_at).await)
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
        engine!(self, db => db.open_charge(request, max_amount).await)
    }

    /// Records that forced request `id` (in flight for this handle) is sent
    /// past `what`, before it is sent; whether the row was still this
    /// handle's.
    pub async fn record_forced_past(&self, id: i64, what: &str) -> Result<bool, StoreError> {
        engine!(self, db => db.record_forced_past(id, what).await)
    }

    /// The newest requests first, `limit` at most.
    pub async fn charge_requests(&self, limit: i64) -> Result<Vec<ChargeRequestRow>, StoreError> {
        engine!(self, db => db.charge_requests(limit).await)
    }

    pub async fn charge_request(&self, id: i64) -> Result<Option<ChargeRequestRow>, StoreError> {
        engine!(self, db => db.charge_request(id).await)
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
        engine!(self, db => db.record_balance(now, balance, expiring_30d, low).await)
    }

    /// The last balance recorded.
    pub async fn last_balance(&self) -> Result<Option<i64>, StoreError> {
        engine!(self, db => db.last_balance().await)
    }
}
