//! Operating faults, with the daemon as a child process.
//!
//! | fault | how | expected |
//! |---|---|---|
//! | database deleted / replaced under the daemon | real (`rm`, `rename`) | exit 1 naming the file within 2 s; a restart uses the file now at the path |
//! | config broken on restart | real (6 broken files) | exit 1, exactly one `error:` line, database untouched; resumes once fixed |
//! | disk full | real: a 4 MB tmpfs filled up (needs `mount`: root) | the error logged about once a second, daemon keeps running, nothing recorded wrong; records once space is back |
//! | database read-only | real: the tmpfs remounted read-only while the daemon is stopped (Linux refuses a read-only remount while the daemon holds the files open for writing, and `chattr +i` does not affect open descriptors: a fault *during* a run is covered by the disk-full case) | exit 1 with one clear `error:` line; resumes once writable |
//! | clock jumps | real, with libfaketime (`apt-get install faketime`): the daemon's wall clock moves 1 day back, then 1 day forward; plus a deterministic check of what a backward jump leaves behind | every issuance polled again within 2 s of the backward jump, nothing recorded twice |
//!
//! Everything runs in plain `cargo test` (well under a minute); there is no long version.
//! Where `mount` or libfaketime is missing, those tests fail under CI and are
//! skipped with a `SKIPPED` line elsewhere (see `tests/support`).
//!
//! The README's times are asserted with [`HEADROOM`] for a loaded machine: the
//! daemon checks its file and its schedule every 2 s, so "within 2 s" is
//! asserted as 2 s plus that headroom, not as "eventually".

use crate::common;
use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, Spawn};
use common::running::{number, transitions};
use common::{Reply, SECRET_B64, ScriptedApi, TestSettings, assert_no_secret, eventually};

/// "Within 2 s" in the README: a replaced or deleted file, a row stranded by a clock jump.
const PROMISED: Duration = Duration::from_secs(2);
/// Scheduling slack on a loaded 2-core machine, on top of a promised time.
const HEADROOM: Duration = Duration::from_millis(750);

/// Lines of `stderr` that report an error: the CLI's `error:` line (exactly one
/// on failure, its causes on it) and any log line at level ERROR.
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("error:") || l.contains("ERROR"))
        .collect()
}

struct Setup {
    api: ScriptedApi,
    dir: tempfile::TempDir,
    config: PathBuf,
    db: PathBuf,
}

fn good_config(base_url: &str, db: &Path) -> String {
    TestSettings::new(base_url, db)
        .with(|s| {
            s.api.access_key = "faults".into();
            s.poll.startup_spread = Duration::from_millis(10);
            s.poll.lease = Duration::from_secs(3);
        })
        .to_toml()
}

impl Setup {
    /// `db_dir`: where the database lives (default: the temporary directory).
    async fn new(db_dir: Option<&Path>) -> Self {
        let api = ScriptedApi::start().await;
        let dir = tempfile::tempdir().unwrap();
        let db = db_dir.unwrap_or(dir.path()).join("watcher.db");
        let config = dir.path().join("config.toml");
        std::fs::write(&config, good_config(&api.base_url(), &db)).unwrap();
        // Only `run` and `migrate` create a database: `add` refuses a missing one.
        common::daemon::migrate(&config);
        Self {
            api,
            dir,
            config,
            db,
        }
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        common::cli(&self.config, args)
    }

    fn spawn(&self, log: &str, env: &[(&str, &str)]) -> Daemon {
        Spawn::new(&self.config)
            .log(&self.dir.path().join(log))
            .envs(env.iter().copied())
            .spawn()
    }

    /// Adds `ids` with the CLI, the API answering WAITED for each (for now).
    fn add_waited_then(&self, ids: &[&str]) {
        for id in ids {
            self.api.set(id, waited_then(id));
        }
        let mut args = vec!["add"];
        args.extend(ids);
        assert!(self.cli(&args).status.success());
    }

    async fn pool(&self) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(&format!("sqlite://{}", self.db.display()))
            .await
            .unwrap()
    }
}

