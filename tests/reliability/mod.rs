//! Helpers shared by the reliability suites (crash safety, upstream faults,
//! concurrent writers): the daemon as a child process, its configuration, a
//! simulator whose issuances all settle within seconds of real time, and the
//! ground-truth check.
#![allow(dead_code)]

#[path = "../common/mod.rs"]
pub mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use common::TestSettings;
use common::daemon::Spawn;
use issuance_watcher::sim::cli::{DEMO_ACCESS_KEY, DEMO_SECRET_KEY};
use issuance_watcher::sim::{DepositTiming, DueOutcome, LifecycleConfig, SimConfig, SimHandle};
use issuance_watcher::store::Store;
use issuance_watcher::tools::verify::{self, Comparison};

#[allow(unused_imports)] // each suite uses some of them
pub use common::daemon::{BIN, migrate};

/// Lifecycles in real seconds (speed 1): WAITED 0.2–1 s, then FAIL (5%) or READY,
/// and READY ends as DONE (80%) or CANCELLED (15%) 0.5–4 s later. The due date is
/// a day away, so nothing waits for it: every issuance settles within ~5 s.
pub fn fast_lifecycle() -> LifecycleConfig {
    LifecycleConfig {
        waited_min: Duration::from_millis(200),
        waited_max: Duration::from_millis(1000),
        p_fail: 0.05,
        p_done: 0.80,
        p_cancel: 0.20,
        due_lead_days: 1,
        deposit: DepositTiming::Within {
            min: Duration::from_millis(500),
            max: Duration::from_millis(4000),
        },
        at_due: DueOutcome::Cancel,
        at_due_delay: Duration::ZERO,
    }
}

pub fn sim_config(seed: u64) -> SimConfig {
    SimConfig::default()
        .with_seed(seed)
        .with_lifecycle(fast_lifecycle())
}

/// The reliability suites' settings: the shipped defaults, the simulator's demo
/// credentials, a 1 s request timeout and polling paced for lifecycles of a few
/// seconds. The caller adds what its suite varies.
pub fn settings(dir: &Path, base_url: &str) -> TestSettings {
    let ms = Duration::from_millis;
    TestSettings::shipped(base_url, &db_path(dir))
        .credentials(DEMO_ACCESS_KEY, DEMO_SECRET_KEY)
        .with(|s| {
            s.api.timeout = ms(1000);
            s.api.connect_timeout = ms(500);
            s.api.requests_per_second = 300.0;
            s.database.busy_timeout = ms(5000);
            let p = &mut s.poll;
            p.interval = ms(200);
            p.max_interval = ms(500);
            p.backoff_max = ms(500);
            p.lease = ms(1500);
            p.startup_spread = ms(200);
            p.idle_recheck = ms(200);
        })
}

/// A daemon configuration file for the simulator at `base_url`, database in `dir`.
/// `api_extra` and `poll_extra` are TOML lines added to the `[api]` and `[poll]` tables.
pub fn write_config(dir: &Path, base_url: &str, api_extra: &str, poll_extra: &str) -> PathBuf {
    write_config_with(dir, base_url, 300, 16, api_extra, poll_extra)
}

/// [`write_config`] with a request rate and concurrency.
pub fn write_config_with(
    dir: &Path,
    base_url: &str,
    requests_per_second: u32,
    concurrency: u32,
    api_extra: &str,
    poll_extra: &str,
) -> PathBuf {
    let settings = settings(dir, base_url).with(|s| {
        s.api.requests_per_second = f64::from(requests_per_second);
        s.api.concurrency = concurrency as usize;
    });
    let mut config: toml::Table = toml::from_str(&settings.to_toml()).unwrap();
    for (table, extra) in [("api", api_extra), ("poll", poll_extra)] {
        let extra: toml::Table = toml::from_str(extra).expect("extra lines are TOML");
        config[table].as_table_mut().unwrap().extend(extra);
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("watcher.db")
}

/// A test-side handle on the database: its own pool, as another program would have.
pub async fn open_store(dir: &Path) -> Store {
    let settings = issuance_watcher::settings::DatabaseSettings {
        path: db_path(dir),
        busy_timeout: Duration::from_secs(5),
    };
    Store::open(&settings).await.unwrap()
}

/// `issuance-watcher run` as a child process, its stderr going to `log`.
pub fn spawn_daemon(config: &Path, log: &Path) -> Child {
    Spawn::new(config)
        .log(log)
        .rust_log("info")
        .spawn()
        .into_child()
}

pub async fn scalar(store: &Store, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Waits until no issuance is being watched (or `timeout` passes); returns whether it happened.
pub async fn wait_settled(store: &Store, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if scalar(
            store,
            "SELECT count(*) FROM issuances WHERE watch = 'active'",
        )
        .await
            == 0
        {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Compares the database with the simulator and asserts the history is right:
/// the `verify` definition (see `src/verify.rs`), plus every stored status equal
/// to the true final one and every issuance settled.
pub async fn assert_history_matches(store: &Store, sim: &SimHandle, ids: usize) -> Comparison {
    let recorded = verify::recorded_transitions(store.pool()).await.unwrap();
    let truth = sim.ground_truth();
    // Same wall clock in both processes: only millisecond rounding separates them.
    let c = verify::compare(&recorded, &truth, chrono::Duration::milliseconds(5));
    println!("ground truth check: {}", c.summary());
    assert_eq!(c.issuances, ids, "every issuance has a truth");
    assert!(c.exactly_once(), "{}\n{:#?}", c.summary(), c.examples);
    let finals = verify::final_statuses(&truth);
    let stored: Vec<(String, Option<String>, String)> =
        sqlx::query_as("SELECT CAST(id AS TEXT), status, watch FROM issuances")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(stored.len(), ids);
    let mut wrong = Vec::new();
    for (id, status, watch) in &stored {
        let truly = finals.get(id).map(|(_, s)| s.as_str());
        if status.as_deref() != truly || watch != "settled" {
            wrong.push(format!(
                "{id}: stored {status:?} ({watch}), truly {truly:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} issuances with a wrong final state, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    c
}

/// Lines of the daemon logs under `dir` (files named `daemon-*.log`) containing any of `needles`.
pub fn log_lines_matching(dir: &Path, needles: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("daemon-") && name.ends_with(".log")) {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        for line in text.lines() {
            let lower = line.to_lowercase();
            if needles.iter().any(|n| lower.contains(n)) {
                hits.push(format!("{name}: {line}"));
            }
        }
    }
    hits
}

/// Resident memory of this process in KiB (Linux).
pub fn vm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
