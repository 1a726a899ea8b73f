//! The harness of the PostgreSQL schema suite: a fresh PostgreSQL database and
//! a fresh SQLite file, both migrated, and the same statements run on both.

use crate::common::postgres::{FreshDatabase, require_server};

use std::str::FromStr as _;
use std::time::Duration;

use serde_json::Value;
use sqlx::Row as _;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// Every test's whole run, setup included.
const TEST_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `test` on fresh engines, within [`TEST_DEADLINE`]; returns at once
/// (SKIPPED) without a server outside CI (see `common::postgres`).
pub async fn with_engines<F>(test: impl FnOnce(Engines) -> F)
where
    F: Future<Output = ()>,
{
    let Some(server) = require_server() else {
        return;
    };
    tokio::time::timeout(TEST_DEADLINE, async {
        let database = FreshDatabase::create(&server, "iw_schema").await;
        let engines = Engines::new(&database.url).await;
        let pg = engines.pg.clone();
        test(engines).await;
        pg.close().await;
        database.drop_database().await;
    })
    .await
    .expect("the test did not finish within its deadline");
}

/// The same schema on both engines, each in a fresh database.
pub struct Engines {
    pub lite: SqlitePool,
    pub pg: PgPool,
    _dir: tempfile::TempDir,
}

impl Engines {
    async fn new(url: &str) -> Self {
        let options = PgConnectOptions::from_str(url).expect("the test database's URL");
        let pg: PgPool = PgPoolOptions::new()
            .max_connections(3)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(
                options
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
