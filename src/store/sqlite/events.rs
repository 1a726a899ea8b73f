//! SQLite: events.

use super::rows::encode_rows;
use super::{SqliteStore, sql};
use crate::domain::DeliveryState;
use crate::domain::excerpt::response_excerpt;
use crate::domain::timefmt::{from_db, to_db};
use crate::store::{
    AttemptRow, Context, DueDelivery, EventRow, FailedDelivery, NamedSinkRow, SinkRow, SinkVerdict,
    StoreError,
};
use chrono::{DateTime, Utc};

#[derive(sqlx::FromRow)]
pub(super) struct RawEvent {
    seq: i64,
    id: String,
    #[sqlx(rename = "type")]
    event_type: String,
    /// Selected as `CAST(issuance_id AS BLOB)` (see [`RawId`]); NULL stays NULL.
    issuance_id: Option<Vec<u8>>,
    occurred_at: String,
    data: String,
}

/// An id read as bytes, shown lossily; NULL stays `None`.
fn lossy_id(raw: Option<Vec<u8>>) -> Option<String> {
    raw.map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

#[derive(sqlx::FromRow)]
struct RawFailedDelivery {
    sink: String,
    seq: i64,
    id: String,
    #[sqlx(rename = "type")]
    event_type: String,
    issuance_id: Option<Vec<u8>>,
    occurred_at: String,
    attempts: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    last_attempt_at: Option<String>,
    next_attempt_at: String,
    failed_at: Option<String>,
    sink_disabled_at: Option<String>,
    sink_configured: bool,
}

impl From<RawEvent> for EventRow {
    fn from(raw: RawEvent) -> Self {
        Self {
            seq: raw.seq,
            id: raw.id,
            event_type: raw.event_type,
            issuance_id: lossy_id(raw.issuance_id),
            occurred_at: raw.occurred_at,
            // `events.data` is checked to be valid JSON.
            data: serde_json::from_str(&raw.data).unwrap_or(serde_json::Value::Null),
        }
    }
}

impl From<RawFailedDelivery> for FailedDelivery {
    fn from(raw: RawFailedDelivery) -> Self {
        let state = DeliveryState::judge(
            raw.sink_configured,
            raw.sink_disabled_at.is_some(),
            raw.failed_at.is_some(),
        );
        Self {
            sink: raw.sink,
            seq: raw.seq,
            id: raw.id,
            event_type: raw.event_type,
            issuance_id: lossy_id(raw.issuance_id),
            occurred_at: raw.occurred_at,
            state,
            attempts: raw.attempts,
            last_status: raw.last_status,
            last_error: raw.last_error,
            last_attempt_at: raw.last_attempt_at,
            next_attempt_at: (state == DeliveryState::Retrying).then_some(raw.next_attempt_at),
            failed_at: raw.failed_at,
            sink_disabled_at: raw.sink_disabled_at,
        }
    }
}

impl SqliteStore {
    /// Events after the cursor `after`, oldest first, `limit` at most.
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        let rows: Vec<RawEvent> = sqlx::query_as(sql::EVENTS_AFTER)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .context("reading events")?;
        Ok(rows.into_iter().map(EventRow::from).collect())
    }

    /// The events of one issuance, oldest first.
    pub async fn events_of(&self, id: &str) -> Result<Vec<EventRow>, StoreError> {
        let rows: Vec<RawEvent> = sqlx::query_as(sql::EVENTS_OF)
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .context("reading events")?;
        Ok(rows.into_iter().map(EventRow::from).collect())
    }

    /// The newest event's seq (0 when there is none).
    pub async fn last_event_seq(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar(sql::LAST_EVENT_SEQ)
            .fetch_one(&self.pool)
            .await
            .context("reading the newest event")
    }

    /// Events after `after` by type, with the newest seq among them.
    pub async fn event_counts_after(
        &self,
        after: i64,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        sqlx::query_as(sql::EVENT_COUNTS_AFTER)
            .bind(after)
            .fetch_all(&self.pool)
            .await
            .context("counting new events")
    }

    /// Registers sink `name` if new (it then starts after the newest event)
    /// and returns its row.
    pub async fn register_sink(&self, name: &str) -> Result<SinkRow, StoreError> {
        self.write("committing a sink", async |tx| {
            sqlx::query(sql::REGISTER_SINK)
                .bind(name)
                .execute(&mut **tx)
                .await
                .context("registering a sink")?;
            sqlx::query_as(sql::SINK)
                .bind(name)
                .fetch_one(&mut **tx)
                .await
                .context("reading a sink")
        })
        .await
    }

    /// Sink `name`'s row, if registered.
    pub async fn sink(&self, name: &str) -> Result<Option<SinkRow>, StoreError> {
        sqlx::query_as(sql::SINK)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .context("reading a sink")
    }

    /// Every sink the database knows (configured now or not), by name.
    pub async fn sinks(&self) -> Result<Vec<NamedSinkRow>, StoreError> {
        sqlx::query_as(sql::SINKS)
            .fetch_all(&self.pool)
            .await
            .context("reading the sinks")
    }

    /// Creates deliveries for up to `limit` events after sink `name`'s cursor
    /// (those of `types`), due at `now`, and moves the cursor past them, in one
    /// transaction. Returns how many events it looked at (0: caught up).
    pub async fn admit_events(
        &self,
        name: &str,
        fence: Option<i64>,
        types: &[&str],
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<i64, StoreError> {
        let types = encode_rows(&types)?;
        let now = to_db(now);
        self.write("committing admitted events", async |tx| {
            if let Some(fence) = fence {
                super::holders::check_hold(tx, name, self.owner(), fence).await?;
            }
            let SinkRow {
                admitted_seq: admitted,
                ..
            } = sqlx::query_as(sql::SINK)
                .bind(name)
                .fetch_one(&mut **tx)
                .await
                .context("reading a sink")?;
            let newest: i64 = sqlx::query_scalar(sql::LAST_EVENT_SEQ)
                .fetch_one(&mut **tx)
                .await
                .context("reading the newest event")?;
            let upto = newest.min(admitted.saturating_add(limit));
            if upto <= admitted {
                return Ok(0);
            }
            sqlx::query(sql::ADMIT_EVENTS)
                .bind(name)
                .bind(upto)
                .bind(&types)
                .bind(&now)
                .execute(&mut **tx)
                .await
                .context("admitting events")?;
            sqlx::query(sql::SET_ADMITTED)
                .bind(name)
                .bind(upto)
                .execute(&mut **tx)
                .await
                .context("moving a sink's cursor")?;
            Ok(upto - admitted)
        })
        .await
    }

    /// Up to `limit` deliveries of sink `name` due at `now`, never two of one issuance.
    pub async fn due_deliveries(
        &self,
        name: &str,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        sqlx::query_as(sql::DUE_DELIVERIES)
            .bind(name)
            .bind(to_db(now))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .context("reading due deliveries")
    }

    /// When sink `name`'s next open delivery is due.
    pub async fn next_delivery_due(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<String> = sqlx::query_scalar(sql::NEXT_DELIVERY_DUE)
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .context("reading the next delivery")?;
        Ok(at.as_deref().and_then(from_db))
    }

    /// Writes what attempts came to (one primary-key update each: a batch is
    /// at most a few times the sink's concurrency) and what they say about the
    /// sink (`verdict`: its `failing_since`), in one transaction; with `due_now` set,
    /// also makes every other open delivery of the sink due then (the receiver
    /// answered again after failing).
    pub async fn record_attempts(
        &self,
        name: &str,
        fence: Option<i64>,
        attempts: &[AttemptRow],
        verdict: Option<SinkVerdict<'_>>,
        due_now: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.write("committing delivery attempts", async |tx| {
            if let Some(fence) = fence {
                super::holders::check_hold(tx, name, self.owner(), fence).await?;
            }
            for a in attempts {
                sqlx::query(sql::RECORD_ATTEMPT)
                    .bind(name)
                    .bind(a.seq)
                    .bind(&a.attempted_at)
                    .bind(a.status.map(i64::from))
                    .bind(&a.error)
                    .bind(&a.next_attempt_at)
                    .bind(&a.delivered_at)
                    .bind(&a.failed_at)
                    .execute(&mut **tx)
                    .await
                    .context("recording a delivery attempt")?;
                sqlx::query(sql::LOG_ATTEMPT)
                    .bind(name)
                    .bind(a.seq)
                    .bind(&a.attempted_at)
                    .bind(a.duration_ms.max(0))
                    .bind(a.status.map(i64::from))
                    .bind(&a.error)
                    .bind(
                        a.response
                            .as_deref()
                            .map(|r| response_excerpt(r.as_bytes())),
                    )
                    .execute(&mut **tx)
                    .await
                    .context("logging a delivery attempt")?;
            }
            match verdict {
                Some(SinkVerdict::Answered) => {
                    sqlx::query(sql::SINK_ANSWERED)
                        .bind(name)
                        .execute(&mut **tx)
                        .await
                        .context("recording a sink that answers")?;
                }
                Some(SinkVerdict::Failing { at, problem }) => {
                    sqlx::query(sql::SINK_FAILING)
                        .bind(name)
                        .bind(to_db(at))
                        .bind(problem)
                        .execute(&mut **tx)
                        .await
                        .context("recording a failing sink")?;
                }
                None => {}
            }
            if let Some(now) = due_now {
                sqlx::query(sql::DELIVERIES_DUE_NOW)
                    .bind(name)
                    .bind(to_db(now))
                    .execute(&mut **tx)
                    .await
                    .context("rescheduling deliveries")?;
            }
            Ok(())
        })
        .await
    }

    /// Undelivered deliveries that failed at least once or whose sink is not
    /// among `configured` (never to be attempted), discarded ones excepted.
    pub async fn failed_deliveries(
        &self,
        configured: &[String],
        limit: i64,
    ) -> Result<Vec<FailedDelivery>, StoreError> {
        let rows: Vec<RawFailedDelivery> = sqlx::query_as(sql::FAILED_DELIVERIES)
            .bind(limit)
            .bind(encode_rows(&configured)?)
            .fetch_all(&self.pool)
            .await
            .context("reading failed deliveries")?;
        Ok(rows.into_iter().map(FailedDelivery::from).collect())
    }

    /// Schedules event `seq` again for each of `sinks` (registering them if
    /// new), due at `now`, as a new delivery, in one transaction of its own
    /// (so one event's failure leaves the others of a list scheduled).
    /// `false`: there is no such event.
    pub async fn redeliver(
        &self,
        sinks: &[String],
        seq: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = to_db(now);
        self.write("committing a redelivery", async |tx| {
            let mut exists = false;
            for name in sinks {
                sqlx::query(sql::REGISTER_SINK)
                    .bind(name)
                    .execute(&mut **tx)
                    .await
                    .context("registering a sink")?;
                let done = sqlx::query(sql::REDELIVER)
                    .bind(name)
                    .bind(seq)
                    .bind(&now)
                    .execute(&mut **tx)
                    .await
                    .context("scheduling a redelivery")?;
                exists |= done.rows_affected() > 0;
            }
            Ok(exists)
        })
        .await
    }

    /// Discards sink `name`'s undelivered deliveries (only those of `seqs`,
    /// if given) at `now`: never attempted again, kept with `discarded_at`.
    /// Returns how many were discarded.
    pub async fn discard(
        &self,
        name: &str,
        seqs: Option<&[i64]>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let seqs = seqs.map(|s| encode_rows(&s)).transpose()?;
        let now = to_db(now);
        self.write("committing discarded deliveries", async |tx| {
            let done = sqlx::query(sql::DISCARD)
                .bind(name)
                .bind(&now)
                .bind(&seqs)
                .execute(&mut **tx)
                .await
                .context("discarding deliveries")?;
            Ok(done.rows_affected())
        })
        .await
    }
}

mod delivery_log;

#[cfg(test)]
mod operator_tests;

#[cfg(test)]
mod tests;
