//! SQLite: claim.

use super::rows::encode_rows;
use super::{SqliteStore, sql};
use crate::domain::timefmt::{from_db, to_db};
use crate::store::{Claimed, Context, Lease, StoreError};
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

type ClaimRow = (
    Vec<u8>,
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
    i64,
);

/// A lease to end early, as a row of [`sql::RELEASE_LEASES`].
#[derive(serde::Serialize)]
struct LeaseRow<'a> {
    id: &'a str,
    /// The lease expiry the claim gave it.
    until: String,
    fence: i64,
}

/// The claim statement, on the caller's connection or transaction, for the
/// daemon `owner`.
pub(super) async fn claim_in(
    conn: &mut SqliteConnection,
    owner: &str,
    lease: &Lease,
) -> Result<Vec<Claimed>, StoreError> {
    let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let rows: Vec<ClaimRow> = sqlx::query_as(sql::CLAIM_DUE)
        .bind(to_db(lease.until))
        .bind(to_db(lease.now))
        .bind(as_i64(lease.limit))
        .bind(as_i64(lease.reserved_for_new()))
        .bind(owner)
        .fetch_all(conn)
        .await
        .context("claiming due issuances")?;
    Ok(rows.into_iter().map(claimed).collect())
}

/// A claim from its row (see [`sql::CLAIM_DUE`]'s `RETURNING`).
fn claimed((raw_id, status, due, attempts, since, fence): ClaimRow) -> Claimed {
    Claimed {
        raw_id,
        status,
        due_at: due.as_deref().and_then(from_db),
        attempts: u32::try_from(attempts.max(0)).unwrap_or(u32::MAX),
        not_found_since: since.as_deref().and_then(from_db),
        fence,
    }
}

