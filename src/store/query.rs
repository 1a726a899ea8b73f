//! Reads and small writes for people and scripts (the CLI), and counts for status lines.

use super::{Store, StoreError, engine};
use serde::Serialize;

/// An id column read as bytes: another program may have stored text that is not
/// UTF-8, which must not make a listing fail. Shown lossily (U+FFFD). Each
/// engine selects ids as bytes for it (SQLite `CAST(id AS BLOB)`, PostgreSQL
/// `convert_to(id, 'UTF8')`).
#[derive(sqlx::Type)]
#[sqlx(transparent)]
pub(crate) struct RawId(Vec<u8>);

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
        engine!(self, db => db.add_ids(ids).await)
    }

    pub async fn list(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<IssuanceRow>, StoreError> {
        engine!(self, db => db.list(status, limit).await)
    }

    pub async fn issuance(&self, id: &str) -> Result<Option<IssuanceRow>, StoreError> {
        engine!(self, db => db.issuance(id).await)
    }

    pub async fn transitions_of(&self, id: &str) -> Result<Vec<TransitionRow>, StoreError> {
        engine!(self, db => db.transitions_of(id).await)
    }

    /// Flags of one issuance, or (with `None`) every flag still open.
    pub async fn flags(&self, id: Option<&str>) -> Result<Vec<FlagRow>, StoreError> {
        engine!(self, db => db.flags(id).await)
    }

    /// Issuances by watch state and status.
    pub async fn counts(&self) -> Result<Vec<StatusCount>, StoreError> {
        engine!(self, db => db.counts().await)
    }

    /// Active issuances by last seen status (None: not seen yet). Index-only:
    /// its cost does not grow with the number of settled rows.
    pub async fn active_counts(&self) -> Result<Vec<(Option<String>, i64)>, StoreError> {
        engine!(self, db => db.active_counts().await)
    }

    /// Open DUE_SOON flags (for status lines and metrics).
    pub async fn open_due_soon(&self) -> Result<i64, StoreError> {
        engine!(self, db => db.open_due_soon().await)
    }

    /// Open OVERDUE flags (for metrics and alerts).
    pub async fn open_overdue(&self) -> Result<i64, StoreError> {
        engine!(self, db => db.open_overdue().await)
    }
}
