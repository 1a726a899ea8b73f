//! The SQLite engine: one database file beside the daemon (WAL, busy
//! timeout), its migrations (`migrations/sqlite/`) and its statements (every
//! one a constant in `sql.rs`).
//!
//! Other programs read and write the same file, so every writing transaction
//! starts with `BEGIN IMMEDIATE` (a deferred one that reads then writes fails with
//! "database is locked" under contention), and no transaction is held across an
//! HTTP call. A running daemon's liveness is an advisory lock on a file beside
//! the database (`owners.rs`).

mod budget;
mod charges;
mod claim;
mod dashboard;
mod events;
mod holders;
mod owners;
mod query;
mod record;
mod rows;
pub(super) mod schema;
mod sinks;
pub(super) mod sql;
mod status;
#[cfg(test)]
pub(crate) mod testing;
mod top_up;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, Sqlite, SqlitePool, Transaction};

use super::schema::{SchemaState, ahead_error, compare, embedded};
use super::{Access, Context, Migrated, StoreError};
use crate::settings::DatabaseSettings;

pub use owners::Ownership;

/// The writer's page cache, in KiB (negative: a size, not a page count):
/// enough for the hot rows and index pages of 100,000 active issuances.
const WRITER_CACHE: &str = "-16384";

/// Pages the WAL may hold before the writer folds it back into the database
/// (SQLite's default is 1,000). A busy watcher rewrites the same pages often;
/// a longer WAL lets one checkpoint copy each page once for many commits.
const WRITER_AUTOCHECKPOINT: &str = "8000";

/// The SQLite schema (`migrations/sqlite/`). `migrations/postgres/` holds the
/// same migrations, by name, for PostgreSQL (tests/it/migrations.rs keeps the
/// two folders from drifting apart).
pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite engine: a handle on one database file; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Readers, and writers outside the watcher's loop (CLI, tests).
    pool: SqlitePool,
    /// The one connection the watcher's claims and records go through. SQLite
    /// drops a connection's page cache whenever another connection has written
    /// since its last transaction, so alternating writers over a pool re-read
    /// every page from the file; one writer keeps its cache warm.
    writer: SqlitePool,
    path: std::path::PathBuf,
    /// (device, inode) of the file as opened, to notice it being deleted or
    /// replaced under us (`None` where it is unknown).
    identity: Option<(u64, u64)>,
    /// The same for its `-wal` and `-shm` files, once open.
    companions: [Option<(u64, u64)>; 2],
    /// This handle's id as a lease owner (random; see the module doc).
    owner: std::sync::Arc<str>,
}

