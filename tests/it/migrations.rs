//! The migration folders: one per engine (`migrations/sqlite/`,
//! `migrations/postgres/`), the same names in the same order, so that a
//! migration added to one engine only fails here; and the SQLite folder's move
//! from `migrations/` changes nothing for a database made before it: one made
//! by the current release is up to date (nothing re-run, nothing orphaned,
//! every checksum the same), and one of the release before the latest
//! migration upgrades in place. The databases are fixtures made by those
//! releases' binaries (tests/fixtures/README.md).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::TestSettings;
use common::daemon::cli_within;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// What the daemon embeds (src/store/mod.rs) and what PostgreSQL gets.
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// The newest migration: the schema the current release made.
const CURRENT: i64 = 20261206000014;
/// The previous release's schema (the newest migration of the last release;
/// a release may add several).
const PREVIOUS: i64 = 20261206000012;
/// The last schema before `migrations/` moved to `migrations/sqlite/`: a
/// database made then must upgrade too, its applied migrations untouched.
const BEFORE_THE_MOVE: i64 = 20261205000007;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The file names in `migrations/<engine>/`, sorted; every entry must be a
/// `<version>_<description>.sql` file (no down migrations, nothing else).
fn names(engine: &str) -> Vec<String> {
    let dir = root().join("migrations").join(engine);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for name in &names {
        let (version, rest) = name
            .split_once('_')
            .unwrap_or_else(|| panic!("{engine}/{name}: not VERSION_DESCRIPTION.sql"));
        assert!(
            version.len() == 14 && version.bytes().all(|b| b.is_ascii_digit()),
            "{engine}/{name}: the version is not 14 digits"
        );
        assert!(
            rest.ends_with(".sql") && !rest.ends_with(".down.sql") && !rest.ends_with(".up.sql"),
            "{engine}/{name}: only simple (up) .sql migrations"
        );
    }
    names
}

#[test]
fn both_engines_have_the_same_migrations_in_the_same_order() {
    let sqlite = names("sqlite");
    let postgres = names("postgres");
    assert!(!sqlite.is_empty(), "no migrations in migrations/sqlite");
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|n| !b.contains(n)).cloned().collect()
    };
    assert_eq!(
        sqlite,
        postgres,
        "migrations/sqlite and migrations/postgres differ: only in sqlite: {:?}, only in postgres: {:?} \
         (every schema change is one migration of the same name in both folders)",
        only(&sqlite, &postgres),
        only(&postgres, &sqlite)
    );
    // What the binaries embed agrees with the folders (build.rs reruns on a change).
    let embedded = |m: &Migrator| -> Vec<(i64, String)> {
        m.iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect()
    };
    assert_eq!(embedded(&SQLITE), embedded(&POSTGRES));
    assert_eq!(SQLITE.iter().count(), sqlite.len());
    assert_eq!(SQLITE.iter().last().unwrap().version, CURRENT);
}

