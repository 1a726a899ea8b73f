//! Batches of rows travel to SQLite as one JSON array parameter, unpacked by
//! `jsonb_each` in the statement (as JSONB, so that each field lookup walks
//! the binary row instead of parsing text again): one round trip for a whole
//! batch (claims released early, event and sink lists; poll results are
//! written one record at a time, see `record/mod.rs`).

use super::StoreError;

/// Rows as one JSON array parameter. Never silently empty: a failure here
/// aborts the batch (and its transaction) rather than dropping transitions.
pub(super) fn encode_rows<T: serde::Serialize>(rows: &T) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Query {
        context: "encoding a batch of rows",
        cause: sqlx::Error::Encode(Box::new(e)),
    })
}
