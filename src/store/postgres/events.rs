//! PostgreSQL: events and the sink worker's deliveries (see `store/events.rs`
//! for what each call must do).
//!
//! Where it differs from SQLite:
//! - Ids come out as text, not bytes: PostgreSQL text cannot hold invalid
//!   UTF-8, so SQLite's lossy reading of another program's bytes has no case here.
//! - `events.data` is `jsonb`: it is read as its text and handed upward
//!   compact (`{"a":1}`, as SQLite's `json_object` writes it), so a webhook
//!   body is the same bytes on every attempt. jsonb keeps no key order, so
//!   the keys may come in another order than on SQLite; the value is the same.
//! - Two daemons may work one sink at once. Every write that changes a
//!   sink's deliveries in bulk or its row (admission, recording attempts,
//!   enabling) first locks the sink's row (`FOR NO KEY UPDATE`: it does not
//!   block the foreign-key checks of deliveries being inserted), so they take
//!   turns per sink and always lock the sink before its deliveries (no
//!   deadlock between them). The second admitter waits, then reads the
//!   cursor the first moved (`ON CONFLICT DO NOTHING` backs it up).
//!   Two daemons may still both read a delivery as due and send it twice
//!   (same `webhook-id`): the second record of it changes nothing, as only
//!   an open delivery is written.

use chrono::{DateTime, Utc};

use crate::domain::DeliveryState;
use crate::domain::excerpt::response_excerpt;
use crate::domain::timefmt::from_db;
use crate::store::Context as _;
use crate::store::{
    AttemptRow, DueDelivery, EventRow, FailedDelivery, NamedSinkRow, SinkRow, SinkVerdict,
    StoreError,
};

/// An event as selected (`data` as jsonb text).
#[derive(sqlx::FromRow)]
pub(super) struct RawEvent {
    seq: i64,
    id: String,
    #[sqlx(rename = "type")]
    event_type: String,
    issuance_id: Option<String>,
    occurred_at: String,
    data: String,
}

