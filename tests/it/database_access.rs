//! What each command may do to the database file, as an operator meets it:
//! only `run` and `migrate` create or upgrade one; every other command refuses
//! a missing database, one of an older schema and one of a newer schema, each
//! with one `error:` line that says what to do, and leaves the file as it was;
//! the commands that only read open it read-only, so they also read a WAL
//! database in a directory the user cannot write.
//!
//! The schemas are built from the `migrations/sqlite/` directory at test time, so
//! these tests stay right when a migration is added.

use crate::common;
use crate::support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::TestSettings;
use common::daemon::{BIN, Spawn, cli, cli_within, output_within};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

/// Commands that only read.
const READERS: &[&[&str]] = &[
    &["list"],
    &["flags"],
    &["show", "1"],
    &["events"],
    &["events", "--failed"],
    &["events", "--follow"],
    &["charges"],
    &["status"],
];

/// Commands that write rows.
const WRITERS: &[&[&str]] = &[
    &["add", "1"],
    &["cancel", "1", "--yes"],
    &["charge", "1000"],
    &["events", "redeliver", "1"],
];

/// A configuration (one signed sink, so that `events redeliver` gets as far as
/// the database) for the database at `db`, nothing listening at the API.
fn config(dir: &Path, db: &Path) -> PathBuf {
    TestSettings::new("http://127.0.0.1:9", db)
        .webhook("shop", "http://127.0.0.1:9/hook", |_| {})
        .write_toml(&dir.join("config.toml"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts `args` failed with exit 1 and one `error:` line containing `says`
/// (within 10 s: `events --follow` is among them).
fn refused(config: &Path, args: &[&str], says: &str) {
    let out = cli_within(config, args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{args:?}: {err}");
    assert!(errors[0].contains(says), "{args:?}: {says:?} not in {err}");
}

/// The migrations in `migrations/sqlite/`, oldest first.
async fn migrations() -> Vec<sqlx::migrate::Migration> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let all = Migrator::new(dir).await.unwrap();
    all.iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .cloned()
        .collect()
}

/// A WAL database at `db` with the first `n` migrations applied, as a
/// previous binary left it.
async fn database_with(db: &Path, n: usize) {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(db)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal),
        )
        .await
        .unwrap();
    let first = migrations().await.into_iter().take(n).collect();
    Migrator::with_migrations(first).run(&pool).await.unwrap();
    pool.close().await;
}

async fn pool(db: &Path) -> sqlx::SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(db))
        .await
        .unwrap()
}

/// The applied migrations' versions.
async fn applied(db: &Path) -> Vec<i64> {
    let pool = pool(db).await;
    let versions = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    versions
}

