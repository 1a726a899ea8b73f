//! PostgreSQL: owners (see `store/owners.rs` for what each call must do).

use chrono::{DateTime, Utc};

use crate::domain::{Decision, Observation};
use crate::store::*;

impl super::PgStore {
    pub fn hold_ownership(&self) -> Ownership {
        todo!("PostgreSQL: hold_ownership")
    }

    pub fn note_health(&self, problem: Option<&str>) -> std::io::Result<()> {
        let _ = (problem,);
        todo!("PostgreSQL: note_health")
    }

    pub async fn take_over_dead_owners(&self, now: DateTime<Utc>) -> Result<TakenOver, StoreError> {
        let _ = (now,);
        todo!("PostgreSQL: take_over_dead_owners")
    }

    pub async fn sweep_charge_requests(
        &self,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let _ = (now, stale_before);
        todo!("PostgreSQL: sweep_charge_requests")
    }
}

/// A daemon's liveness on PostgreSQL.
#[derive(Debug)]
pub struct Ownership;

impl Ownership {
    pub fn is_held(&self) -> bool {
        todo!("PostgreSQL: Ownership::is_held")
    }

    pub fn retire(self) {
        todo!("PostgreSQL: Ownership::retire")
    }
}