async fn status(pool: &sqlx::SqlitePool, id: &str) -> Option<String> {
    sqlx::query_scalar("SELECT status FROM issuances WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap()
        .flatten()
}

async fn wait_status(pool: &sqlx::SqlitePool, id: &str, want: &str) {
    eventually(&format!("{id} to be {want}"), || async {
        status(pool, id).await.as_deref() == Some(want)
    })
    .await;
}

/// Waits for the daemon to exit with status 1 within the README's promise of
/// `since`, when its database file was `what`; returns its log.
async fn exits_promptly(daemon: &mut Daemon, since: Instant, what: &str) -> String {
    assert_eq!(daemon.exits_within(Duration::from_secs(10)).await, Some(1));
    let exited_after = since.elapsed();
    let log = daemon.log();
    eprintln!("{what}: exit 1 after {exited_after:?}");
    assert!(
        exited_after <= PROMISED + HEADROOM,
        "exit {exited_after:?} after the file was {what} (README: within {PROMISED:?}): {log}"
    );
    log
}

fn waited_then(id: &str) -> Reply {
    Reply::issuance(id, "WAITED")
}

fn seq(from: Option<&str>, to: &str) -> (Option<String>, String) {
    (from.map(str::to_owned), to.to_owned())
}

/// Waits for `id` to be DONE, and checks its history is WAITED then DONE, each once.
async fn waited_then_done_once(pool: &sqlx::SqlitePool, id: &str) {
    wait_status(pool, id, "DONE").await;
    assert_eq!(
        transitions(pool, id).await,
        [seq(None, "WAITED"), seq(Some("WAITED"), "DONE")],
        "{id}"
    );
}

#[tokio::test]
async fn a_database_replaced_or_deleted_under_the_daemon_stops_it_and_a_restart_resumes() {
    let s = Setup::new(None).await;
    s.api.set("d1", waited_then("d1"));
    assert!(s.cli(&["add", "d1"]).status.success());
    let mut daemon = s.spawn("replace.log", &[]);
    let pool = s.pool().await;
    wait_status(&pool, "d1", "WAITED").await;

    // Replaced: a restored copy is renamed over the file.
    let copy = s.dir.path().join("copy.db");
    sqlx::query("VACUUM INTO ?")
        .bind(copy.to_str().unwrap())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    std::fs::rename(&copy, &s.db).unwrap();
    let replaced_at = Instant::now();
    let log = exits_promptly(&mut daemon, replaced_at, "replaced").await;
    assert_eq!(error_lines(&log).len(), 1, "{log}");
    assert!(
        log.contains("error:") && log.contains("was replaced") && !log.contains("panicked"),
        "{log}"
    );
    // The old file's log is gone with it: replayed over the new file, it would
    // mix two databases' pages.
    for suffix in ["-wal", "-shm"] {
        let mut stale = s.db.as_os_str().to_owned();
        stale.push(suffix);
        assert!(!Path::new(&stale).exists(), "{suffix} left behind: {log}");
    }
    // Restarted (as systemd would), it watches the file now at the path.
    s.api.set("d1", Reply::issuance("d1", "DONE"));
    let daemon = s.spawn("after-replace.log", &[]);
    let pool = s.pool().await;
    waited_then_done_once(&pool, "d1").await;

    // Deleted: the file and its WAL vanish.
    s.api.set("d2", waited_then("d2"));
    assert!(s.cli(&["add", "d2"]).status.success());
    wait_status(&pool, "d2", "WAITED").await;
    pool.close().await;
    let mut daemon = daemon;
    for suffix in ["", "-wal", "-shm"] {
        let mut path = s.db.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
    let deleted_at = Instant::now();
    let log = exits_promptly(&mut daemon, deleted_at, "deleted").await;
    assert!(
        log.contains("was deleted") && !log.contains("panicked"),
        "{log}"
    );
    assert_eq!(error_lines(&log).len(), 1, "{log}");
    // A restart starts a fresh, migrated file; ids added again are watched.
    s.api.set("d2", Reply::issuance("d2", "DONE"));
    let mut daemon = s.spawn("after-delete.log", &[]);
    daemon.started(Duration::from_secs(10)).await;
    assert!(s.cli(&["add", "d2"]).status.success());
    let pool = s.pool().await;
    wait_status(&pool, "d2", "DONE").await;
    assert_eq!(transitions(&pool, "d2").await, [seq(None, "DONE")]);
    pool.close().await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_config_broken_on_restart_is_one_clear_error_and_the_database_is_untouched() {
    let s = Setup::new(None).await;
    s.api.set("c1", waited_then("c1"));
    assert!(s.cli(&["add", "c1"]).status.success());
    let daemon = s.spawn("first.log", &[]);
    let pool = s.pool().await;
    wait_status(&pool, "c1", "WAITED").await;
    daemon.stop().await;
    let snapshot = || async {
        let rows: Vec<(String, Option<String>, i64, String)> =
            sqlx::query_as("SELECT id, status, polls, next_poll_at FROM issuances ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        let count = number(&pool, "SELECT count(*) FROM transitions").await;
        (rows, count)
    };
    let before = snapshot().await;
    let good = good_config(&s.api.base_url(), &s.db);
    let broken: [(&str, String, &str); 6] = [
        ("not TOML", "this is [not toml".to_owned(), "config"),
        (
            "unknown key",
            good.replace("interval = \"50ms\"", "intervall = \"50ms\""),
            "intervall",
        ),
        (
            "bad duration",
            good.replace("interval = \"50ms\"", "interval = \"fast\""),
            "poll.interval",
        ),
        (
            "no access key",
            good.replace("access_key = \"faults\"\n", ""),
            "access_key",
        ),
        (
            "bad secret",
            good.replace(SECRET_B64, "***not base64***"),
            "secret",
        ),
        (
            "bad URL",
            good.replace(&s.api.base_url(), "not a url"),
            "base_url",
        ),
    ];
    for (what, text, names) in &broken {
        std::fs::write(&s.config, text).unwrap();
        let started = Instant::now();
        let out = s.cli(&["run"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        assert!(err.starts_with("error:"), "{what}: {err}");
        assert_eq!(
            error_lines(&err).len(),
            1,
            "{what}: one `error:` line, its causes on it: {err}"
        );
        assert!(
            err.to_lowercase().contains(&names.to_lowercase()),
            "{what}: the error should name {names}: {err}"
        );
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert_no_secret(what, &err);
    }
    assert_eq!(
        snapshot().await,
        before,
        "a refused start changed the database"
    );
    // Fixed: it resumes where it was.
    std::fs::write(&s.config, &good).unwrap();
    s.api.set("c1", Reply::issuance("c1", "DONE"));
    let daemon = s.spawn("fixed.log", &[]);
    waited_then_done_once(&pool, "c1").await;
    daemon.stop().await;
    pool.close().await;
}

/// A small tmpfs in a fresh temporary directory, or the reason it cannot be mounted.
fn tmpfs(size: &str) -> Result<TmpFs, String> {
    let scratch = tempfile::tempdir().unwrap();
    let at = scratch.path().join("fs");
    std::fs::create_dir_all(&at).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&at)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "needs a tmpfs mount (root): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(TmpFs {
        at,
        _scratch: scratch,
    })
}

/// A mounted tmpfs, unmounted on drop (before its directory is removed).
struct TmpFs {
    at: PathBuf,
    _scratch: tempfile::TempDir,
}

impl TmpFs {
    fn remount(&self, mode: &str) -> Result<(), String> {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.at)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for TmpFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).status();
    }
}

/// Fills the file system holding `dir` until a write fails; returns the file.
/// Bounded, not a wait: the file system is a small tmpfs of its own.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).and_then(|()| file.flush()).is_ok() {}
    // The last partial pages too.
    while file.write_all(&block[..512]).is_ok() {}
    path
}

