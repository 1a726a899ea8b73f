//! SQLite: the request budget all daemons on this file share (see
//! `store/budget.rs`). The row is read and written in one `BEGIN IMMEDIATE`
//! transaction, so two daemons never take the same slots. The database's
//! clock is this host's wall clock, the one every daemon on the file shares.

use std::time::Duration;

use chrono::Utc;

use super::{SqliteStore, sql};
use crate::store::{BudgetRow, Context as _, Grant, Micros, StoreError, budget_pause, budget_take};

type Row = (i64, Option<i64>, Option<String>);

fn now_us() -> Micros {
    Utc::now().timestamp_micros()
}

impl SqliteStore {
    /// Takes up to `want` slots `interval` µs apart (see `store/budget.rs`).
    pub async fn take_budget(&self, want: u32, interval: Micros) -> Result<Grant, StoreError> {
        self.write("committing a budget grant", async |tx| {
            let row = read(tx).await?;
            let (new, grant) = budget_take(&row, now_us(), want, interval);
            if new != row {
                write(tx, &new).await?;
            }
            Ok(grant)
        })
        .await
    }

    /// Pauses every daemon on this file for `wait` from now.
    pub async fn pause_budget(&self, wait: Duration, reason: &str) -> Result<bool, StoreError> {
        self.write("committing a budget pause", async |tx| {
            let row = read(tx).await?;
            let (new, lengthened) = budget_pause(&row, now_us(), wait, reason);
            if lengthened {
                write(tx, &new).await?;
            }
            Ok(lengthened)
        })
        .await
    }
}

async fn read(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>) -> Result<BudgetRow, StoreError> {
    let row: Option<Row> = sqlx::query_as(sql::BUDGET_READ)
        .fetch_optional(&mut **tx)
        .await
        .context("reading the request budget")?;
    Ok(row.map_or_else(
        BudgetRow::default,
        |(next_slot, paused_until, pause_reason)| BudgetRow {
            next_slot,
            paused_until,
            pause_reason,
        },
    ))
}

async fn write(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    row: &BudgetRow,
) -> Result<(), StoreError> {
    sqlx::query(sql::BUDGET_WRITE)
        .bind(row.next_slot)
        .bind(row.paused_until)
        .bind(row.pause_reason.as_deref())
        .execute(&mut **tx)
        .await
        .context("writing the request budget")?;
    Ok(())
}
