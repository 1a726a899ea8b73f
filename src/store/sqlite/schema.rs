//! The SQLite database's schema: which migrations it has (see `store/schema.rs`).

use sqlx::SqlitePool;

use super::{MIGRATOR, sql};
use crate::store::schema::{SchemaState, compare, embedded};
use crate::store::{Context as _, StoreError};

/// The migrations applied to the database behind `pool` (none when no
/// migrator has touched it). Only reads.
pub(super) async fn applied(pool: &SqlitePool) -> Result<Vec<i64>, StoreError> {
    let tables: i64 = sqlx::query_scalar(sql::HAS_MIGRATIONS_TABLE)
        .fetch_one(pool)
        .await
        .context("reading the database's schema version")?;
    if tables == 0 {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(sql::APPLIED_MIGRATIONS)
        .fetch_all(pool)
        .await
        .context("reading the database's schema version")
}

/// The database's state against this binary.
pub(super) async fn state(pool: &SqlitePool) -> Result<SchemaState, StoreError> {
    Ok(compare(&applied(pool).await?, &embedded(&MIGRATOR)))
}
