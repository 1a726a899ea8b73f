//! PostgreSQL: status (see `store/status.rs` for what each call must do).

use chrono::{DateTime, Utc};

use crate::domain::{Decision, Observation};
use crate::store::*;

impl super::PgStore {
    pub async fn status_facts(
        &self,
        errors_since: DateTime<Utc>,
    ) -> Result<StatusFacts, StoreError> {
        let _ = (errors_since,);
        todo!("PostgreSQL: status_facts")
    }

    pub async fn unknown_charges(&self) -> Result<UnknownCharges, StoreError> {
        todo!("PostgreSQL: unknown_charges")
    }

    pub fn daemons(&self) -> Daemons {
        todo!("PostgreSQL: daemons")
    }
}
