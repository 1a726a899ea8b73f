//! PostgreSQL: the web dashboard's reads (see `store/dashboard.rs`).

use super::events::RawEvent;
use crate::store::Context as _;
use crate::store::{BalancePoint, DeliveryRow, EventRow, IssuanceFilter, IssuanceRow, StoreError};

impl super::PgStore {
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

/// The statements of this file. Pages of issuances walk the primary key in
/// the database's collation (`id > $4 ORDER BY id`: the same order both ways,
/// so the index serves both the cursor and the order).
mod sql {
    macro_rules! page_columns {
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

    /// $1 status (NULL: any; `UNSEEN`: not seen yet), $2 watch (NULL: any).
    macro_rules! page_filter {
        () => {
            " ($1::text IS NULL OR status = $1 OR ($1 = 'UNSEEN' AND status IS NULL))
              AND ($2::text IS NULL OR watch = $2)"
        };
    }

    /// The first page: $1 status, $2 watch, $3 how many at most; by id.
    pub(super) const ISSUANCES_FIRST: &str = concat!(
        page_columns!(),
        " WHERE",
        page_filter!(),
        " ORDER BY issuances.id LIMIT $3"
    );

    /// The page after id $4.
    pub(super) const ISSUANCES_AFTER: &str = concat!(
        page_columns!(),
        " WHERE issuances.id > $4 AND",
        page_filter!(),
        " ORDER BY issuances.id LIMIT $3"
    );

    /// Active issuances waiting to be paid, soonest deadline first, $1 at most.
    pub(super) const OPEN_CHARGES: &str = concat!(
        page_columns!(),
        " WHERE watch = 'active' AND status IN ('WAITED', 'READY')
         ORDER BY vbank_due_at NULLS LAST, issuances.id COLLATE \"C\" LIMIT $1"
    );

    /// The newest $1 balance answers, oldest first.
    pub(super) const BALANCE_HISTORY: &str =
        "SELECT utc_text(observed_at) AS observed_at, balance, expiring_30d FROM (
            SELECT observed_at, balance, expiring_30d FROM balance_history
            ORDER BY observed_at DESC LIMIT $1
         ) newest ORDER BY observed_at";

    /// Events below seq $1, newest first, of type $2 (NULL: any), $3 at most.
    pub(super) const EVENTS_BEFORE: &str =
        "SELECT seq, id, type, issuance_id, utc_text(occurred_at) AS occurred_at, data::text AS data
         FROM events WHERE seq < $1 AND ($2::text IS NULL OR type = $2)
         ORDER BY seq DESC LIMIT $3";

    /// The deliveries of issuance $1's events, by event then sink.
    pub(super) const DELIVERIES_OF: &str =
        "SELECT d.sink, d.seq, e.type AS event_type, utc_text(d.created_at) AS created_at,
                d.attempts, utc_text(d.next_attempt_at) AS next_attempt_at,
                d.last_status, d.last_error, utc_text(d.delivered_at) AS delivered_at,
                utc_text(d.failed_at) AS failed_at
         FROM events e CROSS JOIN sinks s
         JOIN deliveries d ON d.sink = s.name AND d.seq = e.seq
         WHERE e.issuance_id = $1
         ORDER BY d.seq, d.sink COLLATE \"C\"";
}
