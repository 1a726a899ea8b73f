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
//! - Two daemons may work one sink at once: admission locks the sink's row
//!   (`FOR UPDATE`) for its transaction, so the second admitter waits and
//!   then reads the moved cursor (and `ON CONFLICT DO NOTHING` backs it up).

use chrono::{DateTime, Utc};

use crate::domain::DeliveryState;
use crate::domain::timefmt::from_db;
use crate::store::Context as _;
use crate::store::*;

/// An event as selected (`data` as jsonb text).
#[derive(sqlx::FromRow)]
struct RawEvent {
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
        types: &[&str],
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<i64, StoreError> {
        self.write("committing admitted events", async |tx| {
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
        attempts: &[AttemptRow],
        verdict: Option<SinkVerdict<'_>>,
        due_now: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.write("committing delivery attempts", async |tx| {
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

/// The statements of the outbox and of the sink worker (the operator's in
/// `sinks.rs` use some of them too).
pub(super) mod sql {
    /// The columns of an event as `RawEvent` reads them (`data` as jsonb text,
    /// `issuance_id` NULL for an event about no issuance).
    macro_rules! event_columns {
        () => {
            "SELECT seq, id, type, issuance_id, utc_text(occurred_at) AS occurred_at,
                    data::text AS data
             FROM events"
        };
    }

    /// Events after cursor $1, oldest first, $2 at most. A safe cursor: the
    /// `events_seq_in_commit_order` trigger makes events commit in seq order.
    pub(super) const EVENTS_AFTER: &str =
        concat!(event_columns!(), " WHERE seq > $1 ORDER BY seq LIMIT $2");

    /// Events of issuance $1, oldest first.
    pub(super) const EVENTS_OF: &str =
        concat!(event_columns!(), " WHERE issuance_id = $1 ORDER BY seq");

    /// The newest event's seq (0 when there is none).
    pub(super) const LAST_EVENT_SEQ: &str = "SELECT coalesce(max(seq), 0) FROM events";

    /// Events after $1 by type: (type, count, newest seq).
    pub(super) const EVENT_COUNTS_AFTER: &str =
        "SELECT type, count(*), max(seq) FROM events WHERE seq > $1 GROUP BY type ORDER BY type";

    /// Registers sink $1, starting after the newest event, unless it exists.
    pub(in crate::store::postgres) const REGISTER_SINK: &str =
        "INSERT INTO sinks (name, admitted_seq)
         VALUES ($1, (SELECT coalesce(max(seq), 0) FROM events)) ON CONFLICT (name) DO NOTHING";

    /// The columns of a `SinkRow` (instants as UTC text).
    macro_rules! sink_columns {
        () => {
            "admitted_seq, utc_text(disabled_at) AS disabled_at, disabled_reason,
             utc_text(failing_since) AS failing_since, last_problem
             FROM sinks"
        };
    }

    /// Sink $1's `SinkRow`.
    pub(in crate::store::postgres) const SINK: &str =
        concat!("SELECT ", sink_columns!(), " WHERE name = $1");

    /// Sink $1's `SinkRow`, locked until the transaction ends (an operator
    /// switching it waits for, and is waited for by, the other writers).
    pub(in crate::store::postgres) const SINK_FOR_UPDATE: &str =
        concat!("SELECT ", sink_columns!(), " WHERE name = $1 FOR UPDATE");

    /// Every sink the database knows, configured or not, by name.
    pub(super) const SINKS: &str = concat!("SELECT name, ", sink_columns!(), " ORDER BY name");

    /// Sink $1's admission cursor, its row locked until the transaction ends.
    pub(super) const LOCK_SINK_CURSOR: &str =
        "SELECT admitted_seq FROM sinks WHERE name = $1 FOR UPDATE";

    /// Sink $1 answered with a 2xx: it is not failing.
    pub(super) const SINK_ANSWERED: &str =
        "UPDATE sinks SET failing_since = NULL, last_problem = NULL WHERE name = $1";

    /// Sink $1's attempts failed at $2 with problem $3: failing since the
    /// first failure after its last 2xx.
    pub(super) const SINK_FAILING: &str = "UPDATE sinks
         SET failing_since = coalesce(failing_since, $2), last_problem = $3 WHERE name = $1";

    /// Creates the deliveries of sink $1 for events after its cursor $2 up to
    /// $3 whose type is in the array $4, due at $5 (an event about no issuance
    /// gets `''` as its delivery's issuance: they are ordered among themselves).
    pub(super) const ADMIT_EVENTS: &str =
        "INSERT INTO deliveries (sink, seq, issuance_id, created_at, next_attempt_at)
         SELECT $1, e.seq, coalesce(e.issuance_id, ''), $5, $5 FROM events e
         WHERE e.seq > $2 AND e.seq <= $3 AND e.type = ANY($4::text[])
         ORDER BY e.seq
         ON CONFLICT (sink, seq) DO NOTHING";

    /// Moves sink $1's admission cursor to $2 (never back).
    pub(super) const SET_ADMITTED: &str =
        "UPDATE sinks SET admitted_seq = greatest(admitted_seq, $2) WHERE name = $1";

    /// Deliveries of sink $1 due at $2, $3 at most, each the oldest open one of
    /// its issuance (a later event of an issuance waits for the earlier).
    pub(super) const DUE_DELIVERIES: &str = "SELECT d.seq, e.id, e.type,
                convert_to(coalesce(e.issuance_id, ''), 'UTF8') AS issuance_id,
                utc_text(e.occurred_at) AS occurred_at, e.data::text AS data,
                d.attempts, utc_text(d.created_at) AS created_at
         FROM deliveries d JOIN events e ON e.seq = d.seq
         WHERE d.sink = $1 AND d.delivered_at IS NULL AND d.failed_at IS NULL
           AND d.next_attempt_at <= $2
           AND NOT EXISTS (SELECT 1 FROM deliveries p
                           WHERE p.sink = d.sink AND p.issuance_id = d.issuance_id AND p.seq < d.seq
                             AND p.delivered_at IS NULL AND p.failed_at IS NULL)
         ORDER BY d.next_attempt_at, d.seq LIMIT $3";

    /// When sink $1's next open delivery is due.
    pub(super) const NEXT_DELIVERY_DUE: &str = "SELECT min(next_attempt_at) FROM deliveries
         WHERE sink = $1 AND delivered_at IS NULL AND failed_at IS NULL";

    /// Writes one attempt of sink $1 at delivery $2: $3 attempted at, $4 HTTP
    /// status, $5 error, $6 next attempt (NULL: unchanged), $7 delivered at,
    /// $8 given up at. Only an open delivery changes.
    pub(super) const RECORD_ATTEMPT: &str = "UPDATE deliveries SET
             attempts = attempts + 1, last_attempt_at = $3, last_status = $4, last_error = $5,
             next_attempt_at = coalesce($6, next_attempt_at), delivered_at = $7, failed_at = $8
         WHERE sink = $1 AND seq = $2 AND delivered_at IS NULL AND failed_at IS NULL";

    /// Makes every open delivery of sink $1 due at $2 (the receiver is back,
    /// or the sink was enabled again).
    pub(in crate::store::postgres) const DELIVERIES_DUE_NOW: &str =
        "UPDATE deliveries SET next_attempt_at = $2
         WHERE sink = $1 AND delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at > $2";

    /// Undelivered, undiscarded deliveries that failed at least once, or whose
    /// sink is not in the array $2 of configured sinks (never to be attempted),
    /// oldest event first, $1 at most; with their sink's `disabled_at` and
    /// whether it is configured.
    pub(super) const FAILED_DELIVERIES: &str = "SELECT d.sink, d.seq, e.id, e.type, e.issuance_id,
                utc_text(e.occurred_at) AS occurred_at, d.attempts, d.last_status, d.last_error,
                utc_text(d.last_attempt_at) AS last_attempt_at,
                utc_text(d.next_attempt_at) AS next_attempt_at, utc_text(d.failed_at) AS failed_at,
                utc_text(s.disabled_at) AS sink_disabled_at,
                d.sink = ANY($2::text[]) AS sink_configured
         FROM deliveries d JOIN events e ON e.seq = d.seq LEFT JOIN sinks s ON s.name = d.sink
         WHERE d.delivered_at IS NULL AND d.discarded_at IS NULL
           AND (d.failed_at IS NOT NULL OR d.attempts > 0 OR NOT d.sink = ANY($2::text[]))
         ORDER BY d.seq, d.sink LIMIT $1";

    /// Schedules event $2 for sink $1 again at $3, as new (whatever happened
    /// before, a discard included). Changes nothing if there is no such event.
    pub(super) const REDELIVER: &str =
        "INSERT INTO deliveries (sink, seq, issuance_id, created_at, next_attempt_at)
         SELECT $1, seq, coalesce(issuance_id, ''), $3, $3 FROM events WHERE seq = $2
         ON CONFLICT (sink, seq) DO UPDATE SET
             attempts = 0, next_attempt_at = excluded.next_attempt_at,
             created_at = excluded.created_at,
             delivered_at = NULL, failed_at = NULL, discarded_at = NULL,
             last_status = NULL, last_error = NULL, last_attempt_at = NULL";

    /// Discards sink $1's undelivered deliveries at $2 (only the seqs in the
    /// array $3, unless it is NULL): closed for good, kept for the record.
    pub(super) const DISCARD: &str =
        "UPDATE deliveries SET discarded_at = $2, failed_at = coalesce(failed_at, $2)
         WHERE sink = $1 AND delivered_at IS NULL AND discarded_at IS NULL
           AND ($3::bigint[] IS NULL OR seq = ANY($3::bigint[]))";
}
