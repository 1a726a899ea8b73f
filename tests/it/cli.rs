//! The `issuance-watcher` binary as users run it.

use crate::common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, command};
use common::{Reply, ScriptedApi, TestSettings, assert_no_secret};

fn config(dir: &std::path::Path, base_url: &str) -> std::path::PathBuf {
    TestSettings::new(base_url, &dir.join("db").join("watcher.db"))
        .with(|s| {
            s.api.access_key = "cli-test".into();
            s.poll.startup_spread = Duration::from_millis(10);
        })
        .write_toml(&dir.join("config.toml"))
}

fn cli(config: &std::path::Path, args: &[&str]) -> Output {
    common::cli(config, args)
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
    assert_no_secret("check-config's output", &text);
    assert_no_secret("check-config's stderr", &stderr(&out));
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
    common::daemon::migrate(&path);
    let out = cli(&path, &["add", "111", "222", "111"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 added"), "{}", stdout(&out));
    let mut child = command(&path)
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
    common::daemon::migrate(&path);
    assert!(cli(&path, &["add", "555"]).status.success());
    let daemon = Daemon::start(&path);
    common::eventually("the poll", || async { api.requests_for("555") >= 1 }).await;
    common::eventually("the transition logged", || async {
        let log = daemon.log();
        log.contains("transition") && log.contains("555")
    })
    .await;
    let started = Instant::now();
    let log = daemon.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(log.contains("transition") && log.contains("555"), "{log}");
    assert_no_secret("the daemon's log", &log);
    let shown: serde_json::Value =
        serde_json::from_str(&stdout(&cli(&path, &["show", "555", "--json"]))).unwrap();
    assert_eq!(shown["issuance"]["status"], "DONE");
    assert_eq!(shown["transitions"][0]["to_status"], "DONE");
}

#[tokio::test]
async fn a_daemon_and_migrate_creating_the_same_new_database_both_succeed() {
    // Switching a new file to WAL and migrating it are the two steps that used to
    // collide ("database is locked", "table already exists") when two programs
    // created the same database at the same moment. `run` and `migrate` are the
    // two commands that create one.
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let path = config(dir.path(), "http://127.0.0.1:9");
        let mut daemon = Daemon::start(&path);
        let migrated = cli(&path, &["migrate"]);
        assert!(
            migrated.status.success(),
            "round {round}: {}",
            stderr(&migrated)
        );
        // Both collide, if at all, before the daemon logs its start.
        daemon.started(Duration::from_secs(10)).await;
        assert!(daemon.running(), "round {round}: the daemon exited");
        daemon.kill9();
    }
}

/// A finance user thinks in KST: `list`, `flags` and `show` give the deadline
/// in `api.timezone` beside UTC and amounts grouped by thousands, and a table
/// stays aligned whatever the length of an id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_are_shown_in_kst_beside_utc_and_long_ids_keep_the_columns_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), "http://127.0.0.1:9");
    common::daemon::migrate(&path);
    let long_id = "an-issuance-id-of-forty-four-characters-long";
    let pool = common::charging::pool(&dir.path().join("db").join("watcher.db")).await;
    for id in ["7", long_id] {
        // Settled rows are never polled; the flag is as the daemon writes it.
        sqlx::query(
            "INSERT INTO issuances (id, status, amount, vbank_due_at, watch) \
             VALUES (?1, 'READY', 1234567, '2026-12-06T14:59:59.000Z', 'active')",
        )
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO flags (issuance_id, kind, raised_at, lead_ms) \
             VALUES (?1, 'DUE_SOON', '2026-12-06T12:00:00.000Z', 10800000)",
        )
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    for command in [&["list"][..], &["flags"][..]] {
        let out = cli(&path, command);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{command:?}: {text}");
        for row in &lines[1..] {
            assert!(
                row.contains("2026-12-06 23:59:59 KST") && row.contains("2026-12-06T14:59:59.000Z"),
                "{command:?}: {text}"
            );
        }
        // Every column starts where its header does.
        let column = |line: &str, what: &str| line.find(what).unwrap();
        assert_eq!(
            column(lines[0], "STATUS"),
            column(lines[1], "READY"),
            "{text}"
        );
        assert_eq!(
            column(lines[1], "READY"),
            column(lines[2], "READY"),
            "{text}"
        );
        assert_eq!(
            column(lines[0], "DUE (UTC)"),
            column(lines[2], "2026-12-06T"),
            "{text}"
        );
    }
    assert!(stdout(&cli(&path, &["list"])).contains("1,234,567"));
    let shown = stdout(&cli(&path, &["show", "7"]));
    assert!(
        shown.contains("amount                 1,234,567 KRW\n")
            && shown.contains("vbank_due_local        2026-12-06 23:59:59 KST\n"),
        "{shown}"
    );
}