#[tokio::test]
async fn a_full_disk_is_reported_without_spinning_and_recording_resumes_when_space_returns() {
    let Some(fs) = support::require(tmpfs("4m")) else {
        return;
    };
    let s = Setup::new(Some(&fs.at)).await;
    let ids = ["f1", "f2", "f3"];
    s.add_waited_then(&ids);
    let mut daemon = s.spawn("full.log", &[]);
    let pool = s.pool().await;
    for id in ids {
        wait_status(&pool, id, "WAITED").await;
    }
    let filler = fill(&fs.at);
    for id in ids {
        s.api.set(id, Reply::issuance(id, "DONE"));
    }
    // The DONE answers arrive but cannot be written.
    eventually("the full disk to be reported", || async {
        daemon.log().contains("full")
    })
    .await;
    let lines_before = daemon.log().lines().count();
    let window = Duration::from_secs(4);
    // A window whose log lines are counted: time let pass on purpose.
    tokio::time::sleep(window).await;
    let log = daemon.log();
    let logged: Vec<&str> = log.lines().skip(lines_before).collect();
    let about_it = logged.iter().filter(|l| l.contains("full")).count();
    eprintln!(
        "disk full: {about_it} lines about it, {} in all, in {window:?}:\n{}",
        logged.len(),
        logged.join("\n")
    );
    assert!(
        (window.as_secs() as usize - 1..=window.as_secs() as usize + 1).contains(&about_it),
        "{about_it} lines about the full disk in {window:?} (README: about once a second):\n{}",
        logged.join("\n")
    );
    assert!(
        logged.len() <= 2 * about_it,
        "{} log lines in {window:?} while the disk is full: spinning?\n{}",
        logged.len(),
        logged.join("\n")
    );
    assert!(daemon.running(), "{}", daemon.log());
    for id in ids {
        assert!(
            transitions(&pool, id).await.len() <= 2,
            "nothing recorded twice"
        );
    }
    // Space comes back: everything is recorded, once.
    std::fs::remove_file(&filler).unwrap();
    for id in ids {
        waited_then_done_once(&pool, id).await;
    }
    pool.close().await;
    let log = daemon.stop().await;
    assert!(log.contains("database or disk is full"), "{log}");
}

