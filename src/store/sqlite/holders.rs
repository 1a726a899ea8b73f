//! SQLite: which daemon holds each sink (see `store/holders.rs` for the
//! contract). Every write starts with `BEGIN IMMEDIATE`, so a take and a
//! fenced write never interleave. A holder other than this daemon is probed
//! through its owner lock file (`owners.rs`): a free lock means a dead holder.

use chrono::{DateTime, Utc};
use sqlx::{Sqlite, Transaction};

use super::owners::{Liveness, liveness, owners_dir};
use super::{SqliteStore, sql};
use crate::domain::timefmt::to_db;
use crate::store::Context as _;
use crate::store::{SinkHold, SinkHolder, StoreError};

impl SqliteStore {
    pub async fn take_sink(
        &self,
        name: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<SinkHold>, StoreError> {
        let dir = owners_dir(self.path());
        self.write("committing a sink's hold", async |tx| {
            sqlx::query(sql::REGISTER_SINK)
                .bind(name)
                .execute(&mut **tx)
                .await
                .context("registering a sink")?;
            let (holder, expired): (Option<String>, bool) = sqlx::query_as(sql::HOLDER)
                .bind(name)
                .bind(to_db(now))
                .fetch_one(&mut **tx)
                .await
                .context("reading a sink's holder")?;
            let free = match holder.as_deref() {
                None => true,
                Some(h) if h == self.owner() => true,
                Some(_) if expired => true,
                Some(h) => liveness(&dir, h) == Liveness::Dead,
            };
            if !free {
                return Ok(None);
            }
            let fence: i64 = sqlx::query_scalar(sql::TAKE_SINK)
                .bind(name)
                .bind(self.owner())
                .bind(to_db(until))
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
        let until = to_db(until);
        self.write("committing a renewed sink hold", async |tx| {
            let done = sqlx::query(sql::RENEW_SINK)
                .bind(&hold.sink)
                .bind(self.owner())
                .bind(hold.fence)
                .bind(&until)
                .execute(&mut **tx)
                .await
                .context("renewing a sink's hold")?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    pub async fn release_sink(&self, hold: &SinkHold) -> Result<(), StoreError> {
        self.write("committing a sink handed back", async |tx| {
            sqlx::query(sql::RELEASE_SINK)
                .bind(&hold.sink)
                .bind(self.owner())
                .bind(hold.fence)
                .execute(&mut **tx)
                .await
                .context("handing a sink back")?;
            Ok(())
        })
        .await
    }

    pub async fn sink_holders(&self) -> Result<Vec<SinkHolder>, StoreError> {
        sqlx::query_as(sql::SINK_HOLDERS)
            .fetch_all(&self.pool)
            .await
            .context("reading the sinks' holders")
    }

    /// Frees the sinks of the dead daemon `owner`.
    pub(super) async fn free_sinks_of(&self, owner: &str) -> Result<u64, StoreError> {
        self.write("committing a dead daemon's sinks freed", async |tx| {
            let done = sqlx::query(sql::FREE_SINKS_OF)
                .bind(owner)
                .execute(&mut **tx)
                .await
                .context("freeing a dead daemon's sinks")?;
            Ok(done.rows_affected())
        })
        .await
    }
}

/// Checks, in `tx` (which holds the write lock), that `owner` holds sink
/// `name` with `fence`: [`StoreError::NotHeld`] otherwise (also for a sink
/// that is not registered).
pub(super) async fn check_hold(
    tx: &mut Transaction<'_, Sqlite>,
    name: &str,
    owner: &str,
    fence: i64,
) -> Result<(), StoreError> {
    let held: Option<bool> = sqlx::query_scalar(sql::HELD)
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
