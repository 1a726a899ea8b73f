//! Several daemons on one database, standing for several hosts (nothing
//! shared but the database): one of them is killed with SIGKILL again and
//! again while the others go on, and comes back a few seconds later, as a
//! host that reboots would.
//!
//! What it shows: the live daemons take a dead one's claims over within about
//! a second (its owner lock is free at their next housekeeping; no wait for
//! `poll.lease`, which is set to 2 minutes here so that only liveness can
//! explain a quick takeover), and afterwards the `transitions` table equals
//! the simulator's ground truth: 0 lost, 0 doubled, 0 invented, every final
//! status. Each state of the simulated lifecycle lasts longer than a takeover,
//! so every true transition must be recorded.

use crate::reliability;

use std::time::{Duration, Instant};

use bunjang_sim::{FaultConfig, FaultRule};
use issuance_watcher::store::Store;
use reliability::common::Daemon;
use reliability::common::daemon::Spawn;
use reliability::common::db::Db;
use reliability::common::engine::on_both_engines;
use reliability::common::wait;
use reliability::*;

/// The daemons running at once.
const DAEMONS: usize = 3;
/// Kills over the run.
const KILLS: usize = 12;
/// The longest takeover the test accepts (the "at most a second or two").
const TAKEOVER_LIMIT: Duration = Duration::from_secs(2);
/// How long a killed daemon's host stays down before it comes back: longer
/// than a takeover, so the daemons still running are the ones measured.
const DOWN_FOR: Duration = Duration::from_millis(2_500);

async fn a_kill_storm_across_three_daemons_loses_and_doubles_nothing() {
    let started = Instant::now();
    let lifecycle = bunjang_sim::LifecycleConfig {
        waited_min: Duration::from_secs(5),
        waited_max: Duration::from_secs(10),
        deposit: bunjang_sim::DepositTiming::Within {
            min: Duration::from_secs(4),
            max: Duration::from_secs(12),
        },
        ..fast_lifecycle()
    };
    // Every lookup is answered after 150 ms, so a daemon holds claims in
    // flight at almost any moment, and a kill leaves some behind.
    let faults = FaultConfig {
        slow: FaultRule::always(),
        slow_delay: Duration::from_millis(150),
        ..FaultConfig::default()
    };
    let sim = start_sim(sim_config(29).with_lifecycle(lifecycle).with_faults(faults)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(
        dir.path(),
        &sim.base_url(),
        1000,
        // The account's concurrency, shared: 32 slots per daemon, enough to
        // poll every issuance within a WAITED state while daemons come and go.
        96,
        "",
        "interval = \"300ms\"\nmax_interval = \"1s\"\nlease = \"2m\"\nstartup_spread = \"10s\"",
    );
    migrate(&config);
    let store = open_store(dir.path()).await;
    let ids = 300;

    // Daemons are killed when dropped, so a failing run leaves none behind.
    let mut starts = 0usize;
    let mut spawn = |slot: usize| {
        starts += 1;
        Spawn::new(&config)
            .log(&dir.path().join(format!("daemon-{slot}-{starts:03}.log")))
            .rust_log("info")
            .spawn()
    };
    let mut slots: Vec<Option<Daemon>> = (0..DAEMONS).map(|slot| Some(spawn(slot))).collect();
    // The issuances are created once every daemon runs, so that their first
    // polls do not wait for the daemons' start (slow on a loaded machine).
    for daemon in slots.iter().flatten() {
        owner_of(&store, daemon.pid()).await;
    }
    store.add_ids(&sim.seed(ids)).await.unwrap();
    // (slot, when it may come back)
    let mut down: Vec<(usize, Instant)> = Vec::new();
    // (claims the killed daemon left, how long until no row was leased by it)
    let mut takeovers: Vec<(i64, Duration)> = Vec::new();
    let mut rng = fastrand::Rng::with_seed(29);
    while takeovers.len() < KILLS {
        // A random stretch of normal running between kills: time let pass on purpose.
        tokio::time::sleep(Duration::from_millis(rng.u64(300..=900))).await;
        for (slot, back_at) in std::mem::take(&mut down) {
            match Instant::now() >= back_at {
                true => slots[slot] = Some(spawn(slot)),
                false => down.push((slot, back_at)),
            }
        }
        let running: Vec<usize> = (0..DAEMONS).filter(|s| slots[*s].is_some()).collect();
        if running.len() < 2 {
            continue; // someone must be left to take over
        }
        let victim = running[rng.usize(..running.len())];
        let mut daemon = slots[victim].take().unwrap();
        assert!(
            daemon.running(),
            "daemon in slot {victim} exited by itself:\n{}",
            daemon.log()
        );
        let owner = owner_of(&store, daemon.pid()).await;
        daemon.kill9();
        let killed = Instant::now();
        down.push((victim, killed + DOWN_FOR));
        let left = claims_of(&store, &owner).await;
        takeovers.push((left, until_taken_over(&store, &owner, killed).await));
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "taking too long: {} kills so far",
            takeovers.len()
        );
    }
    for (slot, _) in down {
        slots[slot] = Some(spawn(slot));
    }
    let settled = wait_settled(&store, Duration::from_secs(60)).await;
    drop(slots);
    if let Err(e) = settled {
        panic!("after the storm: {e}");
    }

    let c = assert_history_matches(&store, &sim, ids).await;
    let panics = log_lines_matching(dir.path(), &["panicked"]);
    assert_none(&panics, "panics in the daemons' logs");
    // Only kills that left claims behind measure a takeover.
    let mut measured: Vec<Duration> = takeovers
        .iter()
        .filter(|(left, _)| *left > 0)
        .map(|(_, took)| *took)
        .collect();
    measured.sort();
    assert!(
        measured.len() >= KILLS / 2,
        "too few kills left claims behind to measure a takeover: {takeovers:?}"
    );
    let median = measured[measured.len() / 2];
    let worst = *measured.last().unwrap();
    let claims_left: i64 = takeovers.iter().map(|(left, _)| left).sum();
    println!(
        "kill storm across {DAEMONS} daemons: {KILLS} SIGKILLs, {starts} daemon starts; {} kills left {claims_left} claims behind, taken over by the others in median {} ms, at worst {} ms; {} of {} true transitions recorded; {:.1}s",
        measured.len(),
        median.as_millis(),
        worst.as_millis(),
        c.recorded,
        c.true_transitions,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        c.unobserved,
        0,
        "transitions missed while daemons died: {}\n{:#?}",
        c.summary(),
        c.examples
    );
    assert!(
        worst <= TAKEOVER_LIMIT,
        "a killed daemon's claims waited {worst:?} for another daemon (all: {takeovers:?})"
    );
    store.close().await;
    sim.shutdown().await;
}

