//! Rough edges a newcomer hit with the command line, each pinned down: a closed
//! stdout is a normal end, filters refuse values they do not know, colours only
//! on a terminal, `migrate` says what it did. Settings come from the
//! environment alone (`ISSUANCE_WATCHER__…`), as a user trying things would set them.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::BIN;
use common::daemon::{finish_within, first_line};
use common::running::{EVERY, poll_blocking};

/// The binary with the database at `db`, a clean environment for logs, and no
/// configuration file (the built-in defaults, then these variables).
fn watcher(db: &Path) -> Command {
    // An empty environment, as the kit's children get: no RUST_LOG, NO_COLOR,
    // JOURNAL_STREAM or ISSUANCE_WATCHER__… of the developer's.
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("ISSUANCE_WATCHER__DATABASE__PATH", db);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A database holding `n` watched ids.
fn database_with(dir: &Path, n: usize) -> std::path::PathBuf {
    let db = dir.join("watcher.db");
    let ids: Vec<String> = (0..n).map(|i| format!("{}", 100_000 + i)).collect();
    let out = run(watcher(&db).arg("migrate"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(watcher(&db).arg("add").args(&ids));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{n} added, 0 already watched\n"));
    db
}

#[test]
fn list_into_a_reader_that_stops_early_ends_quietly_with_success() {
    let dir = tempfile::tempdir().unwrap();
    // Far more than a pipe buffer (64 KiB), so the writes really hit the closed pipe.
    let db = database_with(dir.path(), 3000);
    for args in [
        &["list", "--limit", "5000"][..],
        &["list", "--limit", "5000", "--json"],
    ] {
        // The reader is gone after the first line: `| head -1`.
        let (child, first) = first_line(watcher(&db).args(args), Stdio::piped());
        assert!(!first.is_empty());
        let out = finish_within(child, "list", Duration::from_secs(10));
        let err = text(&out.stderr);
        assert!(
            out.status.success(),
            "{args:?}: exit {:?}, stderr {err}",
            out.status
        );
        assert!(
            !err.contains("error") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn list_refuses_a_status_it_does_not_know_and_takes_known_ones_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_with(dir.path(), 2);
    for bogus in ["BOGUS", "settled"] {
        let out = run(watcher(&db).args(["list", "--status", bogus]));
        assert_eq!(out.status.code(), Some(2), "--status {bogus} was accepted");
        let err = text(&out.stderr);
        assert!(
            err.contains("WAITED") && err.contains("UNSEEN"),
            "names the allowed values: {err}"
        );
    }
    let out = run(watcher(&db).args(["list", "--status", "unseen", "--json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(2));
    let out = run(watcher(&db).args(["list", "--status", "DONE", "--json"]));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(0));
}

/// A usage error exits 2 (failures exit 1) with one `error:` line naming the
/// argument and the value it refused, as the README says, and touches nothing:
/// the command line is checked before any file is read.
fn assert_usage_error(args: &[&str], names: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watcher.db");
    let out = run(watcher(&db).args(args));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{args:?}: {err}");
    assert!(err.starts_with("error:"), "{args:?}: {err}");
    for name in names {
        assert!(errors[0].contains(name), "{args:?}: {name:?} not in {err}");
    }
    assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    assert!(!db.exists(), "{args:?} created a database");
}

#[test]
fn events_after_abc_is_a_usage_error_exit_2() {
    assert_usage_error(&["events", "--after", "abc"], &["--after", "'abc'"]);
}

#[test]
fn list_limit_0_is_a_usage_error_exit_2() {
    assert_usage_error(&["list", "--limit", "0"], &["--limit", "'0'", "at least 1"]);
    assert_usage_error(
        &["charges", "--limit", "0"],
        &["--limit", "'0'", "at least 1"],
    );
    assert_usage_error(
        &["events", "--limit", "0"],
        &["--limit", "'0'", "at least 1"],
    );
}

#[test]
fn list_status_paid_is_a_usage_error_exit_2() {
    assert_usage_error(&["list", "--status", "paid"], &["--status", "'paid'"]);
}

#[test]
fn list_says_when_it_stopped_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_with(dir.path(), 3);
    let out = run(watcher(&db).args(["list", "--limit", "2"]));
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).lines().count(),
        3,
        "a header and two rows"
    );
    assert!(
        text(&out.stderr).contains("--limit 2"),
        "{}",
        text(&out.stderr)
    );
    let out = run(watcher(&db).args(["list", "--limit", "3"]));
    assert!(
        !text(&out.stderr).contains("--limit"),
        "all rows shown: no note"
    );
}

#[test]
fn migrate_says_whether_it_created_the_database_or_found_it_current() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    let out = run(watcher(&db).arg("migrate"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("created"),
        "{}",
        text(&out.stdout)
    );
    let out = run(watcher(&db).arg("migrate"));
    assert!(
        text(&out.stdout).contains("is up to date"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn logs_written_to_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watcher.db");
    let log = std::fs::File::create(dir.path().join("run.err")).unwrap();
    // A daemon whose API is unreachable: it starts, logs, and keeps trying.
    let mut child = watcher(&db)
        .arg("run")
        .env("ISSUANCE_WATCHER__API__BASE_URL", "http://127.0.0.1:9")
        .env("ISSUANCE_WATCHER__API__ACCESS_KEY", "newcomer")
        .env("ISSUANCE_WATCHER__API__SECRET_KEY", common::SECRET_B64)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let path = dir.path().join("run.err");
    let started = poll_blocking(
        "the daemon to log its start",
        Duration::from_secs(20),
        EVERY,
        || {
            let log = std::fs::read_to_string(&path).unwrap();
            match log.contains("started") {
                true => Ok(()),
                false => Err(log),
            }
        },
    );
    if let Err(e) = started {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{e}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let logged = std::fs::read_to_string(&path).unwrap();
    assert!(
        !logged.contains('\u{1b}'),
        "escape codes in a log file:\n{logged}"
    );
}

/// The keys of the first JSON object nested `depth` levels deep in pretty output, in order.
fn keys_at(pretty: &str, indent: usize) -> Vec<String> {
    let prefix = " ".repeat(indent);
    pretty
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{prefix}\"")))
        .take_while(|l| {
            l.starts_with(&format!("{prefix}\"")) || l.starts_with(&format!("{prefix} "))
        })
        .filter(|l| l.starts_with(&format!("{prefix}\"")))
        .filter_map(|l| l.trim().split('"').nth(1).map(str::to_owned))
        .collect()
}

#[test]
fn show_and_list_json_give_an_issuance_its_keys_in_the_same_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_with(dir.path(), 1);
    let list = text(&run(watcher(&db).args(["list", "--json"])).stdout);
    let show = text(&run(watcher(&db).args(["show", "100000", "--json"])).stdout);
    // `[ {` puts a row's keys at 4 spaces; `{ "issuance": {` puts them at 4 too.
    let listed = keys_at(&list, 4);
    let shown = keys_at(&show, 4);
    assert!(listed.len() > 10 && listed[0] == "id", "{listed:?}");
    assert_eq!(shown, listed);
}
