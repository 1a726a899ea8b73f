//! `issuance-watcher status [--json]` against a real daemon on the simulator:
//! what a person on the host sees while the daemon runs, after it stops, and
//! after it is killed; and that it never creates a database.

use crate::common;

use std::path::Path;
use std::time::Duration;

use bunjang_sim::SimConfig;
use bunjang_sim::cli::{DEMO_ACCESS_KEY, DEMO_SECRET_KEY};
use common::TestSettings;
use common::daemon::{Daemon, cli};
use common::running::poll;
use common::sim_client::{self, Client};
use reqwest::Method;
use serde_json::{Value, json};

fn status_json(config: &Path) -> Value {
    let out = cli(config, &["status", "--json"]);
    assert!(
        out.status.success(),
        "status --json: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json prints JSON")
}

fn status_text(config: &Path) -> String {
    let out = cli(config, &["status"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `status --json` every 100 ms until `done` holds of what it prints;
/// fails after 20 s with the last one.
async fn until(config: &Path, what: &str, done: impl Fn(&Value) -> bool) {
    let every = Duration::from_millis(100);
    let found = poll(what, Duration::from_secs(20), every, async || {
        let status = status_json(config);
        match done(&status) {
            true => Ok(()),
            false => Err(status.to_string()),
        }
    })
    .await;
    found.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_live_daemon_its_work_and_its_errors_then_a_dead_one() {
    let sim = sim_client::start(SimConfig::default()).await;
    let control = Client::new(&sim);
    let dir = tempfile::tempdir().unwrap();
    let config = TestSettings::new(&sim.base_url(), &dir.path().join("watcher.db"))
        .credentials(DEMO_ACCESS_KEY, DEMO_SECRET_KEY)
        .write_toml(&dir.path().join("config.toml"));

    // No database yet: an error naming the path, and none is created.
    let out = cli(&config, &["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no database at") && err.contains("watcher.db"),
        "{err}"
    );
    assert!(!dir.path().join("watcher.db").exists());

    let ids = control.seed(2, 5000).await;
    common::daemon::migrate(&config);
    let added = cli(&config, &["add", &ids[0], &ids[1]]);
    assert!(added.status.success(), "{added:?}");
    let before = status_json(&config);
    assert_eq!(before["daemon"]["alive"], false, "{before}");
    assert_eq!(before["active"]["by_status"], json!([["UNSEEN", 2]]));

    let mut daemon = Daemon::start(&config);
    until(
        &config,
        "status sees the daemon alive with two answered issuances",
        |s| {
            s["daemon"]["alive"] == true
                && s["active"]["total"] == 2
                && s["active"]["by_status"]
                    .as_array()
                    .is_some_and(|a| a.iter().all(|p| p[0] != "UNSEEN"))
                && s["last_successful_poll"]["at"].is_string()
        },
    )
    .await;
    let alive = status_json(&config);
    assert_eq!(alive["daemon"]["live"][0]["pid"], daemon.pid(), "{alive}");
    assert!(
        alive["last_successful_poll"]["seconds_ago"]
            .as_i64()
            .unwrap()
            < 60
    );
    assert_eq!(alive["errors_last_hour"]["issuances"], 0, "{alive}");
    let text = status_text(&config);
    assert!(
        text.contains(&format!(
            "daemon                alive (pid {}",
            daemon.pid()
        )),
        "{text}"
    );
    assert!(text.contains("errors (last hour)    none"), "{text}");

    // The API fails every lookup: the errors show, by error text.
    let put = control
        .control(
            Method::PUT,
            "/_sim/faults",
            json!({"server_error": {"rate": 1.0}}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    until(&config, "status shows both issuances' failed polls", |s| {
        s["errors_last_hour"]["issuances"] == 2
    })
    .await;
    let failing = status_json(&config);
    let error = failing["errors_last_hour"]["by_error"][0]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!error.is_empty(), "{failing}");
    assert!(status_text(&config).contains(&error));

    // Killed: no process holds the lock any more, whatever the database says.
    daemon.kill9();
    let dead = status_json(&config);
    assert_eq!(dead["daemon"]["alive"], false, "{dead}");
    assert_eq!(dead["daemon"]["dead"], 1, "{dead}");
    assert!(status_text(&config).contains("NOT RUNNING"));
}
