//! SQLite: sinks.

use super::{SqliteStore, sql};
use crate::domain::timefmt::{from_db, to_db};
use crate::store::SinkRow;
use crate::store::{Backlog, Context, SinkActivity, SinkBacklog, StoreError};
use chrono::{DateTime, Utc};

impl SqliteStore {
    /// Disables sink `name` (its receiver answered 410 Gone).
    pub async fn disable_sink(
        &self,
        name: &str,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.write("committing a disabled sink", async |tx| {
            sqlx::query(sql::DISABLE_SINK)
                .bind(name)
                .bind(to_db(at))
                .bind(reason)
                .execute(&mut **tx)
                .await
                .context("disabling a sink")?;
            Ok(())
        })
        .await
    }

    /// Disables sink `name` by a person's hand (`sinks disable`), registering
    /// it first if no daemon has yet (it then starts after the newest event).
    /// A sink already disabled keeps its time and reason. Returns its row as
    /// it was before.
    pub async fn disable_sink_by_hand(
        &self,
        name: &str,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<SinkRow, StoreError> {
        self.write("committing a disabled sink", async |tx| {
            sqlx::query(sql::REGISTER_SINK)
                .bind(name)
                .execute(&mut **tx)
                .await
                .context("registering a sink")?;
            let before: SinkRow = sqlx::query_as(sql::SINK)
                .bind(name)
                .fetch_one(&mut **tx)
                .await
                .context("reading a sink")?;
            if before.disabled_at.is_none() {
                sqlx::query(sql::DISABLE_SINK)
                    .bind(name)
                    .bind(to_db(at))
                    .bind(reason)
                    .execute(&mut **tx)
                    .await
                    .context("disabling a sink")?;
            }
            Ok(before)
        })
        .await
    }

    /// Enables sink `name` again (`sinks enable`): clears `disabled_at` and
    /// makes its open deliveries due at `now`, so its worker (which re-reads a
    /// disabled sink's row every few seconds) sends the backlog at once.
    /// Returns its row as it was before (`None`: not registered); a sink that
    /// was not disabled is left as it is.
    pub async fn enable_sink(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SinkRow>, StoreError> {
        self.write("committing an enabled sink", async |tx| {
            let before: Option<SinkRow> = sqlx::query_as(sql::SINK)
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
                sqlx::query(sql::DELIVERIES_DUE_NOW)
                    .bind(name)
                    .bind(to_db(now))
                    .execute(&mut **tx)
                    .await
                    .context("making a sink's deliveries due")?;
            }
            Ok(before)
        })
        .await
    }

    /// Sink `name`'s last successful delivery and the attempts made so far
    /// at its open deliveries.
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

    /// Sink `name`'s backlog.
    pub async fn sink_backlog(&self, name: &str) -> Result<Backlog, StoreError> {
        let (open, oldest, unadmitted, _): (i64, Option<String>, Option<i64>, Option<String>) =
            sqlx::query_as(sql::SINK_BACKLOG)
                .bind(name)
                .fetch_one(&self.pool)
                .await
                .context("reading a sink's backlog")?;
        Ok(Backlog {
            pending: open + unadmitted.unwrap_or(0),
            oldest: oldest.as_deref().and_then(from_db),
        })
    }

    /// Every sink the database knows, with its backlog and given-up
    /// deliveries. A sink no worker runs for (not configured) is not
    /// admitting events: its backlog is its open deliveries only, so pass
    /// `configured` to tell.
    pub async fn sink_backlogs(
        &self,
        configured: &[String],
    ) -> Result<Vec<SinkBacklog>, StoreError> {
        let mut out = Vec::new();
        for sink in self.sinks().await? {
            let (open, oldest, unadmitted, oldest_unadmitted): (
                i64,
                Option<String>,
                Option<i64>,
                Option<String>,
            ) = sqlx::query_as(sql::SINK_BACKLOG)
                .bind(&sink.name)
                .fetch_one(&self.pool)
                .await
                .context("reading a sink's backlog")?;
            let given_up: i64 = sqlx::query_scalar(sql::SINK_GIVEN_UP)
                .bind(&sink.name)
                .fetch_one(&self.pool)
                .await
                .context("counting given-up deliveries")?;
            let admitting = configured.contains(&sink.name);
            // A disabled sink admits nothing: its waiting events are not
            // deliveries yet, and the oldest of them may be the oldest of all.
            let oldest = [
                oldest.as_deref().and_then(from_db),
                oldest_unadmitted
                    .as_deref()
                    .and_then(from_db)
                    .filter(|_| admitting),
            ]
            .into_iter()
            .flatten()
            .min();
            out.push(SinkBacklog {
                backlog: Backlog {
                    pending: open
                        + if admitting {
                            unadmitted.unwrap_or(0)
                        } else {
                            0
                        },
                    oldest,
                },
                given_up,
                sink,
            });
        }
        Ok(out)
    }
}
