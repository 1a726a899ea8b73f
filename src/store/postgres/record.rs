//! PostgreSQL: record (see `store/record.rs` for what each call must do).

use chrono::{DateTime, Utc};

use crate::domain::{Decision, Observation};
use crate::store::*;

impl super::PgStore {
    pub async fn record(&self, records: &[PollRecord]) -> Result<Recorded, StoreError> {
        let _ = (records,);
        todo!("PostgreSQL: record")
    }

    pub async fn record_and_claim(
        &self,
        records: &[PollRecord],
        lease: Lease,
    ) -> Result<(Recorded, Option<Vec<Claimed>>), StoreError> {
        let _ = (records, lease);
        todo!("PostgreSQL: record_and_claim")
    }

    pub async fn record_answer(
        &self,
        id: &str,
        observation: &Observation,
        decision: Decision,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Recorded, StoreError> {
        let _ = (id, observation, decision, now);
        todo!("PostgreSQL: record_answer")
    }
}
