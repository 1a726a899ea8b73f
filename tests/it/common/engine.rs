//! The behaviour suites run on both engines. A suite writes each test once,
//! as a plain `async fn`, and lists it in [`on_both_engines!`], which makes a
//! `sqlite::NAME` and a `postgres::NAME` test of it. The PostgreSQL run gives
//! the test a fresh database of its own; the kit's settings
//! ([`super::config::TestSettings`]) then name that database instead of a
//! SQLite file, so the daemon (in-process or a child) and the test's own
//! reads go to it without the test saying so.
//!
//! Without a server (`ISSUANCE_WATCHER_TEST_PG`), the PostgreSQL runs fail
//! under CI and say SKIPPED elsewhere (see `common::postgres`).

use super::postgres::{FreshDatabase, require_server};

tokio::task_local! {
    /// The URL of the PostgreSQL database the current test runs on.
    static POSTGRES: String;
}

/// The PostgreSQL database the current test runs on, if it runs on PostgreSQL.
pub fn postgres_url() -> Option<String> {
    POSTGRES.try_with(Clone::clone).ok()
}

/// Runs `test` on a fresh PostgreSQL database; drops it afterwards (a failed
/// test's is left behind in the throwaway cluster, to look at).
pub async fn on_postgres(test: impl Future<Output = ()>) {
    let Some(server) = require_server() else {
        return;
    };
    let database = FreshDatabase::create(&server, "iw_it").await;
    POSTGRES.scope(database.url.clone(), test).await;
    database.drop_database().await;
}

/// Runs `part` of a test on a database of its own: a fresh PostgreSQL
/// database when the test runs on PostgreSQL (on SQLite, each part that makes
/// a directory of its own has a file of its own already). For a test that
/// repeats one scenario, each time on an empty database.
pub async fn on_a_fresh_database<T>(part: impl Future<Output = T>) -> T {
    if postgres_url().is_none() {
        return part.await;
    }
    let mut out = None;
    on_postgres(async { out = Some(part.await) }).await;
    out.expect("a PostgreSQL test has a server for its parts")
}

/// `on_both_engines!(name, other (flavor = "multi_thread", worker_threads = 2))`:
/// for each listed `async fn name()` of the enclosing module, a test
/// `sqlite::name` and a test `postgres::name`, with the given
/// `#[tokio::test(...)]` arguments if any.
macro_rules! on_both_engines {
    ($($name:ident $(($($flavor:tt)*))?),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test $(($($flavor)*))?]
                async fn $name() {
                    super::$name().await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test $(($($flavor)*))?]
                async fn $name() {
                    $crate::common::engine::on_postgres(super::$name()).await
                }
            )*
        }
    };
}
pub(crate) use on_both_engines;
