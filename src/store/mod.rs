//! The store: everything issuance-watcher knows, behind one interface that the
//! watcher, the delivery workers, the charge sender and the CLI use. Two
//! engines implement it, each in its own module with its own SQL and its own
//! migrations: `sqlite` (one file on one host, the default) and, selected
//! by `database.url`, PostgreSQL. Nothing outside this module names an engine;
//! [`Store`] picks the one the settings choose and hands every call to it.
//!
//! Invariants both engines keep (the contract suite in `tests/it/store_contract`
//! checks them on each):
//! - Leases fence. Each `Store` has an owner id (random, one per open); a claim
//!   records it and bumps the row's fence, and a result is written only by the
//!   statement that also checks the row still has that owner and fence. So a
//!   result polled under a lease that has since ended (expired and re-claimed,
//!   handed back, taken over, or revoked by another program's edit of `status`
//!   or `watch`) is dropped, never recorded.
//! - Exactly once: a transition is written in the same transaction as the
//!   status it moves to, and only over the status it was observed from.
//! - The outbox is exact: an event exists if and only if its fact does (the
//!   schema's triggers write events in the fact's transaction).
//! - Money: a charge request is `sending` before its POST leaves and is never
//!   sent twice; a dead sender's requests become `unknown`. The top-up rule's
//!   requests are inserted only by a statement that checks its guards as it
//!   writes (`top_up.rs`).
//! - A webhook sink is sent by the one daemon that holds it (`holders.rs`),
//!   and its worker's writes are fenced like a lease's results.
//! - A running daemon's liveness is something the engine ends when the
//!   process dies (an advisory lock); a daemon that finds another owner dead
//!   makes its claims due at once.
//!
//! Database errors are translated here, once, into [`StoreError`].

mod budget;
mod charges;
mod claim;
mod dashboard;
mod delivery_log;
mod events;
mod holders;
mod owners;
mod postgres;
mod query;
mod record;
mod schema;
mod sinks;
mod sqlite;
mod status;
mod top_up;
mod wake;
mod watch;

use crate::settings::DatabaseSettings;

pub use budget::{
    BudgetRow, Grant, MAX_AHEAD, Micros, interval_of, pause as budget_pause, take as budget_take,
};
pub use charges::{
    ChargeRequest, ChargeRequestRow, ChargeResult, Finished, ID_REUSED, OpenCharge, Resolution,
    adoption_refused, resolution_refused,
};
pub use claim::{Claimed, Lease};
pub use dashboard::{BalancePoint, DeliveryRow, IssuanceFilter};
pub use delivery_log::{EventRange, LoggedAttempt, Pruned};
pub use events::{
    AttemptRow, DueDelivery, EventRow, FailedDelivery, NamedSinkRow, SinkRow, SinkVerdict,
};
pub use holders::{SinkHold, SinkHolder};
pub use owners::Ownership;
pub use owners::TakenOver;
pub use query::{FlagRow, IssuanceRow, StatusCount, TransitionRow};
pub use record::{FlagRaised, PollRecord, RecordKind, Recorded, TransitionRecorded};
pub use schema::SchemaState;
pub use sinks::{Backlog, SinkActivity, SinkBacklog};
pub use status::{Daemons, ErrorCount, LiveDaemon, StatusFacts, UnknownCharge, UnknownCharges};
pub use top_up::{TopUpLimits, TopUpState};
pub use wake::{Topic, WakeUp};
pub use watch::Watch;

