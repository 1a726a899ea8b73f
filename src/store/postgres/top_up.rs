//! PostgreSQL: the top-up rule (see `store/top_up.rs`). Daemons write
//! concurrently here, so the conditional insert takes a transaction-level
//! advisory lock first: two daemons' checks and inserts never interleave,
//! and each statement after the lock sees every request committed before it
//! (READ COMMITTED takes a snapshot per statement).

use chrono::{DateTime, Utc};

use crate::store::Context as _;
use crate::store::{StoreError, TopUpLimits, TopUpState};

impl super::PgStore {
    pub async fn top_up_state(
        &self,
        day_start: DateTime<Utc>,
        month_start: DateTime<Utc>,
    ) -> Result<TopUpState, StoreError> {
        sqlx::query_as(sql::TOP_UP_STATE)
            .bind(day_start)
            .bind(month_start)
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
            sqlx::query(sql::LOCK_TOP_UP)
                .execute(&mut **tx)
                .await
                .context("waiting for another top-up decision")?;
            sqlx::query_scalar(sql::ASK_TOP_UP)
                .bind(amount)
                .bind(now)
                .bind(limits.day_start)
                .bind(limits.month_start)
                .bind(limits.max_per_day)
                .bind(limits.max_per_month)
                .bind(balance_asked_at)
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
            .bind(at)
            .execute(&self.pool)
            .await
            .context("recording the top-up decision")?;
        Ok(())
    }

    pub async fn resume_top_up(&self, by: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::RESUME_TOP_UP)
            .bind(by)
            .bind(at)
            .execute(&self.pool)
            .await
            .context("resuming the top-up rule")?;
        Ok(done.rows_affected() == 1)
    }
}

/// The statements of this file; instants bound as `timestamptz`, read back as
/// UTC text.
mod sql {
    /// Serialises top-up inserts across daemons: key 'iwtopup!' as a
    /// big-endian integer.
    pub(super) const LOCK_TOP_UP: &str = "SELECT pg_advisory_xact_lock(7599670918187937825)";

    macro_rules! day_count {
        ($since:literal) => {
            concat!(
                "(SELECT count(*) FROM charge_requests WHERE source = 'top_up' AND state <> 'rejected' AND requested_at >= ",
                $since,
                ")"
            )
        };
    }

    macro_rules! month_sum {
        ($since:literal) => {
            concat!(
                "(SELECT coalesce(sum(amount), 0)::bigint FROM charge_requests WHERE source = 'top_up' AND state NOT IN ('rejected', 'refused') AND requested_at >= ",
                $since,
                ")"
            )
        };
    }

    macro_rules! expiry_retry_spent {
        ($since:literal) => {
            concat!(
                "EXISTS (SELECT 1 FROM charge_requests e JOIN issuances i ON i.id = e.issuance_id
                     WHERE e.source = 'top_up' AND e.requested_at >= ", $since, " AND i.status = 'CANCELLED'
                       AND EXISTS (SELECT 1 FROM charge_requests n WHERE n.source = 'top_up' AND n.id > e.id
                                   AND n.state <> 'rejected' AND n.requested_at >= ", $since, "))"
            )
        };
    }

    /// The rule's state: $1 the day's start, $2 the month's (the same as
    /// SQLite's `TOP_UP_STATE`).
    pub(super) const TOP_UP_STATE: &str = concat!(
        "SELECT utc_text(suspended_at) AS suspended_at, suspended_reason, suspended_request,
                refusals_in_a_row, utc_text(resumed_at) AS resumed_at, resumed_by,
                last_decision, utc_text(last_decided_at) AS last_decided_at, ",
        day_count!("$1"),
        " AS day_count, ",
        month_sum!("$2"),
        " AS month_sum, ",
        expiry_retry_spent!("$1"),
        " AS expiry_retry_spent FROM top_up WHERE id = 1"
    );

    /// The same guards and parameters as SQLite's `ASK_TOP_UP`.
    pub(super) const ASK_TOP_UP: &str = concat!(
        "INSERT INTO charge_requests (amount, source, requested_at)
         SELECT $1, 'top_up', $2
         WHERE NOT EXISTS (SELECT 1 FROM top_up WHERE id = 1 AND suspended_at IS NOT NULL)
           AND NOT EXISTS (SELECT 1 FROM issuances WHERE status IN ('WAITED', 'READY') AND watch = 'active')
           AND NOT EXISTS (SELECT 1 FROM charge_requests WHERE state IN ('pending', 'sending'))
           AND NOT EXISTS (SELECT 1 FROM charge_requests WHERE state = 'unknown' AND resolved_at IS NULL)
           AND ",
        day_count!("$3"),
        " < $5 AND ",
        month_sum!("$4"),
        " + $1 <= $6 AND NOT ",
        expiry_retry_spent!("$3"),
        "
           AND NOT EXISTS (SELECT 1 FROM charge_requests r JOIN issuances i ON i.id = r.issuance_id
                           WHERE i.status = 'DONE' AND i.last_seen_at >= $7)
         RETURNING id"
    );

    pub(super) const NOTE_TOP_UP_DECISION: &str =
        "UPDATE top_up SET last_decision = $1, last_decided_at = $2 WHERE id = 1";

    pub(super) const RESUME_TOP_UP: &str = "UPDATE top_up
         SET suspended_at = NULL, suspended_reason = NULL, suspended_request = NULL,
             refusals_in_a_row = 0, resumed_at = $2, resumed_by = $1
         WHERE id = 1 AND suspended_at IS NOT NULL";
}