#[tokio::test]
async fn a_read_only_database_is_a_clear_error_at_start_and_it_resumes_when_writable() {
    let Some(fs) = support::require(tmpfs("8m")) else {
        return;
    };
    let s = Setup::new(Some(&fs.at)).await;
    s.api.set("r1", waited_then("r1"));
    assert!(s.cli(&["add", "r1"]).status.success());
    let daemon = s.spawn("first.log", &[]);
    let pool = s.pool().await;
    wait_status(&pool, "r1", "WAITED").await;
    // While the daemon runs, Linux refuses to make the file system read-only.
    match fs.remount("ro") {
        Err(reason) => eprintln!("note: read-only remount refused while the daemon runs: {reason}"),
        Ok(()) => {
            fs.remount("rw").unwrap();
            eprintln!("note: this kernel allowed a read-only remount under a running daemon");
        }
    }
    pool.close().await;
    daemon.stop().await;
    fs.remount("ro")
        .expect("remount read-only with nothing open");
    let polls = s.api.requests_for("r1");
    let mut daemon = s.spawn("read-only.log", &[]);
    let code = daemon.exits_within(Duration::from_secs(15)).await;
    let log = daemon.log();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("error:") && !log.contains("panicked"), "{log}");
    assert_eq!(error_lines(&log).len(), 1, "one `error:` line: {log}");
    assert!(
        log.contains("read-only") || log.contains("readonly") || log.contains("unable to open"),
        "the error should say why: {log}"
    );
    assert_eq!(
        s.api.requests_for("r1"),
        polls,
        "no polls it could not record"
    );
    fs.remount("rw").unwrap();
    s.api.set("r1", Reply::issuance("r1", "DONE"));
    let daemon = s.spawn("writable.log", &[]);
    let pool = s.pool().await;
    waited_then_done_once(&pool, "r1").await;
    pool.close().await;
    daemon.stop().await;
}

