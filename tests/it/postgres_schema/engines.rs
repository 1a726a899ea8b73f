//! The harness of the PostgreSQL schema suite: a fresh PostgreSQL database and
//! a fresh SQLite file, both migrated, and the same statements run on both.

use crate::support;

use std::str::FromStr as _;
use std::time::Duration;

use serde_json::Value;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Row as _};

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

const VAR: &str = "ISSUANCE_WATCHER_TEST_PG";

/// Every test's whole run, setup included.
const TEST_DEADLINE: Duration = Duration::from_secs(60);

/// The server's URL, or why there is none and how to get one.
fn server() -> Result<String, String> {
    match std::env::var(VAR) {
        Ok(url) if !url.trim().is_empty() => Ok(url),
        _ => Err(format!(
            "{VAR} is not set, so the PostgreSQL schema was NOT tested. To run it: \
             url=\"$(.ci/pg-cluster start /tmp/iw-pg)\" && {VAR}=\"$url\" \
             cargo test --test it -- postgres_schema:: ; .ci/pg-cluster stop /tmp/iw-pg \
             (needs Debian's postgresql package; any server where the user may CREATE DATABASE will do)"
        )),
    }
}

/// Runs `test` on fresh engines, within [`TEST_DEADLINE`]; returns at once
/// (SKIPPED) without a server outside CI.
pub async fn with_engines<F>(test: impl FnOnce(Engines) -> F)
where
    F: Future<Output = ()>,
{
    let Some(url) = support::require(server()) else {
        return;
    };
    tokio::time::timeout(TEST_DEADLINE, async {
        let engines = Engines::new(&url).await;
        let cleanup = engines.cleanup.clone();
        test(engines).await;
        cleanup.drop_database().await;
    })
    .await
    .expect("the test did not finish within its deadline");
}

/// The same schema on both engines, each in a fresh database.
pub struct Engines {
    pub lite: SqlitePool,
    pub pg: PgPool,
    cleanup: Cleanup,
    _dir: tempfile::TempDir,
}

#[derive(Clone)]
/// What drops the test's PostgreSQL database at the end (a failed test leaves
/// it behind in the throwaway cluster, to look at).
struct Cleanup {
    admin: PgPool,
    name: String,
}

impl Cleanup {
    async fn drop_database(self) {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&self.admin)
        .await
        .unwrap();
        self.admin.close().await;
    }
}

impl Engines {
    async fn new(url: &str) -> Self {
        let server = PgConnectOptions::from_str(url)
            .unwrap_or_else(|e| panic!("{VAR}={url} is not a PostgreSQL URL: {e}"));
        let admin: PgPool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(server.clone())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {VAR}={url}: {e}"));
        let name = format!("iw_schema_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create a database on {VAR}={url}: {e}"));
        let pg: PgPool = PgPoolOptions::new()
            .max_connections(3)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(
                server
                    .database(&name)
                    // No wait in these tests may hang: a lock not had in 10 s fails.
                    .options([("lock_timeout", "10s"), ("statement_timeout", "20s")]),
            )
            .await
            .unwrap();
        POSTGRES.run(&pg).await.expect("migrations/postgres apply");

