//! PostgreSQL: the delivery log, pruning, range replays and `disable_after`
//! (see `store/delivery_log.rs`). The sink's row is locked first, as every
//! writer of the sink does (see `events.rs`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{RawEvent, sql};
use crate::domain::delivery::disable_due;
use crate::domain::timefmt::from_db;
use crate::store::Context as _;
use crate::store::delivery_log::failing_reason;
use crate::store::{EventRange, EventRow, LoggedAttempt, Pruned, SinkRow, StoreError};

impl super::super::PgStore {
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
        self.write("committing a pruned delivery log", async |tx| {
            sqlx::query(sql::LOCK_SINK)
                .bind(name)
                .fetch_optional(&mut **tx)
                .await
                .context("reading a sink")?;
            let attempts = sqlx::query(sql::PRUNE_ATTEMPTS)
                .bind(name)
                .bind(before)
                .execute(&mut **tx)
                .await
                .context("pruning the delivery log")?
                .rows_affected();
            let deliveries = sqlx::query(sql::PRUNE_DELIVERED)
                .bind(name)
                .bind(before)
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
            .bind(range.since)
            .bind(range.until)
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
        self.write("committing a disabled sink", async |tx| {
            if let Some(fence) = fence {
                super::super::holders::check_hold(tx, name, self.owner(), fence).await?;
            }
            let Some(row): Option<SinkRow> = sqlx::query_as(sql::SINK_FOR_UPDATE)
                .bind(name)
                .fetch_optional(&mut **tx)
                .await
                .context("reading a sink")?
            else {
                return Ok(None);
            };
            let since = row.failing_since.as_deref().and_then(from_db);
            let Some(since_at) = since.filter(|_| {
                disable_due(since, row.disabled_at.is_some(), Some(disable_after), now)
            }) else {
                return Ok(None);
            };
            let since_text = row.failing_since.clone().unwrap_or_default();
            let reason = failing_reason(&since_text, disable_after);
            sqlx::query(sql::DISABLE_FAILING_SINK)
                .bind(name)
                .bind(now)
                .bind(&reason)
                .execute(&mut **tx)
                .await
                .context("disabling a sink")?;
            sqlx::query(sql::INSERT_SINK_DISABLED)
                .bind(now)
                .bind(name)
                .bind(&reason)
                .bind(since_at)
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
