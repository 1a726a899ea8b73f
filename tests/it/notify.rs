//! The daemon speaks the systemd notification protocol: the test owns the
//! `NOTIFY_SOCKET` and reads what the real binary sends.

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, Spawn, cli};
use common::running::wait_for_blocking;
use common::{ScriptedApi, TestSettings, assert_no_secret};

fn config(dir: &Path, base_url: &str, db: &Path) -> std::path::PathBuf {
    TestSettings::new(base_url, db)
        .with(|s| {
            s.api.access_key = "notify-test".into();
            s.poll.startup_spread = Duration::from_millis(10);
        })
        .write_toml(&dir.join("config.toml"))
}

/// A message as it arrived on the socket: when, and what.
type Message = (Instant, String);

/// Binds a datagram socket in `dir` and forwards every message it receives,
/// stamped with its arrival, until the receiving end is gone.
fn listen(dir: &Path) -> (std::path::PathBuf, mpsc::Receiver<Message>) {
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if tx.send((Instant::now(), message)).is_err() {
                break;
            }
        }
    });
    (path, rx)
}

/// Whether a line of a message in `seen` starts with `prefix`.
fn has_line(seen: &[Message], prefix: &str) -> bool {
    seen.iter()
        .any(|(_, m)| m.lines().any(|l| l.starts_with(prefix)))
}

/// Collects messages until a line starts with `prefix`, or panics after `within`.
fn wait_for_line(
    rx: &mpsc::Receiver<Message>,
    seen: &mut Vec<Message>,
    prefix: &str,
    within: Duration,
) {
    wait_for_blocking(&format!("a {prefix:?} line"), within, || {
        seen.extend(rx.try_iter());
        match has_line(seen, prefix) {
            true => Ok(()),
            false => Err(format!(
                "{:#?}",
                seen.iter().map(|(_, m)| m).collect::<Vec<_>>()
            )),
        }
    })
}

fn spawn(config: &Path, socket: &Path, watchdog_usec: Option<&str>) -> Daemon {
    let daemon = Spawn::new(config).env("NOTIFY_SOCKET", socket);
    match watchdog_usec {
        Some(usec) => daemon.env("WATCHDOG_USEC", usec),
        None => daemon,
    }
    .spawn()
}

fn sigterm(daemon: &Daemon) {
    daemon.sigterm();
}

fn wait_exit(mut daemon: Daemon) -> (std::process::ExitStatus, String) {
    let status = daemon.wait_blocking(Duration::from_secs(15));
    (status, daemon.log())
}