        let dir = tempfile::tempdir().unwrap();
        let lite: SqlitePool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(dir.path().join("watcher.db"))
                    .create_if_missing(true)
                    .busy_timeout(Duration::from_secs(5)),
            )
            .await
            .unwrap();
        SQLITE.run(&lite).await.expect("migrations/sqlite apply");
        Self {
            lite,
            pg,
            cleanup: Cleanup { admin, name },
            _dir: dir,
        }
    }

    /// Runs `sql` (one or more statements) on both; both must succeed.
    pub async fn both(&self, sql: &'static str) {
        if let Err(e) = sqlx::raw_sql(sql).execute(&self.lite).await {
            panic!("SQLite refused {sql}: {e}");
        }
        if let Err(e) = sqlx::raw_sql(sql).execute(&self.pg).await {
            panic!("PostgreSQL refused {sql}: {e}");
        }
    }

    /// Runs `sql` on both; both must refuse it, saying `says` (in any case).
    pub async fn refused(&self, sql: &'static str, says: &str) {
        let says = says.to_lowercase();
        let lite = sqlx::raw_sql(sql).execute(&self.lite).await;
        let pg = sqlx::raw_sql(sql).execute(&self.pg).await;
        for (engine, outcome) in [("SQLite", lite.map(|_| ())), ("PostgreSQL", pg.map(|_| ()))] {
            match outcome {
                Ok(()) => panic!("{engine} accepted {sql}"),
                Err(e) => assert!(
                    e.to_string().to_lowercase().contains(&says),
                    "{engine} refused {sql} with {e}, not {says:?}"
                ),
            }
        }
    }

    /// `sql` on both, every column text (or NULL): the same rows on both,
    /// returned.
    pub async fn rows(&self, sql: &'static str) -> Vec<Vec<Option<String>>> {
        self.rows_each(sql, sql).await
    }

    /// [`Engines::rows`] with a statement for each engine, where their
    /// dialects differ.
    pub async fn rows_each(
        &self,
        lite: &'static str,
        pg: &'static str,
    ) -> Vec<Vec<Option<String>>> {
        let [on_lite, on_pg] = self.rows_each_raw(lite, pg).await;
        assert_eq!(
            on_lite, on_pg,
            "SQLite (left) and PostgreSQL (right) differ"
        );
        on_lite
    }

    /// The events on both, oldest first, as consumers see them: the same on both
    /// but for the random ids, which must have the same shape.
    pub async fn events(&self) -> Vec<Event> {
        let both = self
            .rows_each_raw(
                "SELECT CAST(seq AS TEXT), id, type, issuance_id, occurred_at, data FROM events ORDER BY seq",
                "SELECT seq::text, id, type, issuance_id, utc_text(occurred_at), data::text FROM events ORDER BY seq",
            )
            .await;
        let [lite, pg] = both.map(|rows| {
            rows.into_iter()
                .map(|r| {
                    let id = r[1].clone().unwrap();
                    assert!(
                        id.len() == 36
                            && id.starts_with("evt_")
                            && id[4..]
                                .bytes()
                                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                        "event id {id:?} is not evt_ and 32 lowercase hex digits"
                    );
                    Event {
                        seq: r[0].clone().unwrap().parse().unwrap(),
                        event_type: r[2].clone().unwrap(),
                        issuance_id: r[3].clone(),
                        occurred_at: r[4].clone().unwrap(),
                        data: serde_json::from_str(r[5].as_deref().unwrap()).unwrap(),
                    }
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(
            lite, pg,
            "events: SQLite (left) and PostgreSQL (right) differ"
        );
        lite
    }

    /// Rows of each engine's statement, every column text, not compared.
    async fn rows_each_raw(
        &self,
        lite: &'static str,
        pg: &'static str,
    ) -> [Vec<Vec<Option<String>>>; 2] {
        let on_lite: Vec<Vec<Option<String>>> = sqlx::query(lite)
            .fetch_all(&self.lite)
            .await
            .unwrap_or_else(|e| panic!("SQLite: {lite}: {e}"))
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| row.try_get::<Option<String>, _>(i).unwrap())
                    .collect()
            })
            .collect();
        let on_pg = sqlx::query(pg)
            .fetch_all(&self.pg)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL: {pg}: {e}"))
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        row.try_get::<Option<String>, _>(i)
                            .unwrap_or_else(|e| panic!("PostgreSQL: {pg}: column {i}: {e}"))
                    })
                    .collect()
            })
            .collect();
        [on_lite, on_pg]
    }
}

#[derive(Debug, PartialEq)]
pub struct Event {
    pub seq: i64,
    pub event_type: String,
    pub issuance_id: Option<String>,
    pub occurred_at: String,
    pub data: Value,
}

/// Expected rows (the queries spell NULL as 'NULL', with coalesce).
pub fn strings(rows: &[&[&str]]) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|r| r.iter().map(|c| Some((*c).to_owned())).collect())
        .collect()
}
