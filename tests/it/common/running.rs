//! The watcher loop in-process against a fresh database, and the reads tests
//! make of that database; with the one way tests wait (`wait_for`,
//! `eventually` and their blocking twins, from [`super::wait`]).

use std::sync::Arc;
use std::time::Duration;

pub use super::wait::{EVERY, eventually, poll, poll_blocking, wait_for, wait_for_blocking};
use issuance_watcher::domain::clock::Clock;
use issuance_watcher::ops::progress::Progress;
use issuance_watcher::settings::{DatabaseSettings, Settings};
use issuance_watcher::store::Store;
use issuance_watcher::watcher::Watcher;

use super::db::Db;
use tokio_util::sync::CancellationToken;

/// A watcher running in the background until stopped.
pub struct Running {
    pub store: Store,
    /// The database it runs on, for another program's connection.
    pub database: DatabaseSettings,
    progress: Arc<Progress>,
    token: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn start(settings: Settings) -> Self {
        let store = Store::open_migrated(&settings.database).await.unwrap();
        let database = settings.database.clone();
        let watcher = Watcher::new(settings, store.clone(), Clock::real()).unwrap();
        let progress = watcher.progress();
        let token = CancellationToken::new();
        let loop_token = token.clone();
        let handle = tokio::spawn(async move { watcher.run(loop_token).await.unwrap() });
        Self {
            store,
            database,
            progress,
            token,
            handle,
        }
    }

    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("stops promptly")
            .unwrap();
        self.store.close().await;
    }

    /// Plain SQL on this watcher's database.
    pub fn db(&self) -> Db {
        Db::from(&self.store)
    }

    pub async fn insert(&self, ids: &[&str]) {
        self.db().insert_ids(ids).await;
    }

    pub async fn transitions(&self, id: &str) -> Vec<(Option<String>, String)> {
        self.db().transitions(id).await
    }

    pub async fn column(&self, id: &str, column: &'static str) -> Option<String> {
        let sql = match column {
            "watch" => "SELECT watch FROM issuances WHERE id = $1",
            "status" => "SELECT status FROM issuances WHERE id = $1",
            "last_error" => "SELECT last_error FROM issuances WHERE id = $1",
            other => panic!("no helper for column {other}"),
        };
        self.db().rows(sql, &[id]).await.pop()?.pop().flatten()
    }

    pub async fn flags(&self, id: &str) -> Vec<(String, bool)> {
        self.db()
            .rows(
                "SELECT kind, CASE WHEN cleared_at IS NULL THEN 'open' ELSE 'cleared' END
                 FROM flags WHERE issuance_id = $1 ORDER BY kind",
                &[id],
            )
            .await
            .into_iter()
            .map(|r| {
                let kind = r[0].clone().expect("kind is NOT NULL");
                (kind, r[1].as_deref() == Some("cleared"))
            })
            .collect()
    }

    /// Waits (up to 15 s) until the watcher's loop has turned: it is running,
    /// past its start-up.
    pub async fn turning(&self) {
        eventually("the watcher's loop to turn", async || {
            self.progress.last_loop().is_some()
        })
        .await;
    }

    /// Waits (up to 15 s) until `id` is in watch state `watch`.
    pub async fn wait_watch(&self, id: &str, watch: &str) {
        eventually(&format!("{id} to be {watch}"), || async {
            self.column(id, "watch").await.as_deref() == Some(watch)
        })
        .await;
    }
}

pub fn row(from: Option<&str>, to: &str) -> (Option<String>, String) {
    (from.map(str::to_owned), to.to_owned())
}

/// The whole daemon in-process (`app::run`: watcher, delivery workers,
/// background tasks), until stopped.
pub struct RunningApp {
    pub store: Store,
    /// The daemons alive on the database before this one started.
    owners_before: Vec<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::sync::oneshot::Receiver<anyhow::Result<()>>,
}

impl RunningApp {
    pub async fn start(settings: Settings) -> Self {
        let store = Store::open_migrated(&settings.database).await.unwrap();
        let owners_before = live_owners(&store).await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (finished, done) = tokio::sync::oneshot::channel();
        // Its own runtime on its own thread, as `main` gives it.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let result = runtime.block_on(issuance_watcher::app::run(settings, async move {
                let _ = stopped.await;
            }));
            let _ = finished.send(result);
        });
        Self {
            store,
            owners_before,
            stop: Some(stop),
            done,
        }
    }

    /// Waits (up to 15 s) until the daemon holds an ownership of its own on
    /// the database (a lock file beside SQLite's, a registered advisory lock
    /// on PostgreSQL): its loop is running.
    pub async fn running(&self) {
        wait_for(
            "the daemon's own ownership (its loop runs)",
            Duration::from_secs(15),
            async || {
                let live = live_owners(&self.store).await;
                match live.iter().any(|o| !self.owners_before.contains(o)) {
                    true => Ok(()),
                    false => Err(format!(
                        "live owners {live:?}, {:?} before",
                        self.owners_before
                    )),
                }
            },
        )
        .await;
    }

    /// Stops the daemon (as SIGTERM would) and returns its result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(15), self.done)
            .await
            .expect("stops promptly")
            .expect("the daemon's thread reports");
        self.store.close().await;
        result
    }

    pub async fn insert(&self, ids: &[&str]) {
        insert_ids(&self.store, ids).await;
    }

    /// The events of the outbox: (seq, webhook-id, type, issuance id).
    pub async fn events(&self) -> Vec<(i64, String, String, String)> {
        Db::from(&self.store)
            .rows(
                "SELECT CAST(seq AS TEXT), id, type, issuance_id FROM events ORDER BY seq",
                &[],
            )
            .await
            .into_iter()
            .map(|r| {
                let text = |i: usize| r[i].clone().unwrap_or_default();
                (text(0).parse().expect("seq"), text(1), text(2), text(3))
            })
            .collect()
    }
}

/// The owner ids of the daemons alive on the store's database.
async fn live_owners(store: &Store) -> Vec<String> {
    store
        .daemons()
        .await
        .live
        .into_iter()
        .map(|d| d.owner)
        .collect()
}

/// The recorded (from, to) statuses of `id`, in order.
pub async fn transitions(db: impl Into<Db>, id: &str) -> Vec<(Option<String>, String)> {
    db.into().transitions(id).await
}

/// The one integer `sql` answers (a count, a column of one row).
pub async fn number(db: impl Into<Db>, sql: &'static str) -> i64 {
    db.into().number(sql).await
}

/// Inserts ids as another program would: a plain `INSERT` into the public table.
pub async fn insert_ids(db: impl Into<Db>, ids: &[&str]) {
    db.into().insert_ids(ids).await
}