#[tokio::test]
async fn rows_left_far_ahead_by_a_backward_clock_jump_are_polled_again_promptly() {
    let s = Setup::new(None).await;
    assert!(s.cli(&["migrate"]).status.success());
    let pool = s.pool().await;
    // What a 30-day backward jump leaves behind, and a legitimate 30-minute pause.
    let ahead = |d: chrono::Duration| {
        (chrono::Utc::now() + d)
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    };
    for (id, at) in [
        ("far1", ahead(chrono::Duration::days(30))),
        ("far2", ahead(chrono::Duration::days(400))),
        ("paused", ahead(chrono::Duration::minutes(30))),
    ] {
        s.api.set(id, Reply::issuance(id, "DONE"));
        sqlx::query("INSERT INTO issuances (id, next_poll_at) VALUES (?, ?)")
            .bind(id)
            .bind(at)
            .execute(&pool)
            .await
            .unwrap();
    }
    let started = Instant::now();
    let daemon = s.spawn("jumped.log", &[]);
    wait_status(&pool, "far1", "DONE").await;
    wait_status(&pool, "far2", "DONE").await;
    let pulled_back_after = started.elapsed();
    eprintln!("stranded rows: polled {pulled_back_after:?} after the start");
    assert!(
        pulled_back_after <= PROMISED + HEADROOM,
        "stranded rows polled only {pulled_back_after:?} after the start"
    );
    assert_eq!(
        s.api.requests_for("paused"),
        0,
        "a legitimate pause is kept"
    );
    let log = daemon.stop().await;
    assert!(
        log.contains("further ahead than any legitimate wait"),
        "{log}"
    );
}

#[tokio::test]
async fn the_wall_clock_jumping_back_and_forth_loses_and_duplicates_nothing() {
    let Some(libfaketime) = support::require(support::libfaketime()) else {
        return;
    };
    let s = Setup::new(None).await;
    let offset = s.dir.path().join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    let ids = ["j1", "j2", "j3"];
    s.add_waited_then(&ids);
    let mut daemon = s.spawn(
        "jumps.log",
        &[
            ("LD_PRELOAD", libfaketime.to_str().unwrap()),
            ("FAKETIME_TIMESTAMP_FILE", offset.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            // Timers stay real: only the wall clock jumps.
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let pool = s.pool().await;
    for id in ids {
        wait_status(&pool, id, "WAITED").await;
    }
    // One day back: every row is now scheduled a day ahead of the daemon's clock.
    std::fs::write(&offset, "-1d\n").unwrap();
    let jumped_at = Instant::now();
    let polled_since = |id: &str| -> Vec<Instant> {
        let requests = s.api.requests();
        requests
            .iter()
            .filter(|r| r.id == id && r.at >= jumped_at)
            .map(|r| r.at)
            .collect()
    };
    eventually("polling to go on after the backward jump", || async {
        ids.iter().all(|id| polled_since(id).len() >= 3)
    })
    .await;
    // Stranded rows are pulled back within 2 s: no issuance went longer unpolled.
    for id in ids {
        let times = polled_since(id);
        let longest = std::iter::once(jumped_at)
            .chain(times.iter().copied())
            .zip(&times)
            .map(|(a, b)| *b - a)
            .max()
            .unwrap();
        eprintln!("clock jump: {id} at most {longest:?} unpolled after the jump");
        assert!(
            longest <= PROMISED + HEADROOM,
            "{id} went {longest:?} unpolled after the backward jump (README: pulled back within {PROMISED:?})"
        );
    }
    s.api.set("j1", Reply::issuance("j1", "DONE"));
    wait_status(&pool, "j1", "DONE").await;
    // One day forward again (and one more): leases and schedules all look overdue.
    std::fs::write(&offset, "+1d\n").unwrap();
    let jumped_forward_at = Instant::now();
    eventually("j2 and j3 polled twice after the forward jump", || async {
        ["j2", "j3"].iter().all(|id| {
            let requests = s.api.requests();
            let since = requests
                .iter()
                .filter(|r| r.id == *id && r.at >= jumped_forward_at);
            since.count() >= 2
        })
    })
    .await;
    s.api.set("j2", Reply::issuance("j2", "DONE"));
    s.api.set("j3", Reply::issuance("j3", "CANCELLED"));
    wait_status(&pool, "j2", "DONE").await;
    wait_status(&pool, "j3", "CANCELLED").await;
    assert!(daemon.running());
    for (id, last) in [("j1", "DONE"), ("j2", "DONE"), ("j3", "CANCELLED")] {
        assert_eq!(
            transitions(&pool, id).await,
            [seq(None, "WAITED"), seq(Some("WAITED"), last)],
            "{id}"
        );
    }
    pool.close().await;
    let log = daemon.stop().await;
    assert!(
        log.contains("further ahead than any legitimate wait"),
        "{log}"
    );
}
