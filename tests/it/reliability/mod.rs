//! Helpers shared by the reliability suites (crash safety, upstream faults,
//! concurrent writers): the daemon as a child process, its configuration, a
//! simulator whose issuances all settle within seconds of real time, the
//! ground-truth check, the bound on what polling saw, and the size of the long runs.
#![allow(dead_code)]

pub(crate) use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use bunjang_sim::cli::{DEMO_ACCESS_KEY, DEMO_SECRET_KEY};
use bunjang_sim::{
    DepositTiming, DueOutcome, LifecycleConfig, RequestRecord, SimConfig, SimHandle, TruthEvent,
};
use chrono::{DateTime, Utc};
use common::TestSettings;
use common::daemon::Spawn;
use common::db::Db;
use issuance_watcher::settings::DatabaseSettings;
use issuance_watcher::store::{Access, Store};
use issuance_watcher::tools::verify::{self, Comparison, RecordedTransition};

#[allow(unused_imports)] // each suite uses some of them
pub use common::daemon::{BIN, migrate};
#[allow(unused_imports)]
pub use common::sim_client::start as start_sim;

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

/// The database the suites' daemons use: `dir/watcher.db`, or the test's
/// PostgreSQL database when it runs on PostgreSQL.
pub fn database(dir: &Path) -> DatabaseSettings {
    match common::engine::postgres_url() {
        Some(url) => DatabaseSettings::postgres_at(&url).expect("the test database's URL is valid"),
        None => DatabaseSettings::sqlite(db_path(dir)),
    }
}

/// One connection of its own to the SQLite file, as another program would
/// open it (SQLite's: its write lock and WAL are the file's).
pub async fn other_program(dir: &Path) -> sqlx::SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db_path(dir))
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap()
}

/// A test-side handle on the database (migrated already): its own pool, as
/// another program would have.
pub async fn open_store(dir: &Path) -> Store {
    let settings = database(dir);
    match settings.postgres() {
        Some(_) => Store::open_for(&settings, Access::Write).await.unwrap(),
        None => Store::open(&settings).await.unwrap(),
    }
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
    Db::from(store).number(sql).await
}

/// Every row of `transitions`, in `seq` order, whichever engine holds them
/// (`observed_at` as the SQLite engine writes it: RFC 3339 UTC text).
pub async fn recorded_transitions(store: &Store) -> Vec<RecordedTransition> {
    let Some(pg) = store.pg_pool() else {
        return verify::recorded_transitions(store.pool()).await.unwrap();
    };
    let rows: Vec<(String, Option<String>, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT issuance_id, from_status, to_status, observed_at FROM transitions ORDER BY seq",
    )
    .fetch_all(pg)
    .await
    .unwrap();
    rows.into_iter()
        .map(
            |(issuance_id, from_status, to_status, observed_at)| RecordedTransition {
                issuance_id,
                from_status,
                to_status,
                observed_at: issuance_watcher::domain::timefmt::to_db(observed_at),
            },
        )
        .collect()
}

/// Waits (up to `limit`, looking every 200 ms) until no issuance is being
/// watched; the error says how many still were. The caller stops its daemons
/// before it fails the test with it.
pub async fn wait_settled(store: &Store, limit: Duration) -> Result<(), String> {
    let every = Duration::from_millis(200);
    common::wait::poll(
        "every issuance to settle",
        limit,
        every,
        async || match scalar(
            store,
            "SELECT count(*) FROM issuances WHERE watch = 'active'",
        )
        .await
        {
            0 => Ok(()),
            active => Err(format!("{active} issuances still active")),
        },
    )
    .await
}

/// Compares the database with the simulator and asserts the history is right:
/// the `verify` definition (see `src/verify.rs`), plus every stored status equal
/// to the true final one and every issuance settled.
pub async fn assert_history_matches(store: &Store, sim: &SimHandle, ids: usize) -> Comparison {
    let recorded = recorded_transitions(store).await;
    let truth = sim.ground_truth();
    // Same wall clock in both processes: only millisecond rounding separates them.
    let c = verify::compare(&recorded, &truth, chrono::Duration::milliseconds(5));
    println!("ground truth check: {}", c.summary());
    assert_eq!(c.issuances, ids, "every issuance has a truth");
    assert!(c.exactly_once(), "{}\n{:#?}", c.summary(), c.examples);
    let finals = verify::final_statuses(&truth);
    let stored = Db::from(store)
        .rows("SELECT CAST(id AS TEXT), status, watch FROM issuances", &[])
        .await;
    assert_eq!(stored.len(), ids);
    let mut wrong = Vec::new();
    for row in &stored {
        let (id, status, watch) = (row[0].as_deref().unwrap_or_default(), &row[1], &row[2]);
        let truly = finals.get(id).map(|(_, s)| s.as_str());
        if status.as_deref() != truly || watch.as_deref() != Some("settled") {
            wrong.push(format!(
                "{id}: stored {status:?} ({watch:?}), truly {truly:?}"
            ));
        }
    }
    assert_none(&wrong, "issuances with a wrong final state");
    c
}