/// The owner id of the daemon with process id `pid`, as the store lists
/// the live daemons (`status`'s source, on either engine). Waits until the
/// daemon has taken its ownership.
async fn owner_of(store: &Store, pid: u32) -> String {
    wait::wait_for(
        &format!("daemon {pid} to hold its ownership"),
        Duration::from_secs(20),
        async || {
            store
                .daemons()
                .await
                .live
                .into_iter()
                .find(|d| d.pid == Some(pid))
                .map(|d| d.owner)
                .ok_or_else(|| "not alive yet".to_owned())
        },
    )
    .await
}

/// How many issuances are leased by `owner`.
async fn claims_of(store: &Store, owner: &str) -> i64 {
    let rows = Db::from(store)
        .rows(
            "SELECT CAST(count(*) AS TEXT) FROM issuances WHERE lease_owner = $1",
            &[owner],
        )
        .await;
    rows[0][0].as_deref().unwrap_or("0").parse().unwrap()
}

/// How long after `killed` no issuance was leased by `owner` any more (its
/// claims ended by a live daemon, and polled or re-claimed since). Looks every
/// 20 ms, for up to twice [`TAKEOVER_LIMIT`] plus `poll.lease`'s margin of
/// failure (so that a failed takeover is measured rather than hung on).
async fn until_taken_over(store: &Store, owner: &str, killed: Instant) -> Duration {
    let limit = TAKEOVER_LIMIT * 4;
    wait::poll(
        "the killed daemon's claims to be taken over",
        limit,
        Duration::from_millis(20),
        async || match claims_of(store, owner).await {
            0 => Ok(killed.elapsed()),
            n => Err(format!("{n} claims still held by the killed daemon")),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

on_both_engines!(a_kill_storm_across_three_daemons_loses_and_doubles_nothing(
    flavor = "multi_thread",
    worker_threads = 2
));
