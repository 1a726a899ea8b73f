//! PostgreSQL: claim (see `store/claim.rs` for what each call must do).
//!
//! Claimers run concurrently here (several daemons, no database-wide write
//! lock): each claim locks the rows it takes with `FOR UPDATE SKIP LOCKED`
//! inside a CTE, so two claims never take the same row and neither waits for
//! the other; the `UPDATE` then gives each row its owner and a new fence.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::domain::timefmt::from_db;
use crate::store::Context as _;
use crate::store::{Claimed, Lease, StoreError};

/// A row of [`sql::CLAIM_DUE`]'s `RETURNING`: id as bytes, status, vbank
/// due (UTC text), attempts, first 404 (UTC text), fence.
type ClaimRow = (
    Vec<u8>,
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
    i64,
);

/// A claim from its row.
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

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The claim statement for the daemon `owner`, on the caller's connection or
/// transaction (`record_and_claim` claims in its batch's transaction).
pub(super) async fn claim_in(
    conn: &mut PgConnection,
    owner: &str,
    lease: &Lease,
) -> Result<Vec<Claimed>, StoreError> {
    let rows: Vec<ClaimRow> = sqlx::query_as(sql::CLAIM_DUE)
        .bind(lease.until)
        .bind(lease.now)
        .bind(as_i64(lease.limit))
        .bind(as_i64(lease.reserved_for_new()))
        .bind(owner)
        .fetch_all(conn)
        .await
        .context("claiming due issuances")?;
    Ok(rows.into_iter().map(claimed).collect())
}

