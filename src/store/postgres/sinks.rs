//! PostgreSQL: sinks (see `store/sinks.rs` for what each call must do).

use chrono::{DateTime, Utc};

use crate::domain::{Decision, Observation};
use crate::store::*;

impl super::PgStore {
    pub async fn disable_sink(
        &self,
        name: &str,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), StoreError> {
        let _ = (name, at, reason);
        todo!("PostgreSQL: disable_sink")
    }

    pub async fn disable_sink_by_hand(
        &self,
        name: &str,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<SinkRow, StoreError> {
        let _ = (name, at, reason);
        todo!("PostgreSQL: disable_sink_by_hand")
    }

    pub async fn enable_sink(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SinkRow>, StoreError> {
        let _ = (name, now);
        todo!("PostgreSQL: enable_sink")
    }

    pub async fn sink_activity(&self, name: &str) -> Result<SinkActivity, StoreError> {
        let _ = (name,);
        todo!("PostgreSQL: sink_activity")
    }

    pub async fn sink_backlog(&self, name: &str) -> Result<Backlog, StoreError> {
        let _ = (name,);
        todo!("PostgreSQL: sink_backlog")
    }

    pub async fn sink_backlogs(
        &self,
        configured: &[String],
    ) -> Result<Vec<SinkBacklog>, StoreError> {
        let _ = (configured,);
        todo!("PostgreSQL: sink_backlogs")
    }
}