/// Fails, naming how many and the first ten, unless `found` is empty.
pub fn assert_none<T: std::fmt::Debug>(found: &[T], what: &str) {
    assert!(
        found.is_empty(),
        "{} {what}, e.g. {:#?}",
        found.len(),
        &found[..found.len().min(10)]
    );
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

/// How big the long (`#[ignore]`d) runs are: `LONG_RUN_SCALE` times the sizes
/// their docs give (default 1, the README's figures). CI runs them smaller, to
/// fit its time budget; see `.ci/run`.
pub fn long_run_scale() -> f64 {
    let scale = match std::env::var("LONG_RUN_SCALE") {
        Ok(text) => text
            .trim()
            .parse::<f64>()
            .unwrap_or_else(|e| panic!("LONG_RUN_SCALE={text:?}: {e}")),
        Err(_) => 1.0,
    };
    assert!(
        scale.is_finite() && scale > 0.0,
        "LONG_RUN_SCALE must be positive, not {scale}"
    );
    println!("long run at scale {scale} (LONG_RUN_SCALE)");
    scale
}

/// `n` scaled, at least `min`.
pub fn scaled(n: usize, scale: f64, min: usize) -> usize {
    ((n as f64 * scale).round() as usize).max(min)
}

const LOOKUP_PREFIX: &str = "/api/v1/points/issuance/";

/// How much later than a lookup's arrival the simulator may read the status it
/// serves (middleware, token check, a loaded machine): a change of that issuance
/// this close after the arrival makes the served status ambiguous.
const SERVE_SLACK: chrono::Duration = chrono::Duration::milliseconds(250);
/// Truth instants have millisecond resolution.
const TRUTH_RESOLUTION: chrono::Duration = chrono::Duration::milliseconds(5);

/// The bound on what polling saw: statuses the API served in a 200 and what
/// became of them (see [`served_statuses`]).
#[derive(Debug, Default)]
pub struct Served {
    /// 200 lookups whose served status is known from the truth.
    pub answers: usize,
    /// Of those, answered within the kill margin of a kill: their result may be lost.
    pub near_kill: usize,
    /// Near a kill and their status never recorded (lost to the kill, then replaced).
    pub lost_to_kills: usize,
    /// The longest a lost answer preceded its kill: how long results stay at risk.
    pub longest_lost_before_kill: Option<chrono::Duration>,
    /// Answers left out because the issuance changed status as it was served.
    pub ambiguous: usize,
    /// Served well away from any kill yet never recorded: a lost transition.
    pub unrecorded: Vec<String>,
}

/// How close to a kill an answer may be lost.
#[derive(Debug, Clone, Copy)]
pub struct KillMargin {
    /// A kill this long after an answer may have come before its commit.
    pub after: chrono::Duration,
    /// A request the killed daemon had sent may still arrive this long after the kill.
    pub before: chrono::Duration,
}

/// Every status the API served in a 200 to a lookup must be recorded, unless a
/// kill could have lost the answer (see [`KillMargin`]). This is what catches a lost intermediate transition (say
/// READY between WAITED and DONE) that [`verify::compare`] must count as
/// unobservable: there, READY might have come and gone between two polls; here
/// a poll is known to have seen it.
///
/// The served status is the truth's at the request's arrival (the simulator
/// runs on the wall clock, `speed` 1), so `requests` must come from a simulator
/// with `record_requests` on; `kills` are real instants. The recorded rows are
/// matched to the truth in order, as `compare` does.
pub fn served_statuses(
    recorded: &[RecordedTransition],
    truth: &[TruthEvent],
    requests: &[RequestRecord],
    kills: &[DateTime<Utc>],
    margin: KillMargin,
) -> Served {
    let mut events: HashMap<&str, Vec<&TruthEvent>> = HashMap::new();
    for event in truth {
        events.entry(&event.issuance_id).or_default().push(event);
    }
    for list in events.values_mut() {
        list.sort_by_key(|e| e.at);
    }
    let mut rows: HashMap<&str, Vec<&str>> = HashMap::new();
    for row in recorded {
        rows.entry(&row.issuance_id)
            .or_default()
            .push(&row.to_status);
    }
    // Per issuance, which true changes a recorded row matches.
    let matched: HashMap<&str, Vec<bool>> = events
        .iter()
        .map(|(id, list)| {
            let mut hit = vec![false; list.len()];
            let mut next = 0;
            for to in rows.get(id).into_iter().flatten() {
                if let Some(offset) = list[next..].iter().position(|e| e.to.as_str() == *to) {
                    hit[next + offset] = true;
                    next += offset + 1;
                }
            }
            (*id, hit)
        })
        .collect();
    let mut kills = kills.to_vec();
    kills.sort();
    let mut served = Served::default();
    for request in requests {
        let Some(id) = request.path.strip_prefix(LOOKUP_PREFIX) else {
            continue;
        };
        if request.method != "GET" || request.status != 200 {
            continue;
        }
        let Some(list) = events.get(id) else { continue };
        let at = request.at;
        if list
            .iter()
            .any(|e| e.at > at - TRUTH_RESOLUTION && e.at <= at + SERVE_SLACK)
        {
            served.ambiguous += 1;
            continue;
        }
        let Some(index) = list.iter().rposition(|e| e.at <= at) else {
            continue;
        };
        served.answers += 1;
        let next_kill = kills.get(kills.partition_point(|k| *k < at - margin.before));
        let near_kill = next_kill.filter(|k| **k <= at + margin.after);
        let recorded = matched[id][index];
        if let Some(kill) = near_kill {
            served.near_kill += 1;
            if !recorded {
                served.lost_to_kills += 1;
                let before_kill = *kill - at;
                served.longest_lost_before_kill =
                    served.longest_lost_before_kill.max(Some(before_kill));
            }
        } else if !recorded {
            served.unrecorded.push(format!(
                "{id}: served {} at {at} (true since {}), never recorded; recorded {:?}",
                list[index].to.as_str(),
                list[index].at,
                rows.get(id).cloned().unwrap_or_default()
            ));
        }
    }
    served
}