/// Leases the one issuance `id` to `owner` (whatever its watch), due at
/// `now`, ending any other lease on it; `None` if there is no such row.
pub(super) async fn claim_one_in(
    conn: &mut SqliteConnection,
    owner: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Claimed>, StoreError> {
    let row: Option<ClaimRow> = sqlx::query_as(sql::CLAIM_ONE)
        .bind(id)
        .bind(to_db(now))
        .bind(owner)
        .fetch_optional(conn)
        .await
        .context("leasing one issuance")?;
    Ok(row.map(claimed))
}

impl SqliteStore {
    /// Leases up to `limit` due issuances in one statement: their `next_poll_at`
    /// moves to `lease_until`, so no other claimer (or a restarted daemon) polls
    /// them until this process records a result or the lease runs out. Uses the
    /// partial index on due active rows; never scans settled ones.
    pub async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut conn = self
            .writer
            .acquire()
            .await
            .context("acquiring a connection")?;
        claim_in(
            &mut conn,
            &self.owner,
            &Lease {
                now,
                until: lease_until,
                limit,
            },
        )
        .await
    }

    /// Ends leases early: each issuance still holding the lease it was given
    /// (this daemon's, with the claim's fence and expiry) becomes due at `now`.
    /// Ids that are not UTF-8 are left to expire (they are rejected at their
    /// next claim anyway). Returns how many were released.
    pub async fn release(
        &self,
        leases: &[(Claimed, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let rows: Vec<LeaseRow> = leases
            .iter()
            .filter_map(|(claimed, until)| {
                Some(LeaseRow {
                    id: std::str::from_utf8(&claimed.raw_id).ok()?,
                    until: to_db(*until),
                    fence: claimed.fence,
                })
            })
            .collect();
        if rows.is_empty() {
            return Ok(0);
        }
        let rows = encode_rows(&rows)?;
        let released = sqlx::query(sql::RELEASE_LEASES)
            .bind(rows)
            .bind(to_db(now))
            .bind(&*self.owner)
            .execute(&self.writer)
            .await
            .context("releasing leases")?;
        Ok(released.rows_affected())
    }

    /// Ends the leases of the dead daemon `owner`: its claims become due at
    /// `now` (or stay due earlier). Reads only leased rows. Returns how many.
    pub async fn take_over_claims_of(
        &self,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let taken = sqlx::query(sql::TAKE_OVER)
            .bind(owner)
            .bind(to_db(now))
            .execute(&self.writer)
            .await
            .context("taking over a dead daemon's claims")?;
        Ok(taken.rows_affected())
    }

    /// When the next active issuance falls due (index-only: the due indexes' minima).
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let seen = self.due_edge(sql::NEXT_DUE).await?;
        let new = self.due_edge(sql::NEXT_DUE_NEW).await?;
        Ok(seen.into_iter().chain(new).min())
    }

    /// When the last active issuance falls due (index-only: the due indexes' maxima).
    pub async fn last_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let seen = self.due_edge(sql::LAST_DUE).await?;
        let new = self.due_edge(sql::LAST_DUE_NEW).await?;
        Ok(seen.into_iter().chain(new).max())
    }

    /// One end of the due range. Two statements, not one with both: SQLite
    /// answers a lone `min` or `max` from the index's edge, but scans it for both.
    async fn due_edge(&self, sql: &'static str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let edge: Option<String> = sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .context("finding when active issuances fall due")?;
        Ok(edge.as_deref().and_then(from_db))
    }

    /// Pulls active issuances due later than `latest` back to a random time in
    /// `now..now + spread`. No legitimate wait ends that far away, so such rows
    /// were scheduled before the wall clock jumped backwards; left alone they
    /// would not be polled until the clock caught up again. Returns how many.
    pub async fn pull_back_beyond(
        &self,
        now: DateTime<Utc>,
        latest: DateTime<Utc>,
        spread: std::time::Duration,
    ) -> Result<u64, StoreError> {
        let spread_ms = i64::try_from(spread.as_millis()).unwrap_or(i64::MAX).max(1);
        let result = sqlx::query(sql::PULL_BACK_BEYOND)
            .bind(now.timestamp_millis())
            .bind(spread_ms)
            .bind(to_db(latest))
            .execute(&self.writer)
            .await
            .context("rescheduling issuances")?;
        Ok(result.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{
        BY_ID, assert_plan, exec, query_plan, temp_store, temp_store_with,
    };
    use super::*;
    use crate::store::Store;

    /// Inserts active rows `(id, next_poll_at)`.
    async fn insert_due(store: &Store, rows: &[(&str, &str)]) {
        for (id, at) in rows {
            sqlx::query("INSERT INTO issuances (id, next_poll_at) VALUES (?, ?)")
                .bind(id)
                .bind(at)
                .execute(store.pool())
                .await
                .unwrap();
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        from_db(s).unwrap()
    }

    #[tokio::test]
    async fn a_plain_insert_is_claimable_and_the_claim_is_a_lease() {
        let (store, _dir) =
            temp_store_with("INSERT INTO issuances (id) VALUES ('123'), (456)").await;
        let now = Utc::now() + chrono::Duration::seconds(1);
        let lease = now + chrono::Duration::minutes(2);
        let mut claimed = store.claim_due(now, lease, 10).await.unwrap();
        claimed.sort_by(|a, b| a.raw_id.cmp(&b.raw_id));
        assert_eq!(
            claimed
                .iter()
                .map(|c| c.raw_id.as_slice())
                .collect::<Vec<_>>(),
            [b"123".as_slice(), b"456"]
        );
        assert_eq!(claimed[0].status, None);
        assert!(
            store.claim_due(now, lease, 10).await.unwrap().is_empty(),
            "leased rows are not claimed twice"
        );
        assert_eq!(store.next_due().await.unwrap(), Some(t(&to_db(lease))));
        let after_lease = lease + chrono::Duration::milliseconds(1);
        assert_eq!(
            store
                .claim_due(after_lease, after_lease, 10)
                .await
                .unwrap()
                .len(),
            2,
            "expired leases come back"
        );
    }

    #[tokio::test]
    async fn released_claims_are_due_at_once_unless_someone_rescheduled_them() {
        let (store, _dir) = temp_store_with(
            "INSERT INTO issuances (id) VALUES ('a'), ('b'), (CAST(X'FF' AS TEXT))",
        )
        .await;
        let now = Utc::now() + chrono::Duration::seconds(1);
        let lease = now + chrono::Duration::minutes(2);
        let claimed = store.claim_due(now, lease, 10).await.unwrap();
        assert_eq!(claimed.len(), 3);
        // Another program moves b meanwhile; its schedule is left alone.
        exec(
            &store,
            "UPDATE issuances SET next_poll_at = '2030-01-01T00:00:00.000Z' WHERE id = 'b'",
        )
        .await;
        let leases: Vec<_> = claimed.into_iter().map(|c| (c, lease)).collect();
        assert_eq!(store.release(&leases, now).await.unwrap(), 1);
        let mut again: Vec<_> = store
            .claim_due(now, lease, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.raw_id)
            .collect();
        again.sort();
        assert_eq!(
            again,
            [b"a".to_vec()],
            "only a is due again; the non-UTF-8 id keeps its lease"
        );
    }

    #[tokio::test]
    async fn claims_take_the_most_overdue_first_and_respect_the_limit() {
        let (store, _dir) = temp_store().await;
        insert_due(
            &store,
            &[
                ("a", "2026-01-01T00:00:03.000Z"),
                ("b", "2026-01-01T00:00:01.000Z"),
                ("c", "2026-01-01T00:00:02.000Z"),
            ],
        )
        .await;
        let now = t("2026-01-01T00:00:05.000Z");
        let claimed = store
            .claim_due(now, now + chrono::Duration::minutes(1), 2)
            .await
            .unwrap();
        let mut ids: Vec<_> = claimed
            .iter()
            .map(|c| String::from_utf8(c.raw_id.clone()).unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, ["b", "c"]);
    }

    #[tokio::test]
    async fn settled_and_future_rows_are_not_claimed() {
        let (store, _dir) =
            temp_store_with("INSERT INTO issuances (id, watch) VALUES ('done', 'settled')").await;
        exec(
            &store,
            "INSERT INTO issuances (id, next_poll_at) VALUES ('later', '2999-01-01T00:00:00.000Z')",
        )
        .await;
        let now = Utc::now();
        assert!(store.claim_due(now, now, 10).await.unwrap().is_empty());
    }

    /// Start-up runs only these before its first request (besides the
    /// migrations' bookkeeping): none may cost in proportion to the rows.
    #[tokio::test]
    async fn the_statements_before_the_first_poll_read_indexes_not_the_table() {
        let (store, _dir) = temp_store().await;
        let covering = |index| format!("SEARCH issuances USING COVERING INDEX {index}");
        let due = [covering("issuances_due"), covering("issuances_new")];
        let due: Vec<&str> = due.iter().map(String::as_str).collect();
        assert_plan(&store, sql::CLAIM_DUE, "issuances", &due).await;
        let leased = "SEARCH issuances USING INDEX issuances_leased";
        assert_plan(&store, sql::TAKE_OVER, "issuances", &[leased]).await;
    }

    #[tokio::test]
    async fn the_due_edges_read_one_end_of_a_due_index_and_releases_go_by_id() {
        let (store, _dir) = temp_store().await;
        for (statement, index) in [
            (sql::NEXT_DUE, "issuances_due"),
            (sql::LAST_DUE, "issuances_due"),
            (sql::NEXT_DUE_NEW, "issuances_new"),
            (sql::LAST_DUE_NEW, "issuances_new"),
        ] {
            let details = query_plan(&store, statement).await;
            assert_eq!(
                details,
                [format!("SEARCH issuances USING COVERING INDEX {index}")],
                "{statement}"
            );
        }
        assert_plan(&store, sql::RELEASE_LEASES, "issuances", &[BY_ID]).await;
    }

    #[tokio::test]
    async fn a_backlog_of_new_rows_gets_its_share_and_no_more() {
        let (store, _dir) = temp_store().await;
        for i in 0..100 {
            sqlx::query(
                "INSERT INTO issuances (id, next_poll_at) VALUES (?, '2026-01-01T00:00:00.000Z')",
            )
            .bind(format!("new{i}"))
            .execute(store.pool())
            .await
            .unwrap();
        }
        // Three READY rows fall due after the whole backlog was inserted.
        for i in 0..3 {
            sqlx::query("INSERT INTO issuances (id, status, next_poll_at) VALUES (?, 'READY', '2026-01-01T00:00:01.000Z')")
                .bind(format!("ready{i}"))
                .execute(store.pool())
                .await
                .unwrap();
        }
        let now = t("2026-01-01T00:00:05.000Z");
        let until = now + chrono::Duration::minutes(1);
        let ids = |claimed: Vec<Claimed>| -> Vec<String> {
            let mut ids: Vec<String> = claimed
                .into_iter()
                .map(|c| String::from_utf8(c.raw_id).unwrap())
                .collect();
            ids.sort();
            ids
        };
        let of =
            |ids: &[String], prefix: &str| ids.iter().filter(|i| i.starts_with(prefix)).count();
        // 8 slots: the due READY rows come first, new rows fill the rest.
        let first = ids(store.claim_due(now, until, 8).await.unwrap());
        assert_eq!(
            (of(&first, "ready"), of(&first, "new")),
            (3, 5),
            "{first:?}"
        );
        // With more due READY rows than slots, new rows still get a quarter.
        for i in 0..20 {
            sqlx::query("INSERT INTO issuances (id, status, next_poll_at) VALUES (?, 'READY', '2026-01-01T00:00:02.000Z')")
                .bind(format!("more{i}"))
                .execute(store.pool())
                .await
                .unwrap();
        }
        let second = ids(store.claim_due(now, until, 8).await.unwrap());
        assert_eq!(
            (of(&second, "more"), of(&second, "new")),
            (6, 2),
            "{second:?}"
        );
        // Without a backlog of seen rows, new rows take the whole claim.
        exec(
            &store,
            "UPDATE issuances SET watch = 'settled' WHERE status = 'READY'",
        )
        .await;
        assert_eq!(store.claim_due(now, until, 8).await.unwrap().len(), 8);
    }

    #[tokio::test]
    async fn rows_scheduled_beyond_any_legitimate_wait_are_pulled_back() {
        let (store, _dir) = temp_store().await;
        insert_due(
            &store,
            &[
                ("far", "2026-02-01T00:00:00.000Z"),
                ("legit", "2026-01-01T00:30:00.000Z"),
            ],
        )
        .await;
        exec(&store, "INSERT INTO issuances (id, watch, next_poll_at) VALUES ('done', 'settled', '2027-01-01T00:00:00.000Z')").await;
        let now = t("2026-01-01T00:00:00.000Z");
        let latest = now + chrono::Duration::hours(1);
        let pulled = store
            .pull_back_beyond(now, latest, std::time::Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(pulled, 1);
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, next_poll_at FROM issuances ORDER BY id")
                .fetch_all(store.pool())
                .await
                .unwrap();
        let at = |id: &str| t(&rows.iter().find(|r| r.0 == id).unwrap().1);
        assert!(at("far") >= now && at("far") < now + chrono::Duration::seconds(10));
        assert_eq!(at("legit"), t("2026-01-01T00:30:00.000Z"));
        assert_eq!(at("done"), t("2027-01-01T00:00:00.000Z"));
    }
}
