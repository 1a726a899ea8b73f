//! PostgreSQL: which daemon holds each sink (see `store/holders.rs` for the
//! contract). A take reads the sink's row locked (`FOR NO KEY UPDATE`, as
//! every writer of the sink does), so a take and a fenced write take turns:
//! a write either commits before the take or finds the new holder and writes
//! nothing. A holder other than this daemon is probed as `owners.rs` probes a
//! lease owner, in the take's transaction.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};

use super::PgStore;
use super::owners::{Liveness, probe};
use crate::store::Context as _;
use crate::store::{SinkHold, SinkHolder, StoreError};

impl PgStore {
    pub async fn take_sink(
        &self,
        name: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<SinkHold>, StoreError> {
        self.write("committing a sink's hold", async |tx| {
            sqlx::query(super::events::sql::REGISTER_SINK)
                .bind(name)
                .execute(&mut **tx)
                .await
                .context("registering a sink")?;
            let (holder, expired): (Option<String>, bool) = sqlx::query_as(sql::HOLDER_FOR_UPDATE)
                .bind(name)
                .bind(now)
                .fetch_one(&mut **tx)
                .await
                .context("reading a sink's holder")?;
            let free = match holder.as_deref() {
                None => true,
                Some(h) if h == self.owner() => true,
                Some(_) if expired => true,
                Some(h) => probe(tx, h).await? == Liveness::Dead,
            };
            if !free {
                return Ok(None);
            }
            let fence: i64 = sqlx::query_scalar(sql::TAKE)
                .bind(name)
                .bind(self.owner())
                .bind(until)
                .fetch_one(&mut **tx)
                .await
                .context("taking a sink")?;
            Ok(Some(SinkHold {
                sink: name.to_owned(),
                fence,
            }))
        })
        .await
    }

    pub async fn renew_sink(
        &self,
        hold: &SinkHold,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::RENEW)
            .bind(&hold.sink)
            .bind(self.owner())
            .bind(hold.fence)
            .bind(until)
            .execute(&self.pool)
            .await
            .context("renewing a sink's hold")?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn release_sink(&self, hold: &SinkHold) -> Result<(), StoreError> {
        sqlx::query(sql::RELEASE)
            .bind(&hold.sink)
            .bind(self.owner())
            .bind(hold.fence)
            .execute(&self.pool)
            .await
            .context("handing a sink back")?;
        Ok(())
    }

    pub async fn sink_holders(&self) -> Result<Vec<SinkHolder>, StoreError> {
        sqlx::query_as(sql::HOLDERS)
            .fetch_all(&self.pool)
            .await
            .context("reading the sinks' holders")
    }
}

/// Locks sink `name`'s row until `tx` ends and checks that `owner` holds it
/// with `fence`: [`StoreError::NotHeld`] otherwise (also for a sink that is
/// not registered).
pub(super) async fn check_hold(
    tx: &mut Transaction<'_, Postgres>,
    name: &str,
    owner: &str,
    fence: i64,
) -> Result<(), StoreError> {
    let held: Option<bool> = sqlx::query_scalar(sql::HELD_FOR_UPDATE)
        .bind(name)
        .bind(owner)
        .bind(fence)
        .fetch_optional(&mut **tx)
        .await
        .context("reading a sink's holder")?;
    match held {
        Some(true) => Ok(()),
        _ => Err(StoreError::NotHeld {
            sink: name.to_owned(),
        }),
    }
}

/// The statements of this file.
mod sql {
    /// Sink $1's holder and whether its hold ran out by $2, its row locked
    /// until the transaction ends.
    pub(super) const HOLDER_FOR_UPDATE: &str = "SELECT holder, coalesce(hold_expires_at <= $2, true) FROM sinks WHERE name = $1 FOR NO KEY UPDATE";

    /// Sink $1 is held by $2 until $3, with a new fence (returned).
    pub(super) const TAKE: &str =
        "UPDATE sinks SET holder = $2, holder_fence = holder_fence + 1, hold_expires_at = $3
         WHERE name = $1 RETURNING holder_fence";

    /// Sink $1's hold by $2 with fence $3 runs until $4 (no row: lost).
    pub(super) const RENEW: &str = "UPDATE sinks SET hold_expires_at = $4 WHERE name = $1 AND holder = $2 AND holder_fence = $3";

    /// Sink $1's hold by $2 with fence $3 ends.
    pub(super) const RELEASE: &str = "UPDATE sinks SET holder = NULL, hold_expires_at = NULL
         WHERE name = $1 AND holder = $2 AND holder_fence = $3";

    /// Whether $2 holds sink $1 with fence $3, its row locked until the
    /// transaction ends (no row: not registered).
    pub(super) const HELD_FOR_UPDATE: &str =
        "SELECT coalesce(holder = $2 AND holder_fence = $3, false) FROM sinks
         WHERE name = $1 FOR NO KEY UPDATE";

    /// Every sink's holder, by name.
    pub(super) const HOLDERS: &str =
        "SELECT name AS sink, holder, utc_text(hold_expires_at) AS hold_expires_at
         FROM sinks ORDER BY name";
}
