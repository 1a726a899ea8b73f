//! PostgreSQL: events (see `store/events.rs` for what each call must do).

use chrono::{DateTime, Utc};

use crate::domain::{Decision, Observation};
use crate::store::*;

impl super::PgStore {
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        let _ = (after, limit);
        todo!("PostgreSQL: events_after")
    }

    pub async fn events_of(&self, id: &str) -> Result<Vec<EventRow>, StoreError> {
        let _ = (id,);
        todo!("PostgreSQL: events_of")
    }

    pub async fn last_event_seq(&self) -> Result<i64, StoreError> {
        todo!("PostgreSQL: last_event_seq")
    }

    pub async fn event_counts_after(
        &self,
        after: i64,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let _ = (after,);
        todo!("PostgreSQL: event_counts_after")
    }

    pub async fn register_sink(&self, name: &str) -> Result<SinkRow, StoreError> {
        let _ = (name,);
        todo!("PostgreSQL: register_sink")
    }

    pub async fn sink(&self, name: &str) -> Result<Option<SinkRow>, StoreError> {
        let _ = (name,);
        todo!("PostgreSQL: sink")
    }

    pub async fn sinks(&self) -> Result<Vec<NamedSinkRow>, StoreError> {
        todo!("PostgreSQL: sinks")
    }

    pub async fn admit_events(
        &self,
        name: &str,
        types: &[&str],
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<i64, StoreError> {
        let _ = (name, types, now, limit);
        todo!("PostgreSQL: admit_events")
    }

    pub async fn due_deliveries(
        &self,
        name: &str,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let _ = (name, now, limit);
        todo!("PostgreSQL: due_deliveries")
    }

    pub async fn next_delivery_due(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let _ = (name,);
        todo!("PostgreSQL: next_delivery_due")
    }

    pub async fn record_attempts(
        &self,
        name: &str,
        attempts: &[AttemptRow],
        verdict: Option<SinkVerdict<'_>>,
        due_now: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let _ = (name, attempts, verdict, due_now);
        todo!("PostgreSQL: record_attempts")
    }

    pub async fn failed_deliveries(
        &self,
        configured: &[String],
        limit: i64,
    ) -> Result<Vec<FailedDelivery>, StoreError> {
        let _ = (configured, limit);
        todo!("PostgreSQL: failed_deliveries")
    }

    pub async fn redeliver(
        &self,
        sinks: &[String],
        seq: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let _ = (sinks, seq, now);
        todo!("PostgreSQL: redeliver")
    }

    pub async fn discard(
        &self,
        name: &str,
        seqs: Option<&[i64]>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let _ = (name, seqs, now);
        todo!("PostgreSQL: discard")
    }
}
