//! SQLite: the top-up rule (see `store/top_up.rs`). The conditional insert
//! runs in a BEGIN IMMEDIATE transaction: no other writer, in this process
//! or another, runs between its checks and its insert.

use super::{SqliteStore, sql};
use crate::domain::timefmt::to_db;
use crate::store::{Context, StoreError, TopUpLimits, TopUpState};
use chrono::{DateTime, Utc};

impl SqliteStore {
    pub async fn top_up_state(
        &self,
        day_start: DateTime<Utc>,
        month_start: DateTime<Utc>,
    ) -> Result<TopUpState, StoreError> {
        sqlx::query_as(sql::TOP_UP_STATE)
            .bind(to_db(day_start))
            .bind(to_db(month_start))
            .fetch_one(&self.pool)
            .await
            .context("reading the top-up rule's state")
    }

    pub async fn ask_top_up(
        &self,
        amount: i64,
        now: DateTime<Utc>,
        limits: TopUpLimits,
        balance_asked_at: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        self.write("committing a top-up request", async |tx| {
            sqlx::query_scalar(sql::ASK_TOP_UP)
                .bind(amount)
                .bind(to_db(now))
                .bind(to_db(limits.day_start))
                .bind(to_db(limits.month_start))
                .bind(limits.max_per_day)
                .bind(limits.max_per_month)
                .bind(to_db(balance_asked_at))
                .fetch_optional(&mut **tx)
                .await
                .context("asking for a top-up charge")
        })
        .await
    }

    pub async fn note_top_up_decision(
        &self,
        decision: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::NOTE_TOP_UP_DECISION)
            .bind(decision)
            .bind(to_db(at))
            .execute(&self.writer)
            .await
            .context("recording the top-up decision")?;
        Ok(())
    }

    pub async fn resume_top_up(&self, by: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::RESUME_TOP_UP)
            .bind(by)
            .bind(to_db(at))
            .execute(&self.writer)
            .await
            .context("resuming the top-up rule")?;
        Ok(done.rows_affected() == 1)
    }
}