/// Waits for the daemon to start, lets it run for `running` more, stops it
/// with SIGTERM, and returns how it exited and what it logged.
async fn run_for(mut daemon: Daemon, running: Duration) -> (std::process::ExitStatus, String) {
    daemon.started(Duration::from_secs(10)).await;
    // What it does (and does not do) running idle: time let pass on purpose.
    tokio::time::sleep(running).await;
    sigterm(&daemon);
    let status = daemon.wait(Duration::from_secs(15)).await;
    (status, daemon.log())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_status_watchdog_and_stopping_reach_the_notify_socket() {
    let api = ScriptedApi::start().await;
    api.set_ready("777", chrono::Duration::hours(2));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watcher.db");
    let config = config(dir.path(), &api.base_url(), &db);
    common::daemon::migrate(&config);
    let added = cli(&config, &["add", "777"]);
    assert!(added.status.success());
    let (socket, rx) = listen(dir.path());

    let child = spawn(&config, &socket, Some("1000000"));
    let (seen, pings, status, stderr) = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        wait_for_line(&rx, &mut seen, "READY=1", Duration::from_secs(15));
        wait_for_line(&rx, &mut seen, "WATCHDOG=1", Duration::from_secs(5));
        // The status line refreshes every few seconds; wait for one showing the
        // poll, and for two seconds at least of pings (timed as they arrived).
        let timing_from = Instant::now();
        let counts = "STATUS=1 active (READY 1), 1 due soon, last successful poll";
        wait_for_line(&rx, &mut seen, counts, Duration::from_secs(15));
        let timed = timing_from + Duration::from_secs(2);
        wait_for_blocking("two seconds of pings", Duration::from_secs(5), || {
            seen.extend(rx.try_iter());
            match seen.last() {
                Some((at, _)) if *at >= timed => Ok(()),
                last => Err(format!("last message {last:?}")),
            }
        });
        let pings: Vec<Instant> = seen
            .iter()
            .filter(|(at, m)| *at >= timing_from && m.lines().any(|l| l == "WATCHDOG=1"))
            .map(|(at, _)| *at)
            .collect();
        sigterm(&child);
        wait_for_line(&rx, &mut seen, "STOPPING=1", Duration::from_secs(10));
        let (status, stderr) = wait_exit(child);
        let seen: Vec<String> = seen.into_iter().map(|(_, m)| m).collect();
        (seen, pings, status, stderr)
    })
    .await
    .unwrap();
    assert!(status.success(), "{stderr}");
    // WATCHDOG_USEC is 1 s: every gap stays under the half systemd asks for.
    assert!(pings.len() >= 3, "{} pings in two seconds", pings.len());
    let largest_gap = pings.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        largest_gap < Duration::from_millis(500),
        "{largest_gap:?} between two watchdog pings"
    );
    let lines: Vec<&str> = seen.iter().flat_map(|m| m.lines()).collect();
    let ready = lines.iter().position(|l| *l == "READY=1").unwrap();
    let first_ping = lines.iter().position(|l| *l == "WATCHDOG=1").unwrap();
    let stopping = lines.iter().position(|l| *l == "STOPPING=1").unwrap();
    assert!(ready < first_ping && first_ping < stopping, "{lines:#?}");
    assert!(
        lines.iter().filter(|l| **l == "WATCHDOG=1").count() >= 2,
        "pings repeat: {lines:#?}"
    );
    assert_no_secret("the notify messages", &seen.concat());
}

#[tokio::test]
async fn no_ready_when_the_database_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    // A database path below a regular file cannot be created.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let config = config(
        dir.path(),
        "http://127.0.0.1:9",
        &blocker.join("watcher.db"),
    );
    let (socket, rx) = listen(dir.path());
    let child = spawn(&config, &socket, Some("1000000"));
    let (status, stderr) = tokio::task::spawn_blocking(move || wait_exit(child))
        .await
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error:"), "{stderr}");
    let messages: Vec<String> = rx.try_iter().map(|(_, m)| m).collect();
    assert!(
        !messages.iter().any(|m| m.contains("READY=1")),
        "{messages:#?}"
    );
}

/// Runs a daemon with nothing to watch and `key=value` in its environment for
/// `running`, stops it, and returns its stderr (asserting a clean exit).
async fn run_idle_with(key: &str, value: &str, running: Duration) -> String {
    let api = ScriptedApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &api.base_url(), &dir.path().join("w.db"));
    let child = Spawn::new(&config).env(key, value).spawn();
    let (status, stderr) = run_for(child, running).await;
    assert!(status.success(), "{stderr}");
    stderr
}

#[tokio::test]
async fn without_notify_socket_the_daemon_runs_and_stops_as_usual() {
    let stderr = run_idle_with("WATCHDOG_USEC", "1000000", Duration::from_millis(800)).await;
    assert!(!stderr.contains("watchdog"), "{stderr}");
}

#[tokio::test]
async fn under_journald_text_logs_carry_no_timestamp_and_no_colours() {
    let stderr = run_idle_with("JOURNAL_STREAM", "8:12345", Duration::from_millis(500)).await;
    assert!(stderr.contains("issuance-watcher started"), "{stderr}");
    for line in stderr.lines() {
        assert!(!line.contains('\u{1b}'), "colour codes: {line:?}");
        assert!(
            !line.trim_start().starts_with(|c: char| c.is_ascii_digit()),
            "a timestamp of our own: {line:?}"
        );
    }
}
