//! Leases between daemons and against other programs, with the daemon as a
//! child process (`issuance-watcher run`) on the simulator:
//!
//! - a killed daemon's claims are polled by the next daemon within about a
//!   second of its start (owner locks: a lock file beside SQLite's, a session
//!   advisory lock on PostgreSQL), not after `poll.lease`;
//! - a live daemon's claims are never polled by a second live daemon;
//! - shutdown is bounded while another program holds the write lock, and the
//!   next daemon takes over what the stopped one left;
//! - SIGHUP stops the daemon as SIGTERM does, handing back its claims;
//! - results that could not be written while another program held the lock
//!   are written once it is released, not after the lease;
//! - a write-ahead log grown past `database.wal_warn_bytes` is warned about once.
//!
//! Times asserted here are bounds far from the failure they tell apart (a
//! 60 s lease, a 30 s lock), printed with what was measured.

use crate::reliability;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bunjang_sim::SimHandle;
use bunjang_sim::{FaultConfig, FaultRule};
use chrono::{DateTime, Utc};
use issuance_watcher::store::Store;
use reliability::common::daemon::{Daemon, Spawn};
use reliability::common::db::Db;
use reliability::common::engine::on_both_engines;
use reliability::common::running::{eventually, wait_for};
use reliability::*;
use sqlx::Connection as _;

struct World {
    sim: SimHandle,
    dir: tempfile::TempDir,
    config: PathBuf,
    store: Store,
}

/// The simulator (every lookup answered after `slow`, if given), `ids`
/// issuances watched, and a config: 4 slots, `poll.lease = 60s`, and the
/// given `[database]` lines.
async fn world(slow: Option<Duration>, ids: usize, database_extra: &str) -> World {
    let mut sim_config = sim_config(41);
    sim_config.record_requests = true;
    if let Some(delay) = slow {
        sim_config = sim_config.with_faults(FaultConfig {
            slow: FaultRule::always(),
            slow_delay: delay,
            ..FaultConfig::default()
        });
    }
    let sim = start_sim(sim_config).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(
        dir.path(),
        &sim.base_url(),
        300,
        4,
        "timeout = \"20s\"",
        "lease = \"60s\"",
    );
    let mut table: toml::Table =
        toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let extra: toml::Table = toml::from_str(database_extra).unwrap();
    table["database"].as_table_mut().unwrap().extend(extra);
    std::fs::write(&config, toml::to_string(&table).unwrap()).unwrap();
    migrate(&config);
    let store = open_store(dir.path()).await;
    store.add_ids(&sim.seed(ids)).await.unwrap();
    World {
        sim,
        dir,
        config,
        store,
    }
}

impl World {
    fn daemon(&self, name: &str) -> Daemon {
        Spawn::new(&self.config)
            .log(&self.dir.path().join(format!("daemon-{name}.log")))
            .rust_log("info")
            .spawn()
    }

    /// Leased rows: (id, owner, fence).
    async fn leased(&self) -> Vec<(String, String, i64)> {
        Db::from(&self.store)
            .rows(
                "SELECT id, lease_owner, CAST(lease_fence AS TEXT) FROM issuances
                 WHERE lease_owner IS NOT NULL ORDER BY id",
                &[],
            )
            .await
            .into_iter()
            .map(|r| {
                let text = |i: usize| r[i].clone().unwrap_or_default();
                (text(0), text(1), text(2).parse().expect("a fence"))
            })
            .collect()
    }

    /// Waits until `n` rows are leased; returns them.
    async fn until_leased(&self, n: usize) -> Vec<(String, String, i64)> {
        eventually(&format!("{n} rows leased"), || async {
            self.leased().await.len() >= n
        })
        .await;
        self.leased().await
    }

    /// Once daemon A holds claims with polls answered, another program takes
    /// the database's write lock and holds it until the returned transaction
    /// ends.
    async fn lock_out_the_daemon(&self) -> sqlx::Transaction<'static, sqlx::Sqlite> {
        self.until_leased(1).await;
        eventually("a first window of A's polls answered", || async {
            self.sim.request_log().len() >= 4
        })
        .await;
        let other = other_program(self.dir.path()).await;
        other.begin_with("BEGIN IMMEDIATE").await.unwrap()
    }

    /// Lookups of `id` that arrived at the simulator in `from..to`.
    fn lookups(&self, id: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let path = format!("/api/v1/points/issuance/{id}");
        self.sim
            .request_log()
            .into_iter()
            .filter(|r| r.path == path && r.at >= from && r.at < to)
            .map(|r| r.at)
            .collect()
    }
}

