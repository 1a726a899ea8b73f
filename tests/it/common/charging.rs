//! For the charge tests: a simulator that keeps charges READY until told,
//! a scripted charge endpoint for answers the simulator never gives, and
//! reads of `charge_requests`.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use bunjang_sim::{LifecycleConfig, SimConfig, SimHandle};

use super::config::{ACCESS_KEY, SECRET_B64, TestSettings};
use super::db::Db;

/// A simulator on the test credentials, with one READY charge per key, every
/// request recorded, and charges that neither fail nor get paid by themselves.
pub async fn charge_sim() -> SimHandle {
    charge_sim_with(|_| {}).await
}

/// [`charge_sim`] with its configuration edited.
pub async fn charge_sim_with(edit: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut config = SimConfig {
        one_ready_per_key: true,
        record_requests: true,
        ..SimConfig::default()
            .with_credentials(ACCESS_KEY, SECRET_B64)
            .with_lifecycle(LifecycleConfig {
                waited_min: std::time::Duration::from_millis(200),
                waited_max: std::time::Duration::from_millis(400),
                p_fail: 0.0,
                p_done: 0.0,
                ..LifecycleConfig::default()
            })
    };
    edit(&mut config);
    super::sim_client::start(config).await
}

/// The charge POSTs the simulator received (answered or not).
pub fn posts(sim: &SimHandle) -> usize {
    sim.request_log()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v1/points/issuance")
        .count()
}

/// A config file for `base_url` and `dir/watcher.db` (fast test intervals).
pub fn config_file(
    base_url: &str,
    dir: &Path,
    edit: impl FnOnce(&mut issuance_watcher::settings::Settings),
) -> PathBuf {
    TestSettings::new(base_url, &dir.join("watcher.db"))
        .with(edit)
        .write_toml(&dir.join("config.toml"))
}

/// `charge_requests` rows: (id, amount, state, issuance_id, error_code).
pub async fn requests(
    db: impl Into<Db>,
) -> Vec<(i64, i64, String, Option<String>, Option<String>)> {
    db.into()
        .rows(
            "SELECT CAST(id AS TEXT), CAST(amount AS TEXT), state, issuance_id, error_code
             FROM charge_requests ORDER BY id",
            &[],
        )
        .await
        .into_iter()
        .map(|r| {
            let number = |i: usize| r[i].as_deref().and_then(|t| t.parse().ok()).unwrap();
            let state = r[2].clone().expect("state is NOT NULL");
            (number(0), number(1), state, r[3].clone(), r[4].clone())
        })
        .collect()
}

/// The database the config file at `config` names (SQLite's file or
/// PostgreSQL's), connected as another program would: whichever engine the
/// test runs on.
pub async fn db(config: &Path) -> Db {
    let settings = issuance_watcher::settings::Settings::load_with_env(Some(config), Vec::new())
        .expect("the test's config loads");
    Db::connect(&settings.database).await
}

pub async fn pool(db: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap()
}

/// A charge endpoint that answers every POST with one scripted answer and
/// counts them: for bodies the simulator never sends.
pub struct ScriptedCharge {
    pub base_url: String,
    posts: Arc<AtomicUsize>,
}

impl ScriptedCharge {
    pub async fn start(status: u16, body: &'static str) -> Self {
        let posts = Arc::new(AtomicUsize::new(0));
        let counted = posts.clone();
        let app = axum::Router::new().route(
            "/api/v1/points/issuance",
            axum::routing::post(move || {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    (
                        StatusCode::from_u16(status).unwrap(),
                        [("content-type", "application/json")],
                        body,
                    )
                        .into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base_url, posts }
    }

    pub fn posts(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }
}

pub use super::metrics::free_port;

/// `issuance-watcher --config CONFIG ARGS...`, off the async runtime.
pub async fn run(config: &Path, args: &[&str]) -> Output {
    let config = config.to_owned();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        super::cli(&config, &args)
    })
    .await
    .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A directory with a config for `base_url` and its database path.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub config: PathBuf,
}

impl Setup {
    /// Its database, whichever engine the test runs on: see [`db`].
    pub async fn db(&self) -> Db {
        db(&self.config).await
    }
}

pub fn setup(base_url: &str) -> Setup {
    setup_with(base_url, |_| {})
}

/// [`setup`] with settings edited.
pub fn setup_with(
    base_url: &str,
    edit: impl FnOnce(&mut issuance_watcher::settings::Settings),
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watcher.db");
    let config = config_file(base_url, dir.path(), edit);
    // Only `run` and `migrate` create a database: `charge` refuses a missing one.
    super::daemon::migrate(&config);
    Setup { dir, db, config }
}

pub async fn issuance_count(db: impl Into<Db>) -> i64 {
    db.into().number("SELECT count(*) FROM issuances").await
}
