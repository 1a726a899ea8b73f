//! PostgreSQL: claim (see `store/claim.rs` for what each call must do).

use chrono::{DateTime, Utc};

use crate::domain::{Decision, Observation};
use crate::store::*;

impl super::PgStore {
    pub async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let _ = (now, lease_until, limit);
        todo!("PostgreSQL: claim_due")
    }

    pub async fn release(
        &self,
        leases: &[(Claimed, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let _ = (leases, now);
        todo!("PostgreSQL: release")
    }

    pub async fn take_over_claims_of(
        &self,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let _ = (owner, now);
        todo!("PostgreSQL: take_over_claims_of")
    }

    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        todo!("PostgreSQL: next_due")
    }

    pub async fn last_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        todo!("PostgreSQL: last_due")
    }

    pub async fn pull_back_beyond(
        &self,
        now: DateTime<Utc>,
        latest: DateTime<Utc>,
        spread: std::time::Duration,
    ) -> Result<u64, StoreError> {
        let _ = (now, latest, spread);
        todo!("PostgreSQL: pull_back_beyond")
    }
}
