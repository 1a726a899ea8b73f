//! The store's interface for recording poll results (see the module above for
//! what must hold); each engine writes them its own way.

use super::{PollRecord, Recorded};
use crate::domain::{Decision, Observation};
use crate::store::{Claimed, Lease, Store, StoreError, engine};

impl Store {
    /// Writes a batch in one transaction. Should the batch fail for a reason other
    /// than contention, each record is retried alone, so one bad record cannot
    /// hold the others back; a record that still fails is dropped (its lease
    /// expires and the issuance is simply polled again).
    pub async fn record(&self, records: &[PollRecord]) -> Result<Recorded, StoreError> {
        engine!(self, db => db.record(records).await)
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
        engine!(self, db => db.record_and_claim(records, lease).await)
    }

    /// Records an answer the API gave outside a poll (a cancel's, a created
    /// charge's) through the same path as a poll's: see `record_answer_in`.
    pub async fn record_answer(
        &self,
        id: &str,
        observation: &Observation,
        decision: Decision,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Recorded, StoreError> {
        engine!(self, db => db.record_answer(id, observation, decision, now).await)
    }
}
