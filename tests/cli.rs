//! The `issuance-watcher` binary as users run it.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Reply, SECRET_B64, ScriptedApi};

const BIN: &str = env!("CARGO_BIN_EXE_issuance-watcher");

fn config(dir: &std::path::Path, base_url: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "[api]\nbase_url = \"{base_url}\"\naccess_key = \"cli-test\"\nsecret_key = \"{SECRET_B64}\"\n\
         [database]\npath = \"{}\"\n[poll]\ninterval = \"50ms\"\nidle_recheck = \"100ms\"\nstartup_spread = \"10ms\"\n",
        dir.join("db").join("watcher.db").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn cli(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_config_prints_effective_settings_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), "http://127.0.0.1:9");
    let out = cli(&path, &["check-config"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("access_key = \"cli-test\"") && text.contains("[REDACTED]"),
        "{text}"
    );
    assert!(!text.contains(SECRET_B64) && !stderr(&out).contains(SECRET_B64));
}

#[test]
fn a_broken_config_is_one_clear_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[poll]\ninterval = \"fast\"\n").unwrap();
    let out = cli(&path, &["check-config"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error:") && err.contains("poll.interval"),
        "{err}"
    );
    std::fs::write(&path, "this is [not toml").unwrap();
    let out = cli(&path, &["run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn add_list_and_show_work_on_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), "http://127.0.0.1:9");
    let out = cli(&path, &["add", "111", "222", "111"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 added"), "{}", stdout(&out));
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .args(["add", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"333\n\n444\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let listed: serde_json::Value =
        serde_json::from_str(&stdout(&cli(&path, &["list", "--json"]))).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["111", "222", "333", "444"]);
    let shown: serde_json::Value =
        serde_json::from_str(&stdout(&cli(&path, &["show", "222", "--json"]))).unwrap();
    assert_eq!(shown["issuance"]["watch"], "active");
    assert_eq!(shown["transitions"], serde_json::json!([]));
    let missing = cli(&path, &["show", "999"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("not in the database"));
}

#[tokio::test]
async fn run_watches_and_exits_zero_on_sigterm() {
    let api = ScriptedApi::start().await;
    api.set("555", Reply::issuance("555", "DONE"));
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), &api.base_url());
    assert!(cli(&path, &["add", "555"]).status.success());
    let child = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("run")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::eventually("the poll", || async { api.requests_for("555") >= 1 }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits")
        .unwrap();
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let log = stderr(&out);
    assert!(
        log.contains("transition") && log.contains("555") && !log.contains(SECRET_B64),
        "{log}"
    );
    let shown: serde_json::Value =
        serde_json::from_str(&stdout(&cli(&path, &["show", "555", "--json"]))).unwrap();
    assert_eq!(shown["issuance"]["status"], "DONE");
    assert_eq!(shown["transitions"][0]["to_status"], "DONE");
}

#[tokio::test]
async fn a_daemon_and_a_writer_creating_the_same_new_database_both_succeed() {
    // Switching a new file to WAL and migrating it are the two steps that used to
    // collide ("database is locked", "table already exists") when two programs
    // created the same database at the same moment.
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let path = config(dir.path(), "http://127.0.0.1:9");
        let mut daemon = tokio::process::Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .arg("run")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let added = cli(&path, &["add", "1"]);
        assert!(added.status.success(), "round {round}: {}", stderr(&added));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            daemon.try_wait().unwrap().is_none(),
            "round {round}: the daemon exited"
        );
        daemon.kill().await.unwrap();
        let out = daemon.wait_with_output().await.unwrap();
        assert!(
            stderr(&out).contains("started"),
            "round {round}: {}",
            stderr(&out)
        );
    }
}
