//! Crash safety: the daemon (`issuance-watcher run`, a child process) is killed
//! with SIGKILL at random moments and restarted, again and again, while
//! issuances are created and settle; afterwards the `transitions` table must
//! equal the simulator's ground truth.
//!
//! - quick (in `cargo test`): 1,000 issuances created over ~15 s, at least 25 kills.
//! - long: `cargo test --release --test crash_safety -- --ignored --nocapture`
//!   (5,000 issuances over ~100 s, at least 200 kills).
//!
//! The simulator runs in this test process at real speed with lifecycles of a few
//! seconds (WAITED 0.2–1 s; READY 0.5–4 s; then DONE, CANCELLED or FAIL), because a
//! child-process daemon uses the wall clock. Kill moments are uniform in
//! 30 ms–1.2 s after a start, so some land during start-up and migrations, some
//! between claiming and recording, some mid-commit.
//!
//! "Observable by polling" and "recorded exactly once" are defined precisely in
//! `src/verify.rs`: per issuance the recorded `to_status` sequence must be a
//! subsequence of the true sequence, each true change matched at most once, the
//! `from_status` chain unbroken, no row stamped before its change happened, and the
//! last recorded status equal to the true final (terminal) one — so every skipped
//! true change is an intermediate status that was replaced before any recorded poll
//! saw it (a poll answered but lost to a kill counts as not having seen it). The
//! stored `issuances.status` must equal the true final status, every watch settled.

mod reliability;

use std::time::{Duration, Instant};

use issuance_watcher::sim::Simulator;
use reliability::*;

struct Plan {
    issuances: usize,
    /// How long ids keep being created.
    feed: Duration,
    min_kills: usize,
    seed: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_daemon_records_every_transition_exactly_once() {
    run(Plan {
        issuances: 1_000,
        feed: Duration::from_secs(15),
        min_kills: 25,
        seed: 11,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long run (~3 min): cargo test --release --test crash_safety -- --ignored"]
async fn long_200_kills() {
    run(Plan {
        issuances: 5_000,
        feed: Duration::from_secs(100),
        min_kills: 200,
        seed: 12,
    })
    .await;
}

async fn run(plan: Plan) {
    let started = Instant::now();
    let sim = Simulator::start(sim_config(plan.seed), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url(), "", "");
    migrate(&config);
    let store = open_store(dir.path()).await;

    // Ids are created in small waves, as a merchant's system would, and inserted
    // through this process's own connection.
    let feeder = {
        let (sim, store) = (sim.clone(), store.clone());
        let waves = (plan.feed.as_millis() / 100).max(1) as usize;
        let per_wave = plan.issuances.div_ceil(waves);
        tokio::spawn(async move {
            let mut created = 0;
            while created < plan.issuances {
                let n = per_wave.min(plan.issuances - created);
                let ids = sim.seed(n);
                store.add_ids(&ids).await.unwrap();
                created += n;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let mut rng = fastrand::Rng::with_seed(plan.seed);
    let mut kills = 0usize;
    let mut incarnation = 0usize;
    let settle_deadline = Duration::from_secs(60);
    let mut feeding_done_at: Option<Instant> = None;
    loop {
        incarnation += 1;
        let log = dir.path().join(format!("daemon-{incarnation:04}.log"));
        let mut child = spawn_daemon(&config, &log);
        let feeding = !feeder.is_finished();
        if !feeding && feeding_done_at.is_none() {
            feeding_done_at = Some(Instant::now());
        }
        if kills >= plan.min_kills && !feeding {
            // The last incarnation runs until everything has settled.
            let settled = wait_settled(&store, settle_deadline).await;
            let exited = child.try_wait().unwrap();
            child.kill().ok();
            child.wait().ok();
            assert!(
                exited.is_none(),
                "the last daemon exited by itself: {exited:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            assert!(
                settled,
                "not every issuance settled within {settle_deadline:?} after the last restart"
            );
            break;
        }
        let alive_for = Duration::from_millis(rng.u64(30..=1_200));
        tokio::time::sleep(alive_for).await;
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "daemon {incarnation} exited by itself ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        assert!(
            started.elapsed() < Duration::from_secs(60) + plan.feed * 3,
            "taking too long: {kills} kills so far"
        );
    }
    feeder.await.unwrap();

    let c = assert_history_matches(&store, &sim, plan.issuances).await;
    let panics = log_lines_matching(dir.path(), &["panicked", "database is locked"]);
    assert!(panics.is_empty(), "{panics:#?}");
    let stats = sim.stats();
    println!(
        "crash safety: {} issuances, {kills} SIGKILLs survived ({incarnation} daemon starts), {} API requests, {} transitions recorded, {} true, {} unobservable between polls; {:.1}s",
        plan.issuances,
        stats.total_requests,
        c.recorded,
        c.true_transitions,
        c.unobserved,
        started.elapsed().as_secs_f64()
    );
    assert!(kills >= plan.min_kills);
    store.close().await;
    sim.shutdown().await;
}
