//! SQLite: query.

use super::{SqliteStore, sql};
use crate::store::{Context, FlagRow, IssuanceRow, StatusCount, StoreError, TransitionRow};

impl SqliteStore {
    /// Starts watching `ids` (already watched ones are left as they are). Returns how many were new.
    pub async fn add_ids(&self, ids: &[String]) -> Result<u64, StoreError> {
        self.write("committing added ids", async |tx| {
            let mut added = 0;
            for id in ids {
                let result = sqlx::query(sql::ADD_ID)
                    .bind(id)
                    .execute(&mut **tx)
                    .await
                    .context("adding an id")?;
                added += result.rows_affected();
            }
            Ok(added)
        })
        .await
    }

    pub async fn list(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<IssuanceRow>, StoreError> {
        sqlx::query_as(sql::LIST_ISSUANCES)
            .bind(status)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .context("listing issuances")
    }

    pub async fn issuance(&self, id: &str) -> Result<Option<IssuanceRow>, StoreError> {
        sqlx::query_as(sql::ISSUANCE)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context("reading an issuance")
    }

    pub async fn transitions_of(&self, id: &str) -> Result<Vec<TransitionRow>, StoreError> {
        sqlx::query_as(sql::TRANSITIONS_OF)
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .context("reading transitions")
    }

    /// Flags of one issuance, or (with `None`) every flag still open.
    pub async fn flags(&self, id: Option<&str>) -> Result<Vec<FlagRow>, StoreError> {
        sqlx::query_as(sql::FLAGS)
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .context("reading flags")
    }

    /// Issuances by watch state and status.
    pub async fn counts(&self) -> Result<Vec<StatusCount>, StoreError> {
        sqlx::query_as(sql::COUNTS)
            .fetch_all(&self.pool)
            .await
            .context("counting issuances")
    }

    /// Active issuances by last seen status (None: not seen yet). Index-only:
    /// its cost does not grow with the number of settled rows.
    pub async fn active_counts(&self) -> Result<Vec<(Option<String>, i64)>, StoreError> {
        sqlx::query_as(sql::ACTIVE_COUNTS)
            .fetch_all(&self.pool)
            .await
            .context("counting active issuances")
    }

    /// Open DUE_SOON flags (for status lines and metrics).
    pub async fn open_due_soon(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar(sql::OPEN_DUE_SOON)
            .fetch_one(&self.pool)
            .await
            .context("counting open flags")
    }

    /// Open OVERDUE flags (for metrics and alerts).
    pub async fn open_overdue(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar(sql::OPEN_OVERDUE)
            .fetch_one(&self.pool)
            .await
            .context("counting open OVERDUE flags")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_plan, exec, temp_store};
    use super::*;

    #[tokio::test]
    async fn active_counts_read_only_the_active_index() {
        let (store, _dir) = temp_store().await;
        let index = "COVERING INDEX issuances_active_by_status";
        assert_plan(&store, sql::ACTIVE_COUNTS, "issuances", &[index]).await;
        exec(
            &store,
            "INSERT INTO issuances (id, status) VALUES ('a', 'READY'), ('b', 'READY'), ('c', NULL)",
        )
        .await;
        exec(
            &store,
            "INSERT INTO issuances (id, status, watch) VALUES ('d', 'DONE', 'settled')",
        )
        .await;
        assert_eq!(
            store.active_counts().await.unwrap(),
            [(None, 1), (Some("READY".into()), 2)]
        );
    }
}
