//! The PostgreSQL engine, selected by `database.url`: a server the daemon
//! connects to, its migrations (`migrations/postgres/`, the same names as
//! SQLite's) and its statements, in each file's `sql` constants.
//!
//! Where it differs from SQLite, and why:
//! - Writers run concurrently (no `BEGIN IMMEDIATE`): a claim locks its rows
//!   with `FOR UPDATE SKIP LOCKED` inside a CTE (in a subquery under
//!   `IN (...)` the planner may lock more rows than the limit), and every
//!   write of a result is fenced by owner and fence exactly as on SQLite.
//! - Instants are `timestamptz`; the store's rows carry them as UTC text in
//!   the SQLite layout (`utc_text(col)` on the way out, `$n::timestamptz`
//!   on the way in), so everything above the store sees one format.
//! - Events are numbered in commit order (a transaction-level advisory lock
//!   taken by the trigger that numbers them), so a reader of `seq > last`
//!   never passes over an event that commits later.
//! - A daemon's liveness is a session-level advisory lock held on a
//!   connection of its own (`owners.rs`): the server ends it when the
//!   connection ends, however the daemon dies.
//! - Rows other programs insert wake the daemon at once: the schema's
//!   triggers `NOTIFY`, and a listener on a connection of its own wakes the
//!   loops (`listen.rs`); SQLite's loops re-check every `poll.idle_recheck`.

mod budget;
mod charges;
mod claim;
mod dashboard;
mod events;
mod holders;
mod listen;
mod owners;
mod query;
mod record;
mod sinks;
mod status;
mod top_up;

use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use tokio_util::sync::CancellationToken;

use super::schema::{SchemaState, ahead_error, compare, embedded, require_current};
use super::wake::Hub;
use super::{Access, Context, Migrated, StoreError};

pub use owners::Ownership;

/// The PostgreSQL schema (`migrations/postgres/`, the same names as
/// `migrations/sqlite/`; tests/it/migrations.rs keeps them from drifting).
pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections one daemon keeps: the watcher's claims and records, the
/// delivery workers, the charge sender and `/healthz` share them.
const MAX_CONNECTIONS: u32 = 8;

/// The PostgreSQL engine: a pool of connections to one database; cheap to clone.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// How to connect, for the ownership's connection of its own.
    options: PgConnectOptions,
    /// The database as shown to people: its URL without a password.
    shown: Arc<str>,
    /// This handle's id as a lease owner (random, one per open).
    owner: Arc<str>,
    /// The wake-ups' listener, once started (`listen.rs`).
    wake: Arc<std::sync::OnceLock<Arc<Hub>>>,
    /// Ends the listener, at [`PgStore::close`].
    stop_listening: CancellationToken,
}

impl PgStore {
    /// Connects for `access` (see [`Access`]). The database must exist (this
    /// never creates one: that is the operator's `createdb`); only
    /// [`Access::Migrate`] changes its schema, every other access requires
    /// exactly this binary's. [`Access::Read`] and [`Access::ReadLive`]
    /// connect with read-only transactions.
    pub async fn open_for(
        options: PgConnectOptions,
        shown: String,
        access: Access,
        acquire_timeout: std::time::Duration,
    ) -> Result<Self, StoreError> {
        let read_only = matches!(access, Access::Read | Access::ReadLive);
        let store = Self::connect(options, shown, read_only, acquire_timeout).await?;
        match access {
            Access::Migrate => {
                store.migrate().await?;
            }
            _ => require_current(store.schema_state().await?, &store.shown)?,
        }
        Ok(store)
    }

    /// Connects without looking at the schema (`read_only`: every transaction
    /// read-only); waits at most `acquire_timeout` for a connection.
    pub async fn connect(
        options: PgConnectOptions,
        shown: String,
        read_only: bool,
        acquire_timeout: std::time::Duration,
    ) -> Result<Self, StoreError> {
        let options = if read_only {
            options.options([("default_transaction_read_only", "on")])
        } else {
            options
        };
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .min_connections(1)
            .acquire_timeout(acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(|cause| StoreError::Open {
                path: shown.clone(),
                cause,
            })?;
        Ok(Self {
            pool,
            options,
            shown: shown.into(),
            owner: uuid::Uuid::new_v4().simple().to_string().into(),
            wake: Arc::default(),
            stop_listening: CancellationToken::new(),
        })
    }

    /// The migrations applied to this database (none before the first).
    async fn applied(&self) -> Result<Vec<i64>, StoreError> {
        let exists: bool = sqlx::query_scalar(sql::HAS_MIGRATIONS_TABLE)
            .fetch_one(&self.pool)
            .await
            .context("reading the database's schema version")?;
        if !exists {
            return Ok(Vec::new());
        }
        sqlx::query_scalar(sql::APPLIED_MIGRATIONS)
            .fetch_all(&self.pool)
            .await
            .context("reading the database's schema version")
    }

    async fn schema_state(&self) -> Result<SchemaState, StoreError> {
        Ok(compare(&self.applied().await?, &embedded(&MIGRATOR)))
    }

    /// Applies the migrations that have not run yet. sqlx takes an advisory
    /// lock for the run, so daemons migrating one database at once take turns.
    pub async fn migrate(&self) -> Result<Migrated, StoreError> {
        let applied = self.applied().await?;
        let known = embedded(&MIGRATOR);
        let state = compare(&applied, &known);
        if let SchemaState::Ahead { .. } = state {
            return Err(ahead_error(state, &self.shown));
        }
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(Migrated {
            from: applied.last().copied().unwrap_or(0),
            to: known.last().copied().unwrap_or(0),
        })
    }

    /// This handle's id as the owner of the leases it claims.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The database's URL, without a password.
    pub fn shown(&self) -> String {
        self.shown.to_string()
    }

    /// A server's database cannot be swapped under an open connection the way
    /// a file can: nothing to check.
    pub fn check_file(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The server checkpoints by itself.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        Ok(())
    }

    pub async fn close(&self) {
        self.stop_listening.cancel();
        self.pool.close().await;
    }

    /// There is no write-ahead log beside a server's database to watch.
    pub fn wal_bytes(&self) -> Option<u64> {
        None
    }

    /// The pool, for this engine's files and the tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `work` in one transaction and commits it; on any failure the
    /// transaction is rolled back (dropped) and the error returned.
    async fn write<T>(
        &self,
        commit_context: &'static str,
        work: impl AsyncFnOnce(&mut Transaction<'_, Postgres>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .context("starting a write transaction")?;
        let value = work(&mut tx).await?;
        tx.commit().await.context(commit_context)?;
        Ok(value)
    }
}

/// The statements of this file.
mod sql {
    /// Whether sqlx's bookkeeping table exists.
    pub(super) const HAS_MIGRATIONS_TABLE: &str =
        "SELECT to_regclass('_sqlx_migrations') IS NOT NULL";

    /// The versions of the migrations applied, in order.
    pub(super) const APPLIED_MIGRATIONS: &str =
        "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
}