async fn a_killed_daemons_claims_are_polled_by_the_next_daemon_within_a_second() {
    // Every lookup takes 4 s, so the claims are in flight when A dies. As
    // many ids as slots: B polls each at once, nothing queues before them.
    let w = world(Some(Duration::from_secs(4)), 4, "").await;
    let mut a = w.daemon("a");
    w.until_leased(4).await;
    // For A's requests to reach the simulator: nothing shows their arrival
    // (it logs a request as it answers it, 4 s later), so time is let pass.
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.kill9();
    let held = w.leased().await;
    assert_eq!(held.len(), 4, "{held:?}");
    let started = Utc::now();
    let b = w.daemon("b");
    // The simulator logs a request when it answers it: 4 s after it arrived.
    let within = started + chrono::Duration::seconds(5);
    let firsts = wait_for(
        "B's lookups of the killed daemon's claims, arrived within 5 s of its start (poll.lease is 60 s)",
        Duration::from_secs(15),
        async || {
            let firsts: Vec<_> = held
                .iter()
                .map(|(id, _, _)| w.lookups(id, started, within).into_iter().min())
                .collect();
            match firsts.iter().all(Option::is_some) {
                true => Ok(firsts.into_iter().flatten().collect::<Vec<_>>()),
                false => Err(format!("{firsts:?} for {held:?}")),
            }
        },
    )
    .await;
    let worst = firsts.iter().map(|first| *first - started).max().unwrap();
    println!(
        "{} claims of the killed daemon: all polled again within {} ms of the next daemon's start",
        held.len(),
        worst.num_milliseconds()
    );
    assert!(worst < chrono::Duration::seconds(3), "{worst:?}");
    let log = b.stop().await;
    assert!(
        log.contains("took over the claims of a daemon that died"),
        "{log}"
    );
}

async fn a_live_daemons_claims_are_never_polled_by_a_second_daemon() {
    // Lookups take 8 s: A's claims stay in flight (and leased) for all of the
    // 3 s that B runs beside it, and A sends nothing new for them meanwhile.
    let w = world(Some(Duration::from_secs(8)), 60, "").await;
    let a = w.daemon("a");
    let held = w.until_leased(8).await;
    // A's requests for the claims it just committed may still be on their
    // way: nothing shows their arrival (the simulator logs a request as it
    // answers it, 8 s later), so time is let pass.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Utc::now();
    let b = w.daemon("b");
    // The window B runs beside A: time let pass on purpose.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let window_end = Utc::now();
    let owners: std::collections::HashSet<String> = w
        .leased()
        .await
        .into_iter()
        .map(|(_, owner, _)| owner)
        .collect();
    // Let every request sent in the window be answered and logged: how many
    // were sent shows nowhere, so time (the 8 s answer, and one more) is let pass.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let doubled: Vec<&String> = held
        .iter()
        .map(|(id, _, _)| id)
        .filter(|id| !w.lookups(id, started, window_end).is_empty())
        .collect();
    let b_polled = w
        .sim
        .request_log()
        .iter()
        .filter(|r| r.at >= started && r.at < window_end)
        .count();
    println!(
        "B ran 3 s beside A: {b_polled} lookups, {} of them for A's {} claims",
        doubled.len(),
        held.len()
    );
    assert!(doubled.is_empty(), "B polled A's claims: {doubled:?}");
    // B's share of the 4 slots beside A is 2 (api.concurrency is shared by
    // the live daemons), each held for the 8 s answer.
    assert!(b_polled >= 2, "B polled nothing: the check proves nothing");
    assert_eq!(owners.len(), 2, "both daemons held leases: {owners:?}");
    b.stop().await;
    a.stop().await;
}

/// The daemon's configuration with `[database]` keys for these tests.
fn short_busy() -> &'static str {
    "busy_timeout = \"300ms\""
}