/// What a command may do to the database file. Only `run` and `migrate` create
/// or upgrade one: a mistyped path must not leave an empty database behind, and
/// a schema upgrade under an older daemon still running on the file is a
/// decision for the operator (`migrate`), not a side effect of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Creates the file and its directory if missing, applies pending migrations.
    Migrate,
    /// Writes rows (`add`, `charge`, `cancel`, `events redeliver`): the file
    /// must exist with exactly this binary's schema.
    Write,
    /// Only reads: the same, and opened read-only (`mode=ro`), so that nothing
    /// is ever written and a database in a directory the user cannot write is
    /// still readable.
    Read,
    /// Only reads, and keeps reading what others write (`events --follow`):
    /// as [`Access::Read`], but never as an immutable file, which would
    /// never show a change.
    ReadLive,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // Causes are part of the message (logs print errors with `%`), and not
    // exposed as `source()`, so an error chain never prints them twice.
    #[error("cannot create the database directory {path}: {cause}")]
    CreateDir { path: String, cause: std::io::Error },
    #[error("cannot open the database {path}: {cause}")]
    Open { path: String, cause: sqlx::Error },
    #[error("cannot migrate the database: {0}")]
    Migrate(String),
    /// A command that does not create databases found none: most often a
    /// wrong `--config` or `database.path`, which must not pass for an empty watcher.
    #[error(
        "no database at {path}: is --config right? (`issuance-watcher migrate` creates a new one)"
    )]
    Missing { path: String },
    #[error(
        "the database at {path} has schema {has}, this binary needs {needs}: run `issuance-watcher migrate`"
    )]
    SchemaBehind { path: String, has: i64, needs: i64 },
    #[error(
        "the database at {path} has schema {has}, newer than this binary's {knows} (migrations it does not know: {unknown}): a newer issuance-watcher upgraded it; use that version"
    )]
    SchemaAhead {
        path: String,
        has: i64,
        knows: i64,
        unknown: String,
    },
    /// SQLite cannot read a WAL database read-only without its `-shm` file,
    /// which only a user who may write the directory can create.
    #[error(
        "cannot read the database {path} read-only: {cause}; SQLite needs {shm} to read a WAL database: run this as a user who may write {dir} (a member of the database's group, as the daemon's user is), or while the daemon runs"
    )]
    ReadOnly {
        path: String,
        shm: String,
        dir: String,
        cause: sqlx::Error,
    },
    #[error("database error while {context}: {cause}")]
    Query {
        context: &'static str,
        cause: sqlx::Error,
    },
    /// The file at `database.path` is no longer the one opened: writing on would
    /// land in a deleted or detached file and be lost.
    #[error(
        "the database file {path} was {what} while the daemon was running; exiting so that a restart opens the file now at that path"
    )]
    FileChanged { path: String, what: &'static str },
    /// A write of a sink's worker whose hold has ended: another daemon took
    /// the sink (this one was frozen or cut off too long). Nothing was written.
    #[error("sink {sink} is held by another daemon now: this daemon's write for it was dropped")]
    NotHeld { sink: String },
}

pub(crate) trait Context<T> {
    fn context(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn context(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|cause| StoreError::Query { context, cause })
    }
}

/// What [`Store::migrate`] did: the schema (newest migration's version, 0 for
/// none) before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub from: i64,
    pub to: i64,
}

/// A handle on the database, whichever engine holds it; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    engine: Engine,
}

#[derive(Debug, Clone)]
enum Engine {
    Sqlite(sqlite::SqliteStore),
    /// Boxed: a pool and its connect options are larger than SQLite's handle.
    Postgres(Box<postgres::PgStore>),
}

/// Hands a call to the engine behind a [`Store`]: `engine!(self, db => db.m(x).await)`.
/// Every engine has a method of the same name and signature for each of the
/// store's, so the facade is one line per method.
macro_rules! engine {
    ($store:expr, $db:ident => $call:expr) => {
        match &$store.engine {
            $crate::store::Engine::Sqlite($db) => $call,
            $crate::store::Engine::Postgres($db) => $call,
        }
    };
}
pub(crate) use engine;

impl Store {
    /// Opens the database for `access` (see [`Access`]): what every command does
    /// first. Refuses a missing database unless `access` is [`Access::Migrate`], and
    /// a schema other than this binary's (saying what to do) unless it migrates.
    pub async fn open_for(settings: &DatabaseSettings, access: Access) -> Result<Self, StoreError> {
        let engine = match settings.postgres() {
            Some(target) => Engine::Postgres(Box::new(
                postgres::PgStore::open_for(
                    target.connect_options(),
                    target.shown(),
                    access,
                    settings.busy_timeout,
                )
                .await?,
            )),
            None => Engine::Sqlite(sqlite::SqliteStore::open_for(settings, access).await?),
        };
        Ok(Self { engine })
    }

    /// Whether the database behind `settings` exists already (before
    /// `migrate`, which creates a SQLite file but never a server's database).
    pub fn exists(settings: &DatabaseSettings) -> bool {
        settings.postgres().is_some() || settings.path.exists()
    }

