//! SQLite: the delivery log, pruning, range replays and `disable_after`
//! (see `store/delivery_log.rs`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::super::{SqliteStore, sql};
use super::RawEvent;
use crate::domain::delivery::disable_due;
use crate::domain::timefmt::{from_db, to_db};
use crate::store::delivery_log::failing_reason;
use crate::store::{Context, EventRange, EventRow, LoggedAttempt, Pruned, SinkRow, StoreError};

impl SqliteStore {
    pub async fn event(&self, seq: i64) -> Result<Option<EventRow>, StoreError> {
        let row: Option<RawEvent> = sqlx::query_as(sql::EVENT)
            .bind(seq)
            .fetch_optional(&self.pool)
            .await
            .context("reading an event")?;
        Ok(row.map(EventRow::from))
    }

    pub async fn attempts_of(&self, seq: i64) -> Result<Vec<LoggedAttempt>, StoreError> {
        sqlx::query_as(sql::ATTEMPTS_OF)
            .bind(seq)
            .fetch_all(&self.pool)
            .await
            .context("reading an event's attempts")
    }

    pub async fn prune_delivery_log(
        &self,
        name: &str,
        before: DateTime<Utc>,
    ) -> Result<Pruned, StoreError> {
        let before = to_db(before);
        self.write("committing a pruned delivery log", async |tx| {
            let attempts = sqlx::query(sql::PRUNE_ATTEMPTS)
                .bind(name)
                .bind(&before)
                .execute(&mut **tx)
                .await
                .context("pruning the delivery log")?
                .rows_affected();
            let deliveries = sqlx::query(sql::PRUNE_DELIVERED)
                .bind(name)
                .bind(&before)
                .execute(&mut **tx)
                .await
                .context("pruning delivered deliveries")?
                .rows_affected();
            Ok(Pruned {
                attempts,
                deliveries,
            })
        })
        .await
    }

    pub async fn events_in_range(
        &self,
        range: &EventRange,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        sqlx::query_as(sql::EVENTS_IN_RANGE)
            .bind(to_db(range.since))
            .bind(range.until.map(to_db))
            .bind(&range.event_type)
            .fetch_all(&self.pool)
            .await
            .context("selecting events by time")
    }

    pub async fn disable_if_failing(
        &self,
        name: &str,
        fence: Option<i64>,
        disable_after: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<SinkRow>, StoreError> {
        let now_text = to_db(now);
        self.write("committing a disabled sink", async |tx| {
            if let Some(fence) = fence {
                super::super::holders::check_hold(tx, name, self.owner(), fence).await?;
            }
            let Some(row): Option<SinkRow> = sqlx::query_as(sql::SINK)
                .bind(name)
                .fetch_optional(&mut **tx)
                .await
                .context("reading a sink")?
            else {
                return Ok(None);
            };
            let since = row.failing_since.as_deref().and_then(from_db);
            if !disable_due(since, row.disabled_at.is_some(), Some(disable_after), now) {
                return Ok(None);
            }
            let since = row.failing_since.clone().unwrap_or_default();
            let reason = failing_reason(&since, disable_after);
            sqlx::query(sql::DISABLE_SINK)
                .bind(name)
                .bind(&now_text)
                .bind(&reason)
                .execute(&mut **tx)
                .await
                .context("disabling a sink")?;
            sqlx::query(sql::INSERT_SINK_DISABLED)
                .bind(&now_text)
                .bind(name)
                .bind(&reason)
                .bind(&since)
                .bind(humantime::format_duration(disable_after).to_string())
                .execute(&mut **tx)
                .await
                .context("writing the sink.disabled event")?;
            sqlx::query_as(sql::SINK)
                .bind(name)
                .fetch_optional(&mut **tx)
                .await
                .context("reading a sink")
        })
        .await
    }
}