#[test]
fn a_missing_database_is_refused_by_every_command_but_migrate_and_none_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("mistyped");
    let db = db_dir.join("watcher.db");
    let config = config(dir.path(), &db);
    let says = format!("no database at {}: is --config right?", db.display());
    for args in READERS.iter().chain(WRITERS) {
        refused(&config, args, &says);
        assert!(!db_dir.exists(), "{args:?} created {}", db_dir.display());
    }
    let out = cli(&config, &["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(db.exists());
    let listed = cli(&config, &["list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_previous_schema_is_refused_untouched_until_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watcher.db");
    let all = migrations().await;
    let (previous, current) = (all[all.len() - 2].version, all[all.len() - 1].version);
    database_with(&db, all.len() - 1).await;
    let config = config(dir.path(), &db);
    let before = std::fs::read(&db).unwrap();
    let says = format!(
        "the database at {} has schema {previous}, this binary needs {current}: run `issuance-watcher migrate`",
        db.display()
    );
    for args in READERS.iter().chain(WRITERS) {
        refused(&config, args, &says);
    }
    assert_eq!(applied(&db).await.last(), Some(&previous), "upgraded");
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the database file changed"
    );

    let out = cli(&config, &["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("upgraded from schema {previous} to {current}")),
        "{out:?}"
    );
    for args in [&["list"][..], &["status"], &["add", "1"]] {
        let out = cli(&config, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_a_newer_binary_is_refused_by_every_command_even_migrate_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watcher.db");
    let config = config(dir.path(), &db);
    common::daemon::migrate(&config);
    let current = migrations().await.last().unwrap().version;
    let future: i64 = 99_991_231_000_000;
    let pool = pool(&db).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (?, 'from a newer binary', 1, x'00', 0)",
    )
    .bind(future)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let says = format!(
        "the database at {} has schema {future}, newer than this binary's {current} \
         (migrations it does not know: {future})",
        db.display()
    );
    for args in READERS
        .iter()
        .chain(WRITERS)
        .chain([&["migrate"][..], &["run"]].iter())
    {
        refused(&config, args, &says);
    }
}

/// `issuance-watcher --config CONFIG ARGS...` as the user `nobody`, which
/// must exit within 10 s (a reader that never ends, such as an `events
/// --follow` that opened, fails the test).
fn as_nobody(config: &Path, args: &[&str]) -> Output {
    output_within(
        support::as_nobody()
            .expect("checked at the start of the test")
            .arg(BIN)
            .arg("--config")
            .arg(config)
            .args(args),
        Duration::from_secs(10),
    )
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn companion(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

fn listed_ids(out: &Output) -> Vec<String> {
    assert!(out.status.success(), "{}", stderr(out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_read_a_wal_database_in_a_directory_they_cannot_write() {
    if support::require(support::as_nobody()).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let db_dir = dir.path().join("db");
    let db = db_dir.join("watcher.db");
    let config = config(dir.path(), &db);
    chmod(&config, 0o644);
    common::daemon::migrate(&config);
    assert!(cli(&config, &["add", "1", "2"]).status.success());
    // The last connection to close, having read the database, folds the WAL
    // in and removes it and the -shm, as a daemon's clean stop does (sqlx
    // closes on its worker thread: the files go a moment after `close`).
    let last = pool(&db).await;
    sqlx::query("SELECT count(*) FROM issuances")
        .fetch_one(&last)
        .await
        .unwrap();
    last.close().await;
    common::running::wait_for(
        "the WAL folded in and removed",
        Duration::from_secs(10),
        async || {
            let left: Vec<_> = ["-wal", "-shm"]
                .into_iter()
                .filter(|suffix| companion(&db, suffix).exists())
                .collect();
            match left.is_empty() {
                true => Ok(()),
                false => Err(format!("{left:?} still there")),
            }
        },
    )
    .await;
    chmod(&db, 0o644);
    chmod(&db_dir, 0o555);

    // No daemon: no -wal, no -shm, and none can be created.
    assert_eq!(
        listed_ids(&as_nobody(&config, &["list", "--json"])),
        ["1", "2"]
    );
    let status = as_nobody(&config, &["status", "--json"]);
    assert!(status.status.success(), "{}", stderr(&status));
    // Following needs to see changes: the file read as it stands would never
    // show one, so it says what is needed instead.
    let follow = as_nobody(&config, &["events", "--follow"]);
    assert_eq!(follow.status.code(), Some(1), "{}", stderr(&follow));
    assert!(
        stderr(&follow).contains("or while the daemon runs"),
        "{}",
        stderr(&follow)
    );

    // A daemon (root, as the service user would) has the WAL open: its -shm
    // is there, read-only for this user, and rows still in the WAL are seen.
    chmod(&db_dir, 0o755);
    let mut daemon = Spawn::new(&config).spawn();
    daemon.started(Duration::from_secs(10)).await;
    chmod(&db_dir, 0o555);
    let added = cli(&config, &["add", "3"]);
    assert!(added.status.success(), "{}", stderr(&added));
    assert!(companion(&db, "-shm").exists());
    assert_eq!(
        listed_ids(&as_nobody(&config, &["list", "--json"])),
        ["1", "2", "3"]
    );

    // A crashed daemon's WAL without its -shm: SQLite cannot read it read-only
    // and this user cannot create the -shm; the error says what is needed.
    daemon.kill9();
    std::fs::remove_file(companion(&db, "-shm")).unwrap();
    assert!(companion(&db, "-wal").exists());
    let out = as_nobody(&config, &["list"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "SQLite needs {} to read a WAL database: run this as a user who may write {}",
            companion(&db, "-shm").display(),
            db_dir.display()
        )),
        "{err}"
    );
    chmod(&db_dir, 0o755);
}
