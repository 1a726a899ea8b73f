//! PostgreSQL: sinks as an operator sees and switches them (see
//! `store/sinks.rs` for what each call must do). A switch reads the sink's
//! row locked (see `events.rs`), so it and a daemon's writes take turns.

use chrono::{DateTime, Utc};

use super::events::sql as outbox;
use crate::store::Context as _;
use crate::store::{Backlog, SinkActivity, SinkBacklog, SinkRow, StoreError};

/// A sink's backlog as `SINK_BACKLOG` reads it: open deliveries, the oldest
/// one's event time, events not admitted yet, the oldest of those's time.
type RawBacklog = (i64, Option<DateTime<Utc>>, i64, Option<DateTime<Utc>>);

impl super::PgStore {
    pub async fn disable_sink(
        &self,
        name: &str,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.write("committing a disabled sink", async |tx| {
            sqlx::query(sql::DISABLE_SINK)
                .bind(name)
                .bind(at)
                .bind(reason)
                .execute(&mut **tx)
                .await
                .context("disabling a sink")?;
            Ok(())
        })
        .await
    }

    pub async fn disable_sink_by_hand(
        &self,
        name: &str,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<SinkRow, StoreError> {
        self.write("committing a disabled sink", async |tx| {
            sqlx::query(outbox::REGISTER_SINK)
                .bind(name)
                .execute(&mut **tx)
                .await
                .context("registering a sink")?;
            let before: SinkRow = sqlx::query_as(outbox::SINK_FOR_UPDATE)
                .bind(name)
                .fetch_one(&mut **tx)
                .await
                .context("reading a sink")?;
            if before.disabled_at.is_none() {
                sqlx::query(sql::DISABLE_SINK)
                    .bind(name)
                    .bind(at)
                    .bind(reason)
                    .execute(&mut **tx)
                    .await
                    .context("disabling a sink")?;
            }
            Ok(before)
        })
        .await
    }

    pub async fn enable_sink(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SinkRow>, StoreError> {
        self.write("committing an enabled sink", async |tx| {
            let before: Option<SinkRow> = sqlx::query_as(outbox::SINK_FOR_UPDATE)
                .bind(name)
                .fetch_optional(&mut **tx)
                .await
                .context("reading a sink")?;
            if before.as_ref().is_some_and(|r| r.disabled_at.is_some()) {
                sqlx::query(sql::ENABLE_SINK)
                    .bind(name)
                    .execute(&mut **tx)
                    .await
                    .context("enabling a sink")?;
                sqlx::query(outbox::DELIVERIES_DUE_NOW)
                    .bind(name)
                    .bind(now)
                    .execute(&mut **tx)
                    .await
                    .context("making a sink's deliveries due")?;
            }
            Ok(before)
        })
        .await
    }

    pub async fn sink_activity(&self, name: &str) -> Result<SinkActivity, StoreError> {
        let (last_delivered_at, open_attempts): (Option<String>, i64) =
            sqlx::query_as(sql::SINK_ACTIVITY)
                .bind(name)
                .fetch_one(&self.pool)
                .await
                .context("reading a sink's activity")?;
        Ok(SinkActivity {
            last_delivered_at,
            open_attempts,
        })
    }

    pub async fn sink_backlog(&self, name: &str) -> Result<Backlog, StoreError> {
        let (open, oldest, unadmitted, _) = self.raw_backlog(name).await?;
        Ok(Backlog {
            pending: open + unadmitted,
            oldest,
        })
    }

    pub async fn sink_backlogs(
        &self,
        configured: &[String],
    ) -> Result<Vec<SinkBacklog>, StoreError> {
        let mut out = Vec::new();
        for sink in self.sinks().await? {
            let (open, oldest, unadmitted, oldest_unadmitted) =
                self.raw_backlog(&sink.name).await?;
            let given_up: i64 = sqlx::query_scalar(sql::SINK_GIVEN_UP)
                .bind(&sink.name)
                .fetch_one(&self.pool)
                .await
                .context("counting given-up deliveries")?;
            // A sink no worker runs for admits nothing: its waiting events
            // are not its backlog. One that admits (a disabled one too, whose
            // waiting events are not deliveries yet) may have its oldest
            // among them.
            let admitting = configured.contains(&sink.name);
            let oldest = [oldest, oldest_unadmitted.filter(|_| admitting)]
                .into_iter()
                .flatten()
                .min();
            out.push(SinkBacklog {
                backlog: Backlog {
                    pending: open + if admitting { unadmitted } else { 0 },
                    oldest,
                },
                given_up,
                sink,
            });
        }
        Ok(out)
    }

    async fn raw_backlog(&self, name: &str) -> Result<RawBacklog, StoreError> {
        sqlx::query_as(sql::SINK_BACKLOG)
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .context("reading a sink's backlog")
    }
}

/// The statements of this file (the sink's row and the outbox's are in
/// `events.rs`).
mod sql {
    /// Disables sink $1 at $2 for reason $3.
    pub(super) const DISABLE_SINK: &str =
        "UPDATE sinks SET disabled_at = $2, disabled_reason = $3 WHERE name = $1";

    /// Enables sink $1 again (a person's `sinks enable`).
    pub(super) const ENABLE_SINK: &str =
        "UPDATE sinks SET disabled_at = NULL, disabled_reason = NULL WHERE name = $1";

    /// Sink $1's last delivery (`delivered_at`, UTC text) and the attempts
    /// made so far at its open deliveries (`sum` of bigint is numeric: cast).
    pub(super) const SINK_ACTIVITY: &str = "SELECT
           (SELECT utc_text(max(delivered_at)) FROM deliveries WHERE sink = $1),
           (SELECT coalesce(sum(attempts), 0)::bigint FROM deliveries
            WHERE sink = $1 AND delivered_at IS NULL AND failed_at IS NULL)";

    /// Sink $1's backlog: open deliveries, the oldest one's event time,
    /// events not yet admitted (any type), and the oldest of those's time.
    pub(super) const SINK_BACKLOG: &str = "SELECT
           (SELECT count(*) FROM deliveries
            WHERE sink = $1 AND delivered_at IS NULL AND failed_at IS NULL),
           (SELECT min(e.occurred_at) FROM deliveries d JOIN events e ON e.seq = d.seq
            WHERE d.sink = $1 AND d.delivered_at IS NULL AND d.failed_at IS NULL),
           (SELECT count(*) FROM events WHERE seq > (SELECT admitted_seq FROM sinks WHERE name = $1)),
           (SELECT occurred_at FROM events WHERE seq > (SELECT admitted_seq FROM sinks WHERE name = $1)
            ORDER BY seq LIMIT 1)";

    /// Sink $1's deliveries that were given up (not delivered, not discarded).
    pub(super) const SINK_GIVEN_UP: &str = "SELECT count(*) FROM deliveries
         WHERE failed_at IS NOT NULL AND sink = $1 AND delivered_at IS NULL AND discarded_at IS NULL";
}
