//! PostgreSQL: query (see `store/query.rs` for what each call must do).

use crate::store::Context as _;
use crate::store::{FlagRow, IssuanceRow, StatusCount, StoreError, TransitionRow};

impl super::PgStore {
    pub async fn add_ids(&self, ids: &[String]) -> Result<u64, StoreError> {
        let added = sqlx::query(sql::ADD_IDS)
            .bind(ids)
            .execute(&self.pool)
            .await
            .context("adding ids")?;
        Ok(added.rows_affected())
    }

    pub async fn list(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<IssuanceRow>, StoreError> {
        sqlx::query_as(sql::LIST_ISSUANCES)
            .bind(status)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .context("listing issuances")
    }

    pub async fn issuance(&self, id: &str) -> Result<Option<IssuanceRow>, StoreError> {
        sqlx::query_as(sql::ISSUANCE)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context("reading an issuance")
    }

    pub async fn transitions_of(&self, id: &str) -> Result<Vec<TransitionRow>, StoreError> {
        sqlx::query_as(sql::TRANSITIONS_OF)
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .context("reading transitions")
    }

    /// Flags of one issuance, or (with `None`) every flag still open.
    pub async fn flags(&self, id: Option<&str>) -> Result<Vec<FlagRow>, StoreError> {
        sqlx::query_as(sql::FLAGS)
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .context("reading flags")
    }

    /// Issuances by watch state and status.
    pub async fn counts(&self) -> Result<Vec<StatusCount>, StoreError> {
        sqlx::query_as(sql::COUNTS)
            .fetch_all(&self.pool)
            .await
            .context("counting issuances")
    }

    /// Active issuances by last seen status (None: not seen yet), from the
    /// partial index on active rows.
    pub async fn active_counts(&self) -> Result<Vec<(Option<String>, i64)>, StoreError> {
        sqlx::query_as(sql::ACTIVE_COUNTS)
            .fetch_all(&self.pool)
            .await
            .context("counting active issuances")
    }

    /// Open DUE_SOON flags (for status lines and metrics).
    pub async fn open_due_soon(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar(sql::OPEN_DUE_SOON)
            .fetch_one(&self.pool)
            .await
            .context("counting open flags")
    }

    /// Open OVERDUE flags (for metrics and alerts).
    pub async fn open_overdue(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar(sql::OPEN_OVERDUE)
            .fetch_one(&self.pool)
            .await
            .context("counting open OVERDUE flags")
    }
}

/// The statements of this file. Orders are SQLite's: text compared byte by
/// byte (`COLLATE "C"`, not the database's locale) and NULLs first (SQLite's
/// ascending order; PostgreSQL's puts them last), so both engines list the
/// same rows in the same order.
mod sql {
    /// Starts watching ids $1 (an array), those not watched yet; one statement.
    pub(super) const ADD_IDS: &str =
        "INSERT INTO issuances (id) SELECT unnest($1::text[]) ON CONFLICT (id) DO NOTHING";

    /// The columns of an `IssuanceRow`: the id as bytes, instants as UTC text.
    macro_rules! issuance_columns {
        () => {
            "SELECT convert_to(id, 'UTF8') AS id, status, amount, utc_text(created_at) AS created_at,
                utc_text(modified_at) AS modified_at, utc_text(vbank_due_at) AS vbank_due_at,
                vbank_account_number, bank_name, vbank_holder_name, watch,
                utc_text(next_poll_at) AS next_poll_at, attempts, polls,
                utc_text(last_polled_at) AS last_polled_at, utc_text(last_seen_at) AS last_seen_at,
                last_error, utc_text(added_at) AS added_at
             FROM issuances"
        };
    }

    /// Issuance $1.
    pub(super) const ISSUANCE: &str = concat!(issuance_columns!(), " WHERE id = $1");

    /// Issuances with status $1 (NULL: all; `UNSEEN`: not seen yet), in the
    /// order they were added, $2 at most.
    pub(super) const LIST_ISSUANCES: &str = concat!(
        issuance_columns!(),
        " WHERE $1::text IS NULL OR status = $1 OR ($1 = 'UNSEEN' AND status IS NULL)
         ORDER BY added_at, id COLLATE \"C\" LIMIT $2"
    );

    /// The transitions of issuance $1, oldest first.
    pub(super) const TRANSITIONS_OF: &str = "SELECT seq, issuance_id, from_status, to_status,
            utc_text(observed_at) AS observed_at, utc_text(modified_at) AS modified_at, anomaly
         FROM transitions WHERE issuance_id = $1 ORDER BY seq";

    /// The flags of issuance $1, or ($1 NULL) every open flag, soonest due
    /// first (no due date first, as on SQLite).
    pub(super) const FLAGS: &str =
        "SELECT convert_to(f.issuance_id, 'UTF8') AS issuance_id, f.kind,
            utc_text(f.raised_at) AS raised_at, utc_text(f.cleared_at) AS cleared_at,
            utc_text(i.vbank_due_at) AS vbank_due_at, i.status
         FROM flags f JOIN issuances i ON i.id = f.issuance_id
         WHERE ($1::text IS NULL AND f.cleared_at IS NULL) OR f.issuance_id = $1
         ORDER BY i.vbank_due_at NULLS FIRST, f.issuance_id COLLATE \"C\", f.kind COLLATE \"C\"";

    /// Issuances by watch and status.
    pub(super) const COUNTS: &str = "SELECT watch, status, count(*) AS count FROM issuances
         GROUP BY watch, status
         ORDER BY watch COLLATE \"C\", status COLLATE \"C\" NULLS FIRST";

    /// Active issuances by status (the partial index `issuances_active_by_status`).
    pub(super) const ACTIVE_COUNTS: &str = "SELECT status, count(*) FROM issuances
         WHERE watch = 'active' GROUP BY status ORDER BY status COLLATE \"C\" NULLS FIRST";

    /// Issuances with an open DUE_SOON flag (of any rung).
    pub(super) const OPEN_DUE_SOON: &str = "SELECT count(DISTINCT issuance_id) FROM flags
         WHERE cleared_at IS NULL AND kind = 'DUE_SOON'";

    /// Issuances with an open OVERDUE flag.
    pub(super) const OPEN_OVERDUE: &str = "SELECT count(DISTINCT issuance_id) FROM flags
         WHERE cleared_at IS NULL AND kind = 'OVERDUE'";
}