    /// Opens the PostgreSQL database at `url` (a `postgres://` URL, which
    /// may carry its password: for tests and tools; the daemon and the CLI go
    /// through [`Store::open_for`] and the settings).
    pub async fn open_postgres(url: &str, access: Access) -> Result<Self, StoreError> {
        let settings = DatabaseSettings::postgres_at(url).map_err(|e| StoreError::Open {
            path: "database.url".to_owned(),
            cause: sqlx::Error::Configuration(e.to_string().into()),
        })?;
        Self::open_for(&settings, access).await
    }

    /// Opens a SQLite database (creating the file if missing) without
    /// migrating it: for tests and tools that make one.
    pub async fn open(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let engine = Engine::Sqlite(sqlite::SqliteStore::open(settings).await?);
        Ok(Self { engine })
    }

    /// Opens the database for `migrate` to report on: a SQLite file is
    /// created if missing, and no schema is required (nothing is migrated
    /// until [`Store::migrate`]).
    pub async fn open_to_migrate(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let engine = match settings.postgres() {
            Some(target) => Engine::Postgres(Box::new(
                postgres::PgStore::connect(
                    target.connect_options(),
                    target.shown(),
                    false,
                    settings.busy_timeout,
                )
                .await?,
            )),
            None => Engine::Sqlite(sqlite::SqliteStore::open(settings).await?),
        };
        Ok(Self { engine })
    }

    /// Opens and migrates: what `run` and `migrate` do first ([`Access::Migrate`]).
    pub async fn open_migrated(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        Self::open_for(settings, Access::Migrate).await
    }

    /// Applies the embedded migrations that have not run yet; refuses a
    /// database a newer binary upgraded. Returns the schema before and after.
    pub async fn migrate(&self) -> Result<Migrated, StoreError> {
        engine!(self, db => db.migrate().await)
    }

    /// The SQLite pool, for the demo, the tools and tests written in SQLite's
    /// dialect. Panics on another engine: nothing in the daemon calls it.
    pub fn pool(&self) -> &sqlx::SqlitePool {
        match &self.engine {
            Engine::Sqlite(db) => db.pool(),
            Engine::Postgres(_) => panic!("Store::pool is SQLite's; this store is PostgreSQL"),
        }
    }

    /// The PostgreSQL pool (`None` on SQLite), for tests written in its dialect.
    pub fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.engine {
            Engine::Postgres(db) => Some(db.pool()),
            Engine::Sqlite(_) => None,
        }
    }

    /// This handle's id as the owner of the leases it claims.
    pub fn owner(&self) -> &str {
        engine!(self, db => db.owner())
    }

    /// Where the database is, as shown to people (a file's path, a URL without
    /// its password).
    pub fn shown(&self) -> String {
        engine!(self, db => db.shown())
    }

    /// The SQLite file's path (`None` on another engine).
    pub fn path(&self) -> Option<&std::path::Path> {
        match &self.engine {
            Engine::Sqlite(db) => Some(db.path()),
            Engine::Postgres(_) => None,
        }
    }

    /// Fails when the database the daemon opened is no longer the one its
    /// settings name (a SQLite file deleted or replaced): writing on would be lost.
    pub fn check_file(&self) -> Result<(), StoreError> {
        engine!(self, db => db.check_file())
    }

    /// Engine housekeeping when idle (SQLite folds its WAL back into the file).
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        engine!(self, db => db.checkpoint().await)
    }

    pub async fn close(&self) {
        engine!(self, db => db.close().await)
    }

    /// Wake-ups on `topic`: resolves when another program (or daemon) has
    /// inserted rows of that kind, and once after every reconnect of the
    /// listener (a catch-up: notifications sent meanwhile are lost). On
    /// PostgreSQL only; on SQLite it never fires and the loops re-check every
    /// `poll.idle_recheck`. See `store/wake.rs`.
    pub fn wake_up(&self, topic: Topic) -> WakeUp {
        match &self.engine {
            Engine::Sqlite(_) => WakeUp::never(),
            Engine::Postgres(db) => db.wake_up(topic),
        }
    }

    /// Size of SQLite's write-ahead log (`None` where there is none).
    pub fn wal_bytes(&self) -> Option<u64> {
        engine!(self, db => db.wal_bytes())
    }
}

#[cfg(test)]
pub(crate) use sqlite::testing;