/// SQLite's file beside the database: `-wal` or `-shm`.
fn companion(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// (device, inode) of the file at `path`, if it exists.
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

impl SqliteStore {
    /// Opens the database for `access` (see [`Access`]): what every command does
    /// first. Refuses a missing file unless `access` is [`Access::Migrate`], and
    /// a schema other than this binary's (saying what to do) unless it migrates.
    pub async fn open_for(settings: &DatabaseSettings, access: Access) -> Result<Self, StoreError> {
        let shown = settings.path.display().to_string();
        if access != Access::Migrate && !settings.path.try_exists().unwrap_or(true) {
            return Err(StoreError::Missing { path: shown });
        }
        let store = match access {
            Access::Migrate => return Self::open_migrated(settings).await,
            Access::Write => Self::open_file(settings, false).await?,
            Access::Read => Self::open_read_only(settings, true).await?,
            Access::ReadLive => Self::open_read_only(settings, false).await?,
        };
        crate::store::schema::require_current(schema::state(&store.pool).await?, &shown)?;
        Ok(store)
    }

    /// Opens (creating it and its directory if missing) the database in WAL mode.
    pub async fn open(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        Self::open_file(settings, true).await
    }

    /// Opens the database read-write in WAL mode; `create`: with its directory
    /// if missing.
    async fn open_file(settings: &DatabaseSettings, create: bool) -> Result<Self, StoreError> {
        let path = &settings.path;
        let shown = path.display().to_string();
        if let Some(dir) = path
            .parent()
            .filter(|d| create && !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|cause| StoreError::CreateDir {
                path: dir.display().to_string(),
                cause,
            })?;
        }
        // SQLite creates a new database file with mode 0644 minus the umask, so
        // under the unit's UMask=0007 the group could only read it (and its -wal
        // and -shm files, which copy its mode). Created here first, as any file
        // is (0666 minus the umask: 0660 under the unit), the group the README
        // lets share the database can write it. An empty file is a new database
        // to SQLite; should this fail, or another program create it first,
        // SQLite goes on as before and reports any real problem.
        if create {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path);
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed transition survives power loss, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(settings.busy_timeout)
            .foreign_keys(true)
            .pragma("journal_size_limit", "67108864")
            .pragma("temp_store", "memory");
        // Switching a new database to WAL needs an exclusive lock that SQLite's
        // busy timeout does not wait for: when another program is creating the
        // same file at this moment, retry for up to the busy timeout.
        let deadline = std::time::Instant::now() + settings.busy_timeout;
        let pool = loop {
            let attempt = SqlitePoolOptions::new()
                .max_connections(4)
                .min_connections(1)
                .connect_with(options.clone())
                .await;
            match attempt {
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(20 + fastrand::u64(..80)))
                        .await;
                }
                other => {
                    break other.map_err(|cause| StoreError::Open {
                        path: shown.clone(),
                        cause,
                    })?;
                }
            }
        };
        // Opened after the pool: by now the file exists and is in WAL mode.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(
                options
                    .pragma("cache_size", WRITER_CACHE)
                    .pragma("wal_autocheckpoint", WRITER_AUTOCHECKPOINT),
            )
            .await
            .map_err(|cause| StoreError::Open {
                path: shown.clone(),
                cause,
            })?;
        Ok(Self {
            pool,
            writer,
            path: path.clone(),
            identity: file_identity(path),
            // Both exist while a connection is open in WAL mode.
            companions: ["-wal", "-shm"].map(|suffix| file_identity(&companion(path, suffix))),
            owner: uuid::Uuid::new_v4().simple().to_string().into(),
        })
    }

    /// Opens an existing database read-only. SQLite reads a WAL database
    /// through its `-shm` file: while a daemon has the file open that exists and
    /// a read-only reader may use it even without write permission; when none
    /// does, SQLite must create it, which needs write access to the directory.
    /// Without that, and only when there is no `-wal` file either (so the
    /// database file alone holds every committed transaction) and `snapshot`
    /// (a one-off read, which a writer starting meanwhile could at worst leave
    /// a moment stale), the file is read as immutable, the one way SQLite
    /// reads it then; otherwise the error says what is needed.
    async fn open_read_only(
        settings: &DatabaseSettings,
        snapshot: bool,
    ) -> Result<Self, StoreError> {
        let path = &settings.path;
        let shown = path.display().to_string();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .busy_timeout(settings.busy_timeout)
            .foreign_keys(true)
            .pragma("temp_store", "memory");
        let pool = match read_only_pool(options.clone()).await {
            Err(e) if snapshot && is_unwritable_shm(&e) && !companion(path, "-wal").exists() => {
                read_only_pool(options.immutable(true)).await
            }
            other => other,
        }
        .map_err(|cause| {
            if is_unwritable_shm(&cause) && path.exists() {
                StoreError::ReadOnly {
                    path: shown.clone(),
                    shm: companion(path, "-shm").display().to_string(),
                    dir: path
                        .parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .unwrap_or(std::path::Path::new("."))
                        .display()
                        .to_string(),
                    cause,
                }
            } else {
                StoreError::Open {
                    path: shown.clone(),
                    cause,
                }
            }
        })?;
        Ok(Self {
            // One pool for both: every write through it fails, as it should.
            writer: pool.clone(),
            pool,
            path: path.clone(),
            identity: file_identity(path),
            companions: ["-wal", "-shm"].map(|suffix| file_identity(&companion(path, suffix))),
            owner: uuid::Uuid::new_v4().simple().to_string().into(),
        })
    }

    /// Fails when the file at `database.path` has been deleted or replaced since
    /// it was opened: our connections would keep writing into the old, detached
    /// file, and every transition recorded from then on would be lost.
    pub fn check_file(&self) -> Result<(), StoreError> {
        let Some(opened) = self.identity else {
            return Ok(());
        };
        let what = match file_identity(&self.path) {
            Some(now) if now == opened => return Ok(()),
            Some(_) => {
                self.drop_stale_companions();
                "replaced"
            }
            // Unreadable metadata of a file that is there proves nothing.
            None if self.path.exists() => return Ok(()),
            None => "deleted",
        };
        Err(StoreError::FileChanged {
            path: self.path.display().to_string(),
            what,
        })
    }

    /// After the file was replaced, its `-wal` and `-shm` at the path are still
    /// the old file's (SQLite will not remove them, the file having moved), and
    /// a restart would replay the old log over the new file. Removes them if
    /// they are still the ones this process has used.
    fn drop_stale_companions(&self) {
        for (suffix, opened) in ["-wal", "-shm"].into_iter().zip(self.companions) {
            let path = companion(&self.path, suffix);
            if opened.is_some() && file_identity(&path) == opened {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::warn!(file = %path.display(), "removed the replaced database's stale log")
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "cannot remove the replaced database's stale log; delete it before restarting")
                    }
                }
            }
        }
    }

    /// Applies the embedded migrations that have not run yet. They run inside
    /// one `BEGIN IMMEDIATE` transaction (each migration a savepoint in it), so
    /// programs migrating the same new file at once take turns instead of
    /// colliding on "table already exists".
    /// A database a newer binary upgraded is refused, named as such. Returns
    /// the schema before and after.
    pub async fn migrate(&self) -> Result<Migrated, StoreError> {
        let applied = schema::applied(&self.pool).await?;
        let known = embedded(&MIGRATOR);
        let state = compare(&applied, &known);
        if let SchemaState::Ahead { .. } = state {
            return Err(ahead_error(state, &self.shown()));
        }
        self.write("committing migrations", async |tx| {
            MIGRATOR
                .run(&mut **tx)
                .await
                .map_err(|e| StoreError::Migrate(e.to_string()))
        })
        .await?;
        Ok(Migrated {
            from: applied.last().copied().unwrap_or(0),
            to: known.last().copied().unwrap_or(0),
        })
    }

    /// Opens and migrates: what `run` and `migrate` do first ([`Access::Migrate`]).
    pub async fn open_migrated(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let store = Self::open(settings).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// This handle's id as the owner of the leases it claims.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The database file, as shown to people.
    pub fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// The database file's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction and commits it.
    ///
    /// On any failure the connection is closed rather than returned to the pool:
    /// SQLite rolls a transaction back by itself on some errors (disk full, I/O),
    /// while sqlx still counts it as open and would refuse every later `BEGIN`
    /// on that connection.
    async fn write<T>(
        &self,
        commit_context: &'static str,
        work: impl AsyncFnOnce(&mut Transaction<'_, Sqlite>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self
            .writer
            .acquire()
            .await
            .context("acquiring a connection")?;
        let result = async {
            let mut tx = conn
                .begin_with("BEGIN IMMEDIATE")
                .await
                .context("starting a write transaction")?;
            let value = work(&mut tx).await?;
            tx.commit().await.context(commit_context)?;
            Ok(value)
        }
        .await;
        if result.is_err() {
            conn.close_on_drop();
        }
        result
    }

    /// Folds the WAL back into the database file; called when idle so the WAL stays small.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        sqlx::query(sql::CHECKPOINT)
            .execute(&self.pool)
            .await
            .context("checkpointing the WAL")?;
        Ok(())
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// Size of the write-ahead log, which readers holding old snapshots can make grow.
    pub fn wal_bytes(&self) -> Option<u64> {
        std::fs::metadata(companion(&self.path, "-wal"))
            .ok()
            .map(|m| m.len())
    }
}

fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("5" | "517")))
}

/// A read-only pool whose first connection has read the schema (SQLite opens
/// the WAL index lazily: a missing `-shm` shows on the first read, not at open).
async fn read_only_pool(options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .min_connections(1)
        .connect_with(options)
        .await?;
    sqlx::query(sql::HAS_MIGRATIONS_TABLE)
        .fetch_one(&pool)
        .await?;
    Ok(pool)
}

/// SQLITE_READONLY or SQLITE_CANTOPEN (any extended code): what a read-only
/// open of a WAL database reports when it can neither use nor create `-shm`.
fn is_unwritable_shm(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    let code = db.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
    matches!(code & 0xff, 8 | 14)
}