#[test]
fn nothing_is_left_in_the_old_migrations_folder() {
    // A .sql file left in migrations/ would be embedded by nothing.
    let stray: Vec<String> = std::fs::read_dir(root().join("migrations"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert!(
        stray.is_empty(),
        "files in migrations/ outside an engine's folder: {stray:?}"
    );
    let mut engines: Vec<String> = std::fs::read_dir(root().join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    engines.sort();
    assert_eq!(engines, ["postgres", "sqlite"]);
}

/// A copy of the fixture made at `schema`, in a fresh directory (never the
/// committed file itself: SQLite would write beside it), with a configuration.
fn fixture(schema: i64) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watcher.db");
    let source = root().join(format!("tests/fixtures/schema-{schema}.db"));
    std::fs::copy(&source, &db).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let config =
        TestSettings::new("http://127.0.0.1:9", &db).write_toml(&dir.path().join("c.toml"));
    (dir, db, config)
}

/// sqlx's bookkeeping: version -> (checksum, installed_on, success).
type Applied = BTreeMap<i64, (Vec<u8>, String, bool)>;

async fn applied(db: &Path) -> Applied {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(db).read_only(true))
        .await
        .unwrap();
    let rows: Vec<(i64, Vec<u8>, String, bool)> = sqlx::query_as(
        "SELECT version, checksum, CAST(installed_on AS TEXT), success FROM _sqlx_migrations",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter()
        .map(|(v, c, at, ok)| (v, (c, at, ok)))
        .collect()
}

/// Every applied migration is one of ours with our checksum (sqlx would refuse
/// a changed byte: "previously applied but has been modified").
fn assert_ours(applied: &Applied) {
    for (version, (checksum, _, success)) in applied {
        let ours = SQLITE
            .iter()
            .find(|m| m.version == *version)
            .unwrap_or_else(|| panic!("applied migration {version} is not in migrations/sqlite"));
        assert!(success, "{version} did not succeed");
        assert_eq!(
            checksum.as_slice(),
            &*ours.checksum,
            "{version}: the file in migrations/sqlite is not the one this database ran"
        );
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Rows the fixture's maker inserted, as the watcher reads them back.
fn assert_fixture_rows(config: &Path) {
    let out = cli_within(config, &["list"]);
    assert!(out.status.success(), "list: {}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("fixture-watched"), "{listed}");
    let out = cli_within(config, &["charges"]);
    assert!(out.status.success(), "charges: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pending"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn a_database_of_the_current_release_is_up_to_date_after_the_move() {
    let (_dir, db, config) = fixture(CURRENT);
    let before = applied(&db).await;
    assert_eq!(before.len(), SQLITE.iter().count(), "{before:?}");
    assert_ours(&before);

    let out = cli_within(&config, &["migrate"]);
    assert!(out.status.success(), "migrate: {}", text(&out));
    assert!(
        text(&out).contains(&format!("is up to date (schema {CURRENT})")),
        "{}",
        text(&out)
    );
    // Nothing re-run (installed_on unchanged), nothing added, nothing orphaned.
    assert_eq!(applied(&db).await, before);
    // Commands that refuse any other schema accept it.
    assert_fixture_rows(&config);
}

#[tokio::test]
async fn a_database_of_the_previous_release_upgrades_in_place() {
    upgrades_in_place(PREVIOUS).await;
}

#[tokio::test]
async fn a_database_made_before_the_migrations_moved_upgrades_in_place() {
    upgrades_in_place(BEFORE_THE_MOVE).await;
}

/// The fixture at schema `from` is refused by commands that need the current
/// schema, then upgraded by `migrate` with only the newer migrations, its rows
/// kept and the newer tables' rows fresh.
async fn upgrades_in_place(from: i64) {
    let (_dir, db, config) = fixture(from);
    let before = applied(&db).await;
    assert_eq!(
        before.keys().copied().max(),
        Some(from),
        "the fixture is at schema {from}"
    );
    assert_ours(&before);

    let out = cli_within(&config, &["list"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("has schema {from}, this binary needs {CURRENT}")),
        "{}",
        text(&out)
    );

    let out = cli_within(&config, &["migrate"]);
    assert!(out.status.success(), "migrate: {}", text(&out));
    assert!(
        text(&out).contains(&format!("upgraded from schema {from} to {CURRENT}")),
        "{}",
        text(&out)
    );
    let after = applied(&db).await;
    assert_ours(&after);
    // The migrations it had are untouched; only the new ones ran.
    for (version, row) in &before {
        assert_eq!(after.get(version), Some(row), "{version} was re-run");
    }
    let added: Vec<i64> = after
        .keys()
        .filter(|v| !before.contains_key(v))
        .copied()
        .collect();
    let newer: Vec<i64> = SQLITE
        .iter()
        .map(|m| m.version)
        .filter(|v| *v > from)
        .collect();
    assert_eq!(added, newer);
    assert_fixture_rows(&config);
    // The upgrade's columns are there, next to the rows that were.
    let out = cli_within(&config, &["status"]);
    assert!(out.status.success(), "status: {}", text(&out));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(&db))
        .await
        .unwrap();
    let sinks: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT name, failing_since FROM sinks")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(sinks, [("fixture-sink".to_owned(), None)]);
    let deliveries: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE discarded_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(deliveries, 1);
    // The shared request budget's one row, fresh: no slot taken, no pause.
    let budget: (i64, Option<i64>) =
        sqlx::query_as("SELECT next_slot_us, paused_until_us FROM api_budget")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(budget, (0, None));
    pool.close().await;
}
