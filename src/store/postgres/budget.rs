//! PostgreSQL: the request budget all daemons on this database share, on
//! every host (see `store/budget.rs`). The row is locked (`UPDATE ... RETURNING`,
//! as `FOR UPDATE` would) and written back in one transaction, so two daemons never take the same
//! slots. The clock is the server's (`clock_timestamp()`, read after the row
//! lock is held), so hosts whose clocks disagree still space their requests.

use std::time::Duration;

use sqlx::{Postgres, Transaction};

use crate::store::{BudgetRow, Context as _, Grant, Micros, StoreError, budget_pause, budget_take};

type Row = (i64, Option<i64>, Option<String>, i64);

impl super::PgStore {
    /// Takes up to `want` slots `interval` µs apart (see `store/budget.rs`).
    pub async fn take_budget(&self, want: u32, interval: Micros) -> Result<Grant, StoreError> {
        self.write("committing a budget grant", async |tx| {
            let (row, now) = read(tx).await?;
            let (new, grant) = budget_take(&row, now, want, interval);
            if new != row {
                write(tx, &new).await?;
            }
            Ok(grant)
        })
        .await
    }

    /// Pauses every daemon on this database for `wait` from the server's now.
    pub async fn pause_budget(&self, wait: Duration, reason: &str) -> Result<bool, StoreError> {
        self.write("committing a budget pause", async |tx| {
            let (row, now) = read(tx).await?;
            let (new, lengthened) = budget_pause(&row, now, wait, reason);
            if lengthened {
                write(tx, &new).await?;
            }
            Ok(lengthened)
        })
        .await
    }
}

async fn read(tx: &mut Transaction<'_, Postgres>) -> Result<(BudgetRow, Micros), StoreError> {
    let mut found: Option<Row> = sqlx::query_as(sql::LOCK_READ)
        .fetch_optional(&mut **tx)
        .await
        .context("reading the request budget")?;
    if found.is_none() {
        // Another program deleted the row: put it back, then lock it.
        sqlx::query(sql::ENSURE)
            .execute(&mut **tx)
            .await
            .context("restoring the request budget")?;
        found = sqlx::query_as(sql::LOCK_READ)
            .fetch_optional(&mut **tx)
            .await
            .context("reading the request budget")?;
    }
    let (next_slot, paused_until, pause_reason, now) = found.ok_or(StoreError::Query {
        context: "reading the request budget",
        cause: sqlx::Error::RowNotFound,
    })?;
    Ok((
        BudgetRow {
            next_slot,
            paused_until,
            pause_reason,
        },
        now,
    ))
}

async fn write(tx: &mut Transaction<'_, Postgres>, row: &BudgetRow) -> Result<(), StoreError> {
    sqlx::query(sql::WRITE)
        .bind(row.next_slot)
        .bind(row.paused_until)
        .bind(row.pause_reason.as_deref())
        .execute(&mut **tx)
        .await
        .context("writing the request budget")?;
    Ok(())
}

/// The statements of this file.
mod sql {
    /// The row, if missing (another program deleted it).
    pub(super) const ENSURE: &str =
        "INSERT INTO api_budget (id, next_slot_us) VALUES (1, 0) ON CONFLICT (id) DO NOTHING";

    /// The row, locked until commit, and the server's now in µs. An UPDATE
    /// that changes nothing, rather than `SELECT ... FOR UPDATE`, because its
    /// `RETURNING` is computed once the lock is held: a `SELECT`'s
    /// `clock_timestamp()` may be read before it waits for the lock, and a
    /// reading from before the wait would place this daemon's slots late,
    /// on top of the next daemon's.
    pub(super) const LOCK_READ: &str = "UPDATE api_budget SET id = 1 WHERE id = 1
     RETURNING next_slot_us, paused_until_us, pause_reason,
            (extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

    /// Writes the row back: $1 next slot, $2 pause end, $3 pause reason.
    pub(super) const WRITE: &str = "UPDATE api_budget SET next_slot_us = $1, paused_until_us = $2, pause_reason = $3 WHERE id = 1";
}
