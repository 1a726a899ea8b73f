//! Plain SQL on the test's database, whichever engine holds it, as another
//! program would run it. Statements are written once in the dialect both
//! engines share: `$1`-style parameters (sqlx-sqlite binds them too), and
//! columns cast to text in the statement where a row is read as text.

use issuance_watcher::settings::DatabaseSettings;
use issuance_watcher::store::Store;
use sqlx::Row as _;
use sqlx::{PgPool, SqlitePool};

/// A connection pool on the test's database.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl From<&SqlitePool> for Db {
    fn from(pool: &SqlitePool) -> Self {
        Db::Sqlite(pool.clone())
    }
}

impl From<&Store> for Db {
    fn from(store: &Store) -> Self {
        match store.pg_pool() {
            Some(pg) => Db::Postgres(pg.clone()),
            None => Db::Sqlite(store.pool().clone()),
        }
    }
}

impl From<&Db> for Db {
    fn from(db: &Db) -> Self {
        db.clone()
    }
}

/// Runs `sql` with text parameters `$1`, `$2`, ... bound to `binds`.
macro_rules! bound {
    ($sql:expr, $binds:expr) => {{
        let mut query = sqlx::query($sql);
        for value in $binds {
            query = query.bind(*value);
        }
        query
    }};
}

impl Db {
    /// A pool of its own on the database `settings` name: another program.
    pub async fn connect(settings: &DatabaseSettings) -> Self {
        match settings.postgres() {
            Some(target) => Db::Postgres(
                PgPool::connect_with(target.connect_options())
                    .await
                    .expect("the test's PostgreSQL database accepts a connection"),
            ),
            None => Db::Sqlite(
                SqlitePool::connect(&format!("sqlite://{}", settings.path.display()))
                    .await
                    .expect("the test's SQLite file opens"),
            ),
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// Runs one statement with text parameters; returns the rows it changed.
    pub async fn exec(&self, sql: &'static str, binds: &[&str]) -> u64 {
        match self {
            Db::Sqlite(pool) => bound!(sql, binds)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
            Db::Postgres(pool) => bound!(sql, binds)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The rows of one statement with text parameters, every column read as
    /// text or NULL (the statement casts what is not text).
    pub async fn rows(&self, sql: &'static str, binds: &[&str]) -> Vec<Vec<Option<String>>> {
        match self {
            Db::Sqlite(pool) => bound!(sql, binds).fetch_all(pool).await.map(|rows| {
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.get::<Option<String>, _>(i))
                            .collect()
                    })
                    .collect()
            }),
            Db::Postgres(pool) => bound!(sql, binds).fetch_all(pool).await.map(|rows| {
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.get::<Option<String>, _>(i))
                            .collect()
                    })
                    .collect()
            }),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The one integer `sql` answers (a count, a column of one row).
    pub async fn number(&self, sql: &'static str) -> i64 {
        match self {
            Db::Sqlite(pool) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await,
            Db::Postgres(pool) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The recorded (from, to) statuses of `id`, in order.
    pub async fn transitions(&self, id: &str) -> Vec<(Option<String>, String)> {
        self.rows(
            "SELECT from_status, to_status FROM transitions WHERE issuance_id = $1 ORDER BY seq",
            &[id],
        )
        .await
        .into_iter()
        .map(|mut r| {
            let to = r.pop().flatten().expect("to_status is NOT NULL");
            (r.pop().flatten(), to)
        })
        .collect()
    }

    /// Inserts ids as another program would: a plain `INSERT` into the public table.
    pub async fn insert_ids(&self, ids: &[&str]) {
        for id in ids {
            self.exec("INSERT INTO issuances (id) VALUES ($1)", &[id])
                .await;
        }
    }
}
