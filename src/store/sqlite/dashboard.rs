//! SQLite: the web dashboard's reads (see `store/dashboard.rs`).

use super::events::RawEvent;
use super::{SqliteStore, sql};
use crate::store::{
    BalancePoint, Context, DeliveryRow, EventRow, IssuanceFilter, IssuanceRow, StoreError,
};

impl SqliteStore {
    pub async fn issuances_page(
        &self,
        filter: &IssuanceFilter,
        limit: i64,
    ) -> Result<Vec<IssuanceRow>, StoreError> {
        let statement = match filter.after {
            None => sql::ISSUANCES_FIRST,
            Some(_) => sql::ISSUANCES_AFTER,
        };
        let mut query = sqlx::query_as(statement)
            .bind(filter.status.as_deref())
            .bind(filter.watch.as_deref())
            .bind(limit);
        if let Some(after) = &filter.after {
            query = query.bind(after.as_str());
        }
        query
            .fetch_all(&self.pool)
            .await
            .context("reading a page of issuances")
    }

    pub async fn open_charges(&self, limit: i64) -> Result<Vec<IssuanceRow>, StoreError> {
        sqlx::query_as(sql::OPEN_CHARGES)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .context("reading the open charges")
    }

    pub async fn balance_history(&self, limit: i64) -> Result<Vec<BalancePoint>, StoreError> {
        sqlx::query_as(sql::BALANCE_HISTORY)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .context("reading the balance history")
    }

    pub async fn events_before(
        &self,
        before: i64,
        event_type: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let rows: Vec<RawEvent> = sqlx::query_as(sql::EVENTS_BEFORE)
            .bind(before)
            .bind(event_type)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .context("reading a page of events")?;
        Ok(rows.into_iter().map(EventRow::from).collect())
    }

    pub async fn deliveries_of(&self, id: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        sqlx::query_as(sql::DELIVERIES_OF)
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .context("reading an issuance's deliveries")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_plan, temp_store};
    use super::*;

    #[tokio::test]
    async fn the_dashboards_reads_use_their_indexes() {
        let (store, _dir) = temp_store().await;
        let pk = "sqlite_autoindex_issuances_1";
        let first = assert_plan(&store, sql::ISSUANCES_FIRST, "issuances", &[pk]).await;
        let after = assert_plan(&store, sql::ISSUANCES_AFTER, "issuances", &[pk]).await;
        for plan in [&first, &after] {
            assert!(
                !plan.iter().any(|d| d.contains("TEMP B-TREE")),
                "a page must not sort its matches: {plan:?}"
            );
        }
        assert!(after.iter().any(|d| d.contains("(id>?)")), "{after:?}");
        assert_plan(
            &store,
            sql::OPEN_CHARGES,
            "issuances",
            &["issuances_active_by_status"],
        )
        .await;
        assert_plan(
            &store,
            sql::BALANCE_HISTORY,
            "balance_history",
            &["balance_history_by_time"],
        )
        .await;
        assert_plan(
            &store,
            sql::EVENTS_BEFORE,
            "events",
            &["INTEGER PRIMARY KEY"],
        )
        .await;
        let deliveries = assert_plan(
            &store,
            sql::DELIVERIES_OF,
            "deliveries",
            &["sqlite_autoindex_deliveries_1"],
        )
        .await;
        assert!(
            deliveries.iter().any(|d| d.contains("events_by_issuance")),
            "{deliveries:?}"
        );
    }
}