// SQLite's: another program holding the database's write lock (`BEGIN IMMEDIATE`) is SQLite's; PostgreSQL locks rows, not the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_while_another_program_holds_the_write_lock() {
    let w = world(None, 200, "busy_timeout = \"20s\"").await;
    let mut a = w.daemon("a");
    let tx = w.lock_out_the_daemon().await;
    // For A to run into the held lock: nothing shows it (busy_timeout is
    // 20 s), so time is let pass.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    a.sigterm();
    let status = a.wait(Duration::from_secs(25)).await;
    let took = asked.elapsed();
    println!("stopped {took:?} after SIGTERM with the write lock held by another program");
    assert!(status.code().is_some(), "exited by signal: {status:?}");
    assert!(took < Duration::from_secs(10), "{took:?}\n{}", a.log());
    let left = w.leased().await;
    tx.rollback().await.unwrap();
    // What A could not write is taken over at once by the next daemon.
    let b = w.daemon("b");
    let a_owners: std::collections::HashSet<_> =
        left.iter().map(|(_, owner, _)| owner.clone()).collect();
    wait_for(
        "the stopped daemon's claims taken over (poll.lease is 60 s)",
        Duration::from_secs(5),
        async || {
            let leased = w.leased().await;
            match leased
                .iter()
                .filter(|(_, owner, _)| a_owners.contains(owner))
                .count()
            {
                0 => Ok(()),
                still => Err(format!("{still} still held")),
            }
        },
    )
    .await;
    b.stop().await;
}

async fn sighup_stops_the_daemon_like_sigterm_and_hands_back_its_claims() {
    let w = world(None, 200, "").await;
    let mut a = w.daemon("a");
    w.until_leased(1).await;
    a.signal("HUP");
    let code = a.exits_within(Duration::from_secs(10)).await;
    let log = a.log();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("SIGHUP"), "{log}");
    assert!(
        w.leased().await.is_empty(),
        "claims left: {:?}",
        w.leased().await
    );
    // Its ownership ends with it: no lock file left beside SQLite's, no
    // registry row left on PostgreSQL.
    let owners = match w.store.path() {
        Some(_) => std::fs::read_dir(w.dir.path().join("watcher.db.owners"))
            .unwrap()
            .count(),
        None => Db::from(&w.store)
            .number("SELECT count(*) FROM daemons")
            .await
            .try_into()
            .unwrap(),
    };
    assert_eq!(owners, 0, "the ownership is removed after a clean stop");
}

// SQLite's: the write lock held by another program (`BEGIN IMMEDIATE`) and `busy_timeout` are SQLite's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_that_could_not_be_written_are_written_once_the_lock_is_released() {
    let w = world(None, 200, short_busy()).await;
    let a = w.daemon("a");
    let tx = w.lock_out_the_daemon().await;
    // Results pile up unwritten while the lock is held: time let pass on purpose.
    tokio::time::sleep(Duration::from_secs(2)).await;
    tx.rollback().await.unwrap();
    let released = Instant::now();
    let stuck = w.leased().await;
    assert!(!stuck.is_empty());
    wait_for(
        "every lease held at the release to change within 3 s (not after the 60 s lease)",
        Duration::from_secs(3),
        async || {
            let now = w.leased().await;
            let unchanged: Vec<_> = stuck.iter().filter(|lease| now.contains(lease)).collect();
            match unchanged.is_empty() {
                true => Ok(()),
                false => Err(format!("unchanged: {unchanged:?}")),
            }
        },
    )
    .await;
    println!(
        "{} leases held when the lock was released; all changed {:?} later",
        stuck.len(),
        released.elapsed()
    );
    let log = a.stop().await;
    assert!(log.contains("writing them again shortly"), "{log}");
}

// SQLite's: the write-ahead log file (`-wal`) and `database.wal_warn_bytes` are SQLite's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_wal_is_warned_about_once_naming_the_likely_cause() {
    let w = world(None, 20, "wal_warn_bytes = 1048576").await;
    let a = w.daemon("a");
    w.until_leased(1).await;
    // A reader holding a snapshot: the log cannot be folded back meanwhile.
    let reader = other_program(w.dir.path()).await;
    let mut conn = reader.acquire().await.unwrap();
    let mut snapshot = conn.begin().await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM issuances")
        .fetch_one(&mut *snapshot)
        .await
        .unwrap();
    let ids: Vec<String> = (0..20_000)
        .map(|i| format!("bulk-{i:06}-padding-padding"))
        .collect();
    w.store.add_ids(&ids).await.unwrap();
    // A window in which the warning must come, and come once: time let pass on purpose.
    tokio::time::sleep(Duration::from_secs(5)).await;
    snapshot.rollback().await.unwrap();
    let log = a.stop().await;
    let warnings = log
        .lines()
        .filter(|l| l.contains("write-ahead log has grown past"))
        .count();
    assert_eq!(warnings, 1, "{log}");
    assert!(log.contains("read transaction"), "{log}");
}

on_both_engines!(
    a_killed_daemons_claims_are_polled_by_the_next_daemon_within_a_second(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_live_daemons_claims_are_never_polled_by_a_second_daemon(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    sighup_stops_the_daemon_like_sigterm_and_hands_back_its_claims(
        flavor = "multi_thread",
        worker_threads = 2
    ),
);