/// Leases the one issuance `id` to `owner` (whatever its watch), due at
/// `now`, ending any other lease on it; `None` if there is no such row.
pub(super) async fn claim_one_in(
    conn: &mut PgConnection,
    owner: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Claimed>, StoreError> {
    let row: Option<ClaimRow> = sqlx::query_as(sql::CLAIM_ONE)
        .bind(id)
        .bind(now)
        .bind(owner)
        .fetch_optional(conn)
        .await
        .context("leasing one issuance")?;
    Ok(row.map(claimed))
}

impl super::PgStore {
    pub async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("acquiring a connection")?;
        let lease = Lease {
            now,
            until: lease_until,
            limit,
        };
        claim_in(&mut conn, &self.owner, &lease).await
    }

    pub async fn release(
        &self,
        leases: &[(Claimed, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        // PostgreSQL text is always UTF-8, so every claimed id is; the filter
        // only keeps the facade's promise about ids that are not.
        let (mut ids, mut untils, mut fences) = (Vec::new(), Vec::new(), Vec::new());
        for (claimed, until) in leases {
            if let Ok(id) = std::str::from_utf8(&claimed.raw_id) {
                ids.push(id);
                untils.push(*until);
                fences.push(claimed.fence);
            }
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let released = sqlx::query(sql::RELEASE_LEASES)
            .bind(ids)
            .bind(untils)
            .bind(fences)
            .bind(now)
            .bind(&*self.owner)
            .execute(&self.pool)
            .await
            .context("releasing leases")?;
        Ok(released.rows_affected())
    }

    pub async fn take_over_claims_of(
        &self,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let taken = sqlx::query(sql::TAKE_OVER)
            .bind(owner)
            .bind(now)
            .execute(&self.pool)
            .await
            .context("taking over a dead daemon's claims")?;
        Ok(taken.rows_affected())
    }

    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.due_edge(sql::NEXT_DUE).await
    }

    pub async fn last_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.due_edge(sql::LAST_DUE).await
    }

    /// One end of the due range, as UTC text (so both engines hand up the
    /// same millisecond instants).
    async fn due_edge(&self, sql: &'static str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let edge: Option<String> = sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .context("finding when active issuances fall due")?;
        Ok(edge.as_deref().and_then(from_db))
    }

    pub async fn pull_back_beyond(
        &self,
        now: DateTime<Utc>,
        latest: DateTime<Utc>,
        spread: std::time::Duration,
    ) -> Result<u64, StoreError> {
        let spread_ms = i64::try_from(spread.as_millis()).unwrap_or(i64::MAX).max(1);
        let pulled = sqlx::query(sql::PULL_BACK_BEYOND)
            .bind(now)
            .bind(spread_ms)
            .bind(latest)
            .execute(&self.pool)
            .await
            .context("rescheduling issuances")?;
        Ok(pulled.rows_affected())
    }
}

/// The statements of this file.
mod sql {
    /// Leases due active issuances: $1 lease expiry, $2 now, $3 how many at
    /// most, $4 how many of them are kept for rows never seen yet (when that
    /// many are due), $5 the claiming daemon's id. Each claimed row records
    /// its owner and gets a new fence. Returns the claimed rows (id as bytes,
    /// status, vbank due, attempts, first 404, fence).
    ///
    /// Seen rows (`issuances_due`) and never-seen rows (`issuances_new`) are
    /// taken each in due order: seen rows take what the reserve for new rows
    /// leaves, new rows fill the rest (as on SQLite, which says why). Every
    /// CTE locks what it reads with `FOR UPDATE SKIP LOCKED`, so rows another
    /// claim holds are neither taken nor counted; `reserved`'s rows are the
    /// first of `fresh`'s (the same scan, and a transaction does not skip its
    /// own locks). A locking CTE runs once, never folded into the `UPDATE`
    /// (a locking subquery under `IN (...)` may run again and lock more than
    /// the limit). The `UPDATE` finds the picked rows by primary key through
    /// one array: joined to the CTEs instead, whose `LIMIT` the planner
    /// cannot estimate, it chose a hash join over the whole table (58 ms
    /// against 1.3 ms a claim of 64 at 200,000 rows).
    pub(super) const CLAIM_DUE: &str = "WITH reserved AS (
             SELECT id FROM issuances
             WHERE watch = 'active' AND status IS NULL AND next_poll_at <= $2
             ORDER BY next_poll_at LIMIT $4 FOR UPDATE SKIP LOCKED),
         seen AS (
             SELECT id FROM issuances
             WHERE watch = 'active' AND status IS NOT NULL AND next_poll_at <= $2
             ORDER BY next_poll_at LIMIT $3 - (SELECT count(*) FROM reserved)
             FOR UPDATE SKIP LOCKED),
         fresh AS (
             SELECT id FROM issuances
             WHERE watch = 'active' AND status IS NULL AND next_poll_at <= $2
             ORDER BY next_poll_at LIMIT $3 - (SELECT count(*) FROM seen)
             FOR UPDATE SKIP LOCKED)
     UPDATE issuances SET next_poll_at = $1, lease_owner = $5, lease_fence = lease_fence + 1
     WHERE id = ANY (ARRAY(SELECT id FROM seen UNION ALL SELECT id FROM fresh))
     RETURNING convert_to(id, 'UTF8'), status, utc_text(vbank_due_at), attempts,
               utc_text(not_found_since), lease_fence";

    /// Leases issuance $1 (any watch) to daemon $3 with a new fence, due at
    /// $2: whatever poll of it is in flight now writes nothing (its fence is
    /// gone). Returns the row as a claim (see [`CLAIM_DUE`]).
    pub(super) const CLAIM_ONE: &str =
        "UPDATE issuances SET next_poll_at = $2, lease_owner = $3, lease_fence = lease_fence + 1
         WHERE id = $1
         RETURNING convert_to(id, 'UTF8'), status, utc_text(vbank_due_at), attempts,
                   utc_text(not_found_since), lease_fence";

    /// Makes leased issuances due now: $1 ids, $2 the lease expiry each was
    /// given, $3 the fence each was given (arrays of one length; a row whose
    /// lease someone has changed or taken is left alone), $4 now, $5 the
    /// daemon's id.
    pub(super) const RELEASE_LEASES: &str =
        "UPDATE issuances SET next_poll_at = $4, lease_owner = NULL
         FROM unnest($1::text[], $2::timestamptz[], $3::bigint[]) AS l(id, until, fence)
         WHERE issuances.id = l.id AND issuances.next_poll_at = l.until
           AND issuances.lease_owner = $5 AND issuances.lease_fence = l.fence";

    /// Makes the claims of a dead daemon $1 due at $2 (or earlier, if they
    /// were) and ends its leases. Reads only leased rows (`issuances_leased`).
    pub(super) const TAKE_OVER: &str =
        "UPDATE issuances SET next_poll_at = LEAST(next_poll_at, $2), lease_owner = NULL
         WHERE lease_owner = $1";

    /// When the next active issuance falls due, as UTC text: the lesser of
    /// the two due indexes' first entries (`LEAST` ignores an empty one).
    pub(super) const NEXT_DUE: &str = "SELECT utc_text(LEAST(
         (SELECT min(next_poll_at) FROM issuances WHERE watch = 'active' AND status IS NOT NULL),
         (SELECT min(next_poll_at) FROM issuances WHERE watch = 'active' AND status IS NULL)))";

    /// When the last active issuance falls due, as UTC text: the greater of
    /// the two due indexes' last entries.
    pub(super) const LAST_DUE: &str = "SELECT utc_text(GREATEST(
         (SELECT max(next_poll_at) FROM issuances WHERE watch = 'active' AND status IS NOT NULL),
         (SELECT max(next_poll_at) FROM issuances WHERE watch = 'active' AND status IS NULL)))";

    /// Moves active issuances due after $3 to a uniformly random time in
    /// `$1 .. $1 + $2` ($2 in milliseconds). Run only after the wall clock
    /// jumped backwards (a scan of the active rows, rare and needed then).
    pub(super) const PULL_BACK_BEYOND: &str = "UPDATE issuances
         SET next_poll_at = $1::timestamptz + floor(random() * $2::bigint) * interval '1 millisecond'
         WHERE watch = 'active' AND next_poll_at > $3";
}
