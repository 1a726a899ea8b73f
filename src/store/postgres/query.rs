//! PostgreSQL: query (see `store/query.rs` for what each call must do).

use chrono::{DateTime, Utc};

use crate::domain::{Decision, Observation};
use crate::store::Context as _;
use crate::store::*;

impl super::PgStore {
    pub async fn add_ids(&self, ids: &[String]) -> Result<u64, StoreError> {
        let added = sqlx::query(sql::ADD_IDS)
            .bind(ids)
            .execute(&self.pool)
            .await
            .context("adding ids")?;
        Ok(added.rows_affected())
    }

    pub async fn list(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<IssuanceRow>, StoreError> {
        let _ = (status, limit);
        todo!("PostgreSQL: list")
    }

    pub async fn issuance(&self, id: &str) -> Result<Option<IssuanceRow>, StoreError> {
        sqlx::query_as(sql::ISSUANCE)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context("reading an issuance")
    }

    pub async fn transitions_of(&self, id: &str) -> Result<Vec<TransitionRow>, StoreError> {
        let _ = (id,);
        todo!("PostgreSQL: transitions_of")
    }

    pub async fn flags(&self, id: Option<&str>) -> Result<Vec<FlagRow>, StoreError> {
        let _ = (id,);
        todo!("PostgreSQL: flags")
    }

    pub async fn counts(&self) -> Result<Vec<StatusCount>, StoreError> {
        todo!("PostgreSQL: counts")
    }

    pub async fn active_counts(&self) -> Result<Vec<(Option<String>, i64)>, StoreError> {
        todo!("PostgreSQL: active_counts")
    }

    pub async fn open_due_soon(&self) -> Result<i64, StoreError> {
        todo!("PostgreSQL: open_due_soon")
    }

    pub async fn open_overdue(&self) -> Result<i64, StoreError> {
        todo!("PostgreSQL: open_overdue")
    }
}

/// The statements of this file.
mod sql {
    /// Starts watching ids $1 (an array), those not watched yet; one statement.
    pub(super) const ADD_IDS: &str =
        "INSERT INTO issuances (id) SELECT unnest($1::text[]) ON CONFLICT (id) DO NOTHING";

    /// The columns of an `IssuanceRow`: the id as bytes, instants as UTC text.
    macro_rules! issuance_columns {
        () => {
            "SELECT convert_to(id, 'UTF8') AS id, status, amount, utc_text(created_at) AS created_at,
                utc_text(modified_at) AS modified_at, utc_text(vbank_due_at) AS vbank_due_at,
                vbank_account_number, bank_name, vbank_holder_name, watch,
                utc_text(next_poll_at) AS next_poll_at, attempts, polls,
                utc_text(last_polled_at) AS last_polled_at, utc_text(last_seen_at) AS last_seen_at,
                last_error, utc_text(added_at) AS added_at
             FROM issuances"
        };
    }

    /// Issuance $1.
    pub(super) const ISSUANCE: &str = concat!(issuance_columns!(), " WHERE id = $1");
}
