//! `simulate --speed N` with `run`: a real-time watcher against an accelerated
//! simulator would stall silently, so `run` refuses the combination with a
//! clear message, and `run --follow-simulator-clock` runs on the simulator's
//! clock instead (its stamps are then simulated time, hours ahead of the wall
//! clock after seconds).

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bunjang_sim::SimConfig;
use common::daemon::command;
use common::running::poll;
use common::sim_client::start as start_sim;

const LOCAL_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/local.toml");

fn local(base_url: &str, db: &Path) -> Command {
    let mut cmd = command(Path::new(LOCAL_CONFIG));
    cmd.env("ISSUANCE_WATCHER__API__BASE_URL", base_url)
        .env("ISSUANCE_WATCHER__DATABASE__PATH", db)
        .env("ISSUANCE_WATCHER__HTTP__LISTEN", "")
        .stdin(Stdio::null());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_an_accelerated_simulator_unless_told_to_follow_its_clock() {
    let sim = start_sim(SimConfig::default().with_speed(3600.0)).await;
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watcher.db");

    let started = Instant::now();
    let refused = local(&base, &db).arg("run").output().unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("3600x") && err.contains("--follow-simulator-clock"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    let ids = sim.try_seed(1, None).unwrap();
    let migrated = local(&base, &db).arg("migrate").output().unwrap();
    assert!(migrated.status.success(), "{migrated:?}");
    let added = local(&base, &db).arg("add").arg(&ids[0]).output().unwrap();
    assert!(added.status.success());
    // Half a real second is half a simulated hour: by the time the watcher
    // asks, the simulator's clock is well ahead of the wall clock, however
    // fast the steps above ran: time let pass on purpose.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = std::fs::File::create(dir.path().join("run.log")).unwrap();
    let mut daemon = local(&base, &db)
        .args(["run", "--follow-simulator-clock"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let every = Duration::from_millis(100);
    let polled = poll("a first poll", Duration::from_secs(20), every, async || {
        let out = local(&base, &db)
            .args(["show", &ids[0], "--json"])
            .output()
            .unwrap();
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        match shown["issuance"]["last_polled_at"].as_str() {
            Some(at) => Ok(chrono::DateTime::parse_from_rfc3339(at).unwrap()),
            None => Err(shown.to_string()),
        }
    })
    .await;
    let polled_at = polled.unwrap_or_else(|e| {
        let _ = daemon.kill();
        let _ = daemon.wait();
        panic!(
            "{e}; its log:\n{}",
            std::fs::read_to_string(dir.path().join("run.log")).unwrap()
        )
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
    let ahead = polled_at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        ahead > chrono::Duration::minutes(5),
        "the watcher's stamps should be on the simulator's clock (minutes ahead after a fraction of a second), were {ahead} ahead"
    );
    sim.shutdown().await;
}

/// At 3600x a lease of `poll.lease` on the simulated clock would end a
/// fraction of a real millisecond after the claim, before any answer is back:
/// every result would be dropped as stale and the charges would stay UNSEEN.
/// The lease covers real time, so every charge is seen, and `status` reports
/// no unhealthy daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_3600x_clock_sees_every_charge_and_drops_no_results() {
    let sim = start_sim(SimConfig::default().with_speed(3600.0)).await;
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watcher.db");
    let ids = sim.try_seed(5, None).unwrap();
    let migrated = local(&base, &db).arg("migrate").output().unwrap();
    assert!(migrated.status.success(), "{migrated:?}");
    let added = local(&base, &db).arg("add").args(&ids).output().unwrap();
    assert!(added.status.success(), "{added:?}");
    let log_path = dir.path().join("run.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut daemon = local(&base, &db)
        .args(["run", "--follow-simulator-clock"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let listed = common::running::wait_for(
        "every charge answered at least once",
        Duration::from_secs(20),
        || async {
            let out = local(&base, &db).args(["list", "--json"]).output().unwrap();
            let rows: Vec<serde_json::Value> =
                serde_json::from_slice(&out.stdout).unwrap_or_default();
            let seen = rows.iter().filter(|r| r["status"].is_string()).count();
            (seen == ids.len())
                .then_some(rows)
                .ok_or(format!("{seen} of 5 seen"))
        },
    )
    .await;
    assert!(
        listed.iter().all(|r| r["polls"].as_i64() > Some(0)),
        "{listed:?}"
    );
    // Past one judging window of stale results (time let pass on purpose),
    // the daemon's own verdict.
    tokio::time::sleep(issuance_watcher::ops::stale::WINDOW + Duration::from_secs(1)).await;
    let status = local(&base, &db).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    let _ = daemon.kill();
    let _ = daemon.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!text.contains("UNHEALTHY"), "{text}\n{log}");
    assert!(!log.contains("dropped as stale"), "{log}");
    sim.shutdown().await;
}
