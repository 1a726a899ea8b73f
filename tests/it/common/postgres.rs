//! A PostgreSQL server for the tests that run on both engines: the one named
//! by `ISSUANCE_WATCHER_TEST_PG` (`postgres://USER@HOST:PORT/DB`, a user who
//! may create databases; `.ci/run` starts a throwaway cluster with
//! `.ci/pg-cluster`). Each test gets a database of its own, dropped when the
//! test ends (a failed test's is left behind in the throwaway cluster, to
//! look at).
//!
//! Without a server, a test that needs one fails under CI and says SKIPPED
//! elsewhere (see `support::require`).

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::support;

pub const VAR: &str = "ISSUANCE_WATCHER_TEST_PG";

/// The server's URL, or why there is none and how to get one.
pub fn server() -> Result<String, String> {
    match std::env::var(VAR) {
        Ok(url) if !url.trim().is_empty() => Ok(url),
        _ => Err(format!(
            "{VAR} is not set, so PostgreSQL was NOT tested. To run it: \
             url=\"$(.ci/pg-cluster start /tmp/iw-pg)\" && {VAR}=\"$url\" cargo test --test it ; \
             .ci/pg-cluster stop /tmp/iw-pg \
             (needs Debian's postgresql package; any server where the user may CREATE DATABASE will do)"
        )),
    }
}

/// The server's URL, or `None` (SKIPPED) outside CI without one.
pub fn require_server() -> Option<String> {
    support::require(server())
}

/// A database made for one test; [`FreshDatabase::drop_database`] ends it.
pub struct FreshDatabase {
    /// The database's URL (the server's, with this database's name).
    pub url: String,
    admin: PgPool,
    name: String,
}

impl FreshDatabase {
    /// Creates an empty database named `<prefix>_<random>` on the server at `url`.
    pub async fn create(url: &str, prefix: &str) -> Self {
        let server = PgConnectOptions::from_str(url)
            .unwrap_or_else(|e| panic!("{VAR}={url} is not a PostgreSQL URL: {e}"));
        let admin: PgPool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(server)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {VAR}={url}: {e}"));
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create a database on {VAR}={url}: {e}"));
        let mut parsed = reqwest::Url::parse(url).expect("the server URL parses");
        parsed.set_path(&format!("/{name}"));
        Self {
            url: parsed.to_string(),
            admin,
            name,
        }
    }

    /// Drops the database, closing whatever is still connected to it.
    pub async fn drop_database(self) {
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