impl From<RawEvent> for EventRow {
    fn from(raw: RawEvent) -> Self {
        Self {
            seq: raw.seq,
            id: raw.id,
            event_type: raw.event_type,
            issuance_id: raw.issuance_id,
            occurred_at: raw.occurred_at,
            // jsonb is valid JSON by construction.
            data: serde_json::from_str(&raw.data).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// jsonb's text (`{"a": 1}`) made compact (`{"a":1}`), as SQLite stores it;
/// left as it is if it does not parse (it always does).
fn compact(text: String) -> String {
    serde_json::from_str::<serde_json::Value>(&text).map_or(text, |v| v.to_string())
}

#[derive(sqlx::FromRow)]
struct RawFailedDelivery {
    sink: String,
    seq: i64,
    id: String,
    #[sqlx(rename = "type")]
    event_type: String,
    issuance_id: Option<String>,
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
            issuance_id: raw.issuance_id,
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

/// An attempt's instant (written by `to_db`) as a `timestamptz` to bind.
fn instant(text: &str) -> Result<DateTime<Utc>, StoreError> {
    from_db(text).ok_or_else(|| StoreError::Query {
        context: "reading a delivery attempt's time",
        cause: sqlx::Error::Encode(format!("not an instant: {text:?}").into()),
    })
}

fn optional_instant(text: Option<&str>) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.map(instant).transpose()
}

impl super::PgStore {
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        let rows: Vec<RawEvent> = sqlx::query_as(sql::EVENTS_AFTER)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .context("reading events")?;
        Ok(rows.into_iter().map(EventRow::from).collect())
    }

    pub async fn events_of(&self, id: &str) -> Result<Vec<EventRow>, StoreError> {
        let rows: Vec<RawEvent> = sqlx::query_as(sql::EVENTS_OF)
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .context("reading events")?;
        Ok(rows.into_iter().map(EventRow::from).collect())
    }

    pub async fn last_event_seq(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar(sql::LAST_EVENT_SEQ)
            .fetch_one(&self.pool)
            .await
            .context("reading the newest event")
    }

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

    pub async fn sink(&self, name: &str) -> Result<Option<SinkRow>, StoreError> {
        sqlx::query_as(sql::SINK)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .context("reading a sink")
    }

    pub async fn sinks(&self) -> Result<Vec<NamedSinkRow>, StoreError> {
        sqlx::query_as(sql::SINKS)
            .fetch_all(&self.pool)
            .await
            .context("reading the sinks")
    }

    pub async fn admit_events(
        &self,
        name: &str,
        fence: Option<i64>,
        types: &[&str],
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<i64, StoreError> {
        self.write("committing admitted events", async |tx| {
            if let Some(fence) = fence {
                super::holders::check_hold(tx, name, self.owner(), fence).await?;
            }
            // Locked until commit: another daemon admitting for this sink
            // waits here, then reads the cursor this one moved.
            let admitted: i64 = sqlx::query_scalar(sql::LOCK_SINK_CURSOR)
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
                .bind(admitted)
                .bind(upto)
                .bind(types)
                .bind(now)
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

    pub async fn due_deliveries(
        &self,
        name: &str,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let due: Vec<DueDelivery> = sqlx::query_as(sql::DUE_DELIVERIES)
            .bind(name)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .context("reading due deliveries")?;
        Ok(due
            .into_iter()
            .map(|d| DueDelivery {
                data: compact(d.data),
                ..d
            })
            .collect())
    }

    pub async fn next_delivery_due(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        sqlx::query_scalar(sql::NEXT_DELIVERY_DUE)
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .context("reading the next delivery")
    }

    pub async fn record_attempts(
        &self,
        name: &str,
        fence: Option<i64>,
        attempts: &[AttemptRow],
        verdict: Option<SinkVerdict<'_>>,
        due_now: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.write("committing delivery attempts", async |tx| {
            // The sink's row first, as every writer of the sink does.
            match fence {
                Some(fence) => super::holders::check_hold(tx, name, self.owner(), fence).await?,
                None => {
                    sqlx::query(sql::LOCK_SINK)
                        .bind(name)
                        .fetch_optional(&mut **tx)
                        .await
                        .context("reading a sink")?;
                }
            }
            for a in attempts {
                sqlx::query(sql::RECORD_ATTEMPT)
                    .bind(name)
                    .bind(a.seq)
                    .bind(instant(&a.attempted_at)?)
                    .bind(a.status.map(i64::from))
                    .bind(&a.error)
                    .bind(optional_instant(a.next_attempt_at.as_deref())?)
                    .bind(optional_instant(a.delivered_at.as_deref())?)
                    .bind(optional_instant(a.failed_at.as_deref())?)
                    .execute(&mut **tx)
                    .await
                    .context("recording a delivery attempt")?;
                sqlx::query(sql::LOG_ATTEMPT)
                    .bind(name)
                    .bind(a.seq)
                    .bind(instant(&a.attempted_at)?)
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
                        .bind(at)
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
                    .bind(now)
                    .execute(&mut **tx)
                    .await
                    .context("rescheduling deliveries")?;
            }
            Ok(())
        })
        .await
    }

    pub async fn failed_deliveries(
        &self,
        configured: &[String],
        limit: i64,
    ) -> Result<Vec<FailedDelivery>, StoreError> {
        let rows: Vec<RawFailedDelivery> = sqlx::query_as(sql::FAILED_DELIVERIES)
            .bind(limit)
            .bind(configured)
            .fetch_all(&self.pool)
            .await
            .context("reading failed deliveries")?;
        Ok(rows.into_iter().map(FailedDelivery::from).collect())
    }

    pub async fn redeliver(
        &self,
        sinks: &[String],
        seq: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
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
                    .bind(now)
                    .execute(&mut **tx)
                    .await
                    .context("scheduling a redelivery")?;
                exists |= done.rows_affected() > 0;
            }
            Ok(exists)
        })
        .await
    }

    pub async fn discard(
        &self,
        name: &str,
        seqs: Option<&[i64]>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.write("committing discarded deliveries", async |tx| {
            let done = sqlx::query(sql::DISCARD)
                .bind(name)
                .bind(now)
                .bind(seqs)
                .execute(&mut **tx)
                .await
                .context("discarding deliveries")?;
            Ok(done.rows_affected())
        })
        .await
    }
}

mod delivery_log;

/// The statements of the outbox and of the sink worker (the operator's in
/// `sinks.rs` use some of them too).
pub(super) mod sql;
