//! Reads and small writes for people and scripts (the CLI), and counts for status lines.

use serde::Serialize;

use super::{Context, Store, StoreError};

/// An id column read as bytes: another program may have stored text that is not
/// UTF-8, which must not make a listing fail. Shown lossily (U+FFFD).
#[derive(sqlx::Type)]
#[sqlx(transparent)]
struct RawId(Vec<u8>);

impl From<RawId> for String {
    fn from(raw: RawId) -> Self {
        String::from_utf8_lossy(&raw.0).into_owned()
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct IssuanceRow {
    /// Selected as `CAST(id AS BLOB)`.
    #[sqlx(try_from = "RawId")]
    pub id: String,
    pub status: Option<String>,
    pub amount: Option<i64>,
    pub created_at: Option<String>,
    pub modified_at: Option<String>,
    pub vbank_due_at: Option<String>,
    pub vbank_account_number: Option<String>,
    pub bank_name: Option<String>,
    pub vbank_holder_name: Option<String>,
    pub watch: String,
    pub next_poll_at: String,
    pub attempts: i64,
    pub polls: i64,
    pub last_polled_at: Option<String>,
    pub last_seen_at: Option<String>,
    pub last_error: Option<String>,
    pub added_at: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TransitionRow {
    pub seq: i64,
    pub issuance_id: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub observed_at: String,
    pub modified_at: Option<String>,
    pub anomaly: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct FlagRow {
    /// Selected as `CAST(issuance_id AS BLOB)`.
    #[sqlx(try_from = "RawId")]
    pub issuance_id: String,
    pub kind: String,
    pub raised_at: String,
    pub cleared_at: Option<String>,
    pub vbank_due_at: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StatusCount {
    pub watch: String,
    pub status: Option<String>,
    pub count: i64,
}

impl Store {
    /// Starts watching `ids` (already watched ones are left as they are). Returns how many were new.
    pub async fn add_ids(&self, ids: &[String]) -> Result<u64, StoreError> {
        self.write("committing added ids", async |tx| {
            let mut added = 0;
            for id in ids {
                let result = sqlx::query(
                    "INSERT INTO issuances (id) VALUES (?1) ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .execute(&mut **tx)
                .await
                .context("adding an id")?;
                added += result.rows_affected();
            }
            Ok(added)
        })
        .await
    }

    pub async fn list(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<IssuanceRow>, StoreError> {
        sqlx::query_as(
            "SELECT CAST(id AS BLOB) AS id, status, amount, created_at, modified_at,
                vbank_due_at, vbank_account_number, bank_name, vbank_holder_name, watch, next_poll_at,
                attempts, polls, last_polled_at, last_seen_at, last_error, added_at
             FROM issuances WHERE ?1 IS NULL OR status = ?1 OR (?1 = 'UNSEEN' AND status IS NULL)
             ORDER BY added_at, id LIMIT ?2",
        )
        .bind(status)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("listing issuances")
    }

    pub async fn issuance(&self, id: &str) -> Result<Option<IssuanceRow>, StoreError> {
        sqlx::query_as(
            "SELECT CAST(id AS BLOB) AS id, status, amount, created_at, modified_at,
                vbank_due_at, vbank_account_number, bank_name, vbank_holder_name, watch, next_poll_at,
                attempts, polls, last_polled_at, last_seen_at, last_error, added_at
             FROM issuances WHERE id = ?1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context("reading an issuance")
    }

    pub async fn transitions_of(&self, id: &str) -> Result<Vec<TransitionRow>, StoreError> {
        sqlx::query_as(
            "SELECT seq, issuance_id, from_status, to_status, observed_at, modified_at, anomaly
             FROM transitions WHERE issuance_id = ?1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .context("reading transitions")
    }

    /// Flags of one issuance, or (with `None`) every flag still open.
    pub async fn flags(&self, id: Option<&str>) -> Result<Vec<FlagRow>, StoreError> {
        sqlx::query_as(
            "SELECT CAST(f.issuance_id AS BLOB) AS issuance_id, f.kind, f.raised_at, f.cleared_at, i.vbank_due_at, i.status
             FROM flags f JOIN issuances i ON i.id = f.issuance_id
             WHERE (?1 IS NULL AND f.cleared_at IS NULL) OR f.issuance_id = ?1
             ORDER BY i.vbank_due_at, f.issuance_id, f.kind",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .context("reading flags")
    }

    /// Issuances by watch state and status.
    pub async fn counts(&self) -> Result<Vec<StatusCount>, StoreError> {
        sqlx::query_as("SELECT watch, status, count(*) AS count FROM issuances GROUP BY watch, status ORDER BY watch, status")
            .fetch_all(&self.pool)
            .await
            .context("counting issuances")
    }

    /// Active issuances by last seen status (None: not seen yet). Index-only:
    /// its cost does not grow with the number of settled rows.
    pub async fn active_counts(&self) -> Result<Vec<(Option<String>, i64)>, StoreError> {
        sqlx::query_as("SELECT status, count(*) FROM issuances WHERE watch = 'active' GROUP BY status ORDER BY status")
            .fetch_all(&self.pool)
            .await
            .context("counting active issuances")
    }

    /// Open DUE_SOON flags (for status lines and metrics).
    pub async fn open_due_soon(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT count(*) FROM flags WHERE cleared_at IS NULL AND kind = 'DUE_SOON'",
        )
        .fetch_one(&self.pool)
        .await
        .context("counting open flags")
    }
}
