//! PostgreSQL: charges (see `store/charges.rs` for what each call must do).

use chrono::{DateTime, Utc};

use crate::domain::{Decision, Observation};
use crate::store::*;

impl super::PgStore {
    pub async fn start_charge_request(
        &self,
        amount: i64,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let _ = (amount, force, now);
        todo!("PostgreSQL: start_charge_request")
    }

    pub async fn any_pending_charge_request(&self) -> Result<bool, StoreError> {
        todo!("PostgreSQL: any_pending_charge_request")
    }

    pub async fn claim_charge_request(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<ChargeRequest>, StoreError> {
        let _ = (now,);
        todo!("PostgreSQL: claim_charge_request")
    }

    pub async fn finish_charge_request(
        &self,
        id: i64,
        result: ChargeResult<'_>,
        now: DateTime<Utc>,
        observed_at: DateTime<Utc>,
    ) -> Result<Finished, StoreError> {
        let _ = (id, result, now, observed_at);
        todo!("PostgreSQL: finish_charge_request")
    }

    pub async fn open_charge(
        &self,
        request: i64,
        max_amount: i64,
    ) -> Result<Option<OpenCharge>, StoreError> {
        let _ = (request, max_amount);
        todo!("PostgreSQL: open_charge")
    }

    pub async fn record_forced_past(&self, id: i64, what: &str) -> Result<bool, StoreError> {
        let _ = (id, what);
        todo!("PostgreSQL: record_forced_past")
    }

    pub async fn charge_requests(&self, limit: i64) -> Result<Vec<ChargeRequestRow>, StoreError> {
        let _ = (limit,);
        todo!("PostgreSQL: charge_requests")
    }

    pub async fn charge_request(&self, id: i64) -> Result<Option<ChargeRequestRow>, StoreError> {
        let _ = (id,);
        todo!("PostgreSQL: charge_request")
    }

    pub async fn record_balance(
        &self,
        now: DateTime<Utc>,
        balance: i64,
        expiring_30d: i64,
        low: Option<i64>,
    ) -> Result<(), StoreError> {
        let _ = (now, balance, expiring_30d, low);
        todo!("PostgreSQL: record_balance")
    }

    pub async fn last_balance(&self) -> Result<Option<i64>, StoreError> {
        todo!("PostgreSQL: last_balance")
    }

    pub async fn resolve_charge_request(
        &self,
        id: i64,
        resolution: Resolution<'_>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<ChargeRequestRow, String>, StoreError> {
        let _ = (id, resolution, by, now);
        todo!("PostgreSQL: resolve_charge_request")
    }
}
