//! Crash safety: the daemon (`issuance-watcher run`, a child process) is killed
//! with SIGKILL at random moments and restarted, again and again, while
//! issuances are created and settle; afterwards the `transitions` table must
//! equal the simulator's ground truth.
//!
//! - quick (in `cargo test`): 1,000 issuances created over ~15 s, at least 25 kills.
//! - long: `cargo test --release --test it -- --ignored crash_safety:: --nocapture`
//!   (5,000 issuances over ~100 s, at least 200 kills; `LONG_RUN_SCALE` scales
//!   all three, and CI runs it at the scale `.ci/run` sets).
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
//!
//! That alone cannot see a lost intermediate transition (READY dropped between
//! WAITED and DONE looks unobservable), so the simulator's request log bounds it:
//! every status served in a 200 more than [`KILL_MARGIN`] away from any kill must
//! be recorded (`reliability::served_statuses`). The run also asserts that its
//! kills really interrupted polling: most landed while answers were arriving,
//! and answers were served close enough to a kill to be at risk.

use crate::reliability;

use std::time::{Duration, Instant};

use bunjang_sim::{FaultConfig, FaultRule, RequestRecord, Status, TruthEvent};
use chrono::{DateTime, Utc};
use issuance_watcher::tools::verify::{self, RecordedTransition};
use reliability::common::db::Db;
use reliability::common::engine::on_both_engines;
use reliability::common::metrics::{self, free_port};
use reliability::*;

/// How long after a lookup's 200 a kill may still lose its result (the answer
/// travelling back, waiting for the next batch, the commit: measured at most
/// 60 ms on a loaded machine, so 300 ms leaves headroom), and how long after a
/// kill a request the killed daemon had sent may still arrive. Answers farther
/// from every kill must be recorded.
const KILL_MARGIN: KillMargin = KillMargin {
    after: chrono::Duration::milliseconds(300),
    before: chrono::Duration::milliseconds(100),
};

struct Plan {
    issuances: usize,
    /// How long ids keep being created.
    feed: Duration,
    min_kills: usize,
    seed: u64,
}

async fn killed_daemon_records_every_transition_exactly_once() {
    run(Plan {
        issuances: 1_000,
        feed: Duration::from_secs(15),
        min_kills: 25,
        seed: 11,
    })
    .await;
}

/// The long run, on each engine (`#[ignore]`d: minutes each).
mod long {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "long run (~3 min): cargo test --release --test it -- --ignored crash_safety::"]
    async fn sqlite_200_kills() {
        super::long_200_kills().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "long run (~3 min): cargo test --release --test it -- --ignored crash_safety::"]
    async fn postgres_200_kills() {
        crate::common::engine::on_postgres(super::long_200_kills()).await
    }
}

async fn long_200_kills() {
    let scale = long_run_scale();
    run(Plan {
        issuances: scaled(5_000, scale, 100),
        feed: Duration::from_secs(100).mul_f64(scale),
        min_kills: scaled(200, scale, 10),
        seed: 12,
    })
    .await;
}

/// The oracle's negative control: READY served by the API but missing from the
/// history is caught (while `compare` counts it as unobservable), unless a kill
/// was close enough to have lost it.
#[test]
fn the_served_status_bound_catches_a_dropped_ready() {
    let t0 = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
    let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
    let truth: Vec<TruthEvent> = [("WAITED", 0), ("READY", 10_000), ("DONE", 20_000)]
        .iter()
        .scan(None, |from, (to, ms)| {
            Some(TruthEvent {
                issuance_id: "7".into(),
                from: from.replace(Status::parse(to)),
                to: Status::parse(to),
                at: at(*ms),
            })
        })
        .collect();
    let row = |from: Option<&str>, to: &str, ms| RecordedTransition {
        issuance_id: "7".into(),
        from_status: from.map(str::to_owned),
        to_status: to.into(),
        observed_at: issuance_watcher::domain::timefmt::to_db(at(ms)),
    };
    let lookup = |ms| RequestRecord {
        at: at(ms),
        method: "GET".into(),
        path: "/api/v1/points/issuance/7".into(),
        status: 200,
    };
    let requests = [lookup(1_000), lookup(15_000), lookup(21_000)];
    let dropped = [
        row(None, "WAITED", 1_000),
        row(Some("WAITED"), "DONE", 21_000),
    ];
    let c = verify::compare(&dropped, &truth, chrono::Duration::zero());
    assert!(c.exactly_once() && c.unobserved == 1, "{}", c.summary());
    let served = served_statuses(&dropped, &truth, &requests, &[], KILL_MARGIN);
    assert_eq!(
        (served.answers, served.unrecorded.len()),
        (3, 1),
        "{served:?}"
    );
    assert!(served.unrecorded[0].contains("READY"), "{served:?}");
    // Killed 0.2 s after READY was served: the answer may have been lost.
    let killed = served_statuses(&dropped, &truth, &requests, &[at(15_200)], KILL_MARGIN);
    assert_eq!(
        (killed.unrecorded.len(), killed.lost_to_kills),
        (0, 1),
        "{killed:?}"
    );
    let complete = [
        row(None, "WAITED", 1_000),
        row(Some("WAITED"), "READY", 15_000),
        row(Some("READY"), "DONE", 21_000),
    ];
    let served = served_statuses(&complete, &truth, &requests, &[], KILL_MARGIN);
    assert!(served.unrecorded.is_empty(), "{served:?}");
}

async fn run(plan: Plan) {
    let started = Instant::now();
    let mut sim_config = sim_config(plan.seed);
    sim_config.record_requests = true;
    let sim = start_sim(sim_config).await;
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
                // Pacing the feed (a wave every 100 ms), not a wait.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let mut rng = fastrand::Rng::with_seed(plan.seed);
    let mut kills = 0usize;
    let mut incarnation = 0usize;
    let settle_deadline = Duration::from_secs(60);
    let mut feeding_done_at: Option<Instant> = None;
    // (started, killed) of each incarnation, in real time.
    let mut lives: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    // Life after life until enough kills and the feed is done; its deadline
    // is the assertion at the end of each turn, and the last one's wait.
    loop {
        incarnation += 1;
        let log = dir.path().join(format!("daemon-{incarnation:04}.log"));
        let born = Utc::now();
        let mut child = spawn_daemon(&config, &log);
        let feeding = !feeder.is_finished();
        if !feeding && feeding_done_at.is_none() {
            feeding_done_at = Some(Instant::now());
        }
        if kills >= plan.min_kills && !feeding {
            // The last incarnation runs until everything has settled.
            let settled = wait_settled(&store, settle_deadline).await;
            let exited = child.try_wait().unwrap();
            lives.push((born, Utc::now()));
            child.kill().ok();
            child.wait().ok();
            assert!(
                exited.is_none(),
                "the last daemon exited by itself: {exited:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            if let Err(e) = settled {
                panic!("after the last restart: {e}");
            }
            break;
        }
        // A random life before the kill: time let pass on purpose.
        let alive_for = Duration::from_millis(rng.u64(30..=1_200));
        tokio::time::sleep(alive_for).await;
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "daemon {incarnation} exited by itself ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        lives.push((born, Utc::now()));
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
    let requests = sim.request_log();
    let kill_times: Vec<DateTime<Utc>> = lives.iter().map(|(_, killed)| *killed).collect();
    let served = served_statuses(
        &recorded_transitions(&store).await,
        &sim.ground_truth(),
        &requests,
        &kill_times,
        KILL_MARGIN,
    );
    let kills_seen = kills_by_moment(&lives[..kills], &requests);
    let stats = sim.stats();
    println!(
        "crash safety: {} issuances, {kills} SIGKILLs survived ({incarnation} daemon starts; {} before the first answer, {} while answers were arriving), {} API requests, {} transitions recorded, {} true, {} unobservable between polls; {} statuses served in a 200 checked ({} close to a kill, {} of them lost to it, at most {:?} before it; {} ambiguous), {} served but never recorded; {:.1}s",
        plan.issuances,
        kills_seen.before_first_answer,
        kills_seen.while_answering,
        stats.total_requests,
        c.recorded,
        c.true_transitions,
        c.unobserved,
        served.answers,
        served.near_kill,
        served.lost_to_kills,
        served
            .longest_lost_before_kill
            .map(|d| d.to_std().unwrap_or_default()),
        served.ambiguous,
        served.unrecorded.len(),
        started.elapsed().as_secs_f64()
    );
    assert_none(
        &served.unrecorded,
        "statuses served in a 200, far from any kill, were never recorded",
    );
    // The run tested what it claims: most kills landed while answers were
    // coming in, and answers were served close enough to a kill to be lost.
    assert!(
        kills_seen.while_answering >= plan.min_kills / 2,
        "too few kills landed while polls were being answered: {kills_seen:?}"
    );
    assert!(
        served.near_kill > 0,
        "no answer was served close to a kill: {served:?}"
    );
    store.close().await;
    sim.shutdown().await;
}

#[derive(Debug, Default)]
struct KillMoments {
    /// The daemon was killed before any lookup of its life was answered.
    before_first_answer: usize,
    /// A lookup was answered in the last 200 ms of its life.
    while_answering: usize,
}

fn kills_by_moment(
    lives: &[(DateTime<Utc>, DateTime<Utc>)],
    requests: &[RequestRecord],
) -> KillMoments {
    let recent = chrono::Duration::milliseconds(200);
    let mut moments = KillMoments::default();
    for (born, killed) in lives {
        let answered: Vec<&RequestRecord> = requests
            .iter()
            .filter(|q| q.status == 200 && q.at >= *born && q.at <= *killed)
            .collect();
        if answered.is_empty() {
            moments.before_first_answer += 1;
        } else if answered.iter().any(|q| q.at >= *killed - recent) {
            moments.while_answering += 1;
        }
    }
    moments
}

/// The kill storm of the recovery issue: 300 issuances moving WAITED (2–10 s)
/// → READY (4–12 s) → DONE/CANCELLED/FAIL, the daemon killed 25 times in about
/// 17 s, with `poll.lease` and `poll.startup_spread` at their defaults (2 min,
/// 10 s). Every state lasts longer than a daemon's life plus its restart, so
/// every true transition must be recorded, each once: a restart takes over the
/// dead daemon's claims at once and resumes the schedule instead of respreading it.
async fn a_kill_storm_with_default_leases_observes_every_transition() {
    let started = Instant::now();
    let lifecycle = bunjang_sim::LifecycleConfig {
        waited_min: Duration::from_secs(2),
        waited_max: Duration::from_secs(10),
        deposit: bunjang_sim::DepositTiming::Within {
            min: Duration::from_secs(4),
            max: Duration::from_secs(12),
        },
        ..fast_lifecycle()
    };
    let sim = start_sim(sim_config(13).with_lifecycle(lifecycle)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(
        dir.path(),
        &sim.base_url(),
        1000,
        16,
        "",
        "interval = \"300ms\"\nmax_interval = \"1s\"\nlease = \"2m\"\nstartup_spread = \"10s\"",
    );
    migrate(&config);
    let store = open_store(dir.path()).await;
    store.add_ids(&sim.seed(300)).await.unwrap();
    let mut rng = fastrand::Rng::with_seed(13);
    for kill in 0..25 {
        let log = dir.path().join(format!("daemon-{kill:04}.log"));
        let mut child = spawn_daemon(&config, &log);
        // A random life before the kill: time let pass on purpose.
        tokio::time::sleep(Duration::from_millis(rng.u64(300..=1_060))).await;
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "daemon {kill} exited by itself ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let storm = started.elapsed();
    let log = dir.path().join("daemon-last.log");
    let mut last = spawn_daemon(&config, &log);
    let settled = wait_settled(&store, Duration::from_secs(60)).await;
    last.kill().ok();
    last.wait().ok();
    if let Err(e) = settled {
        panic!("after the storm: {e}");
    }
    let c = assert_history_matches(&store, &sim, 300).await;
    println!(
        "kill storm: 25 SIGKILLs in {storm:?}, {} of {} true transitions recorded",
        c.recorded, c.true_transitions
    );
    assert_eq!(
        c.unobserved,
        0,
        "transitions missed in a crash loop: {}\n{:#?}",
        c.summary(),
        c.examples
    );
    store.close().await;
    sim.shutdown().await;
}

/// Paused, not killed: daemon A is stopped (SIGSTOP) for longer than its lease,
/// three times, while daemon B runs on the same file; then it resumes
/// (SIGCONT) with whatever it had polled before the pause. Its late results
/// are fenced out: 0 duplicated, 0 invented, and no settled row is ever set
/// back to active (a trigger the test adds records any such update).
///
/// Every lookup is answered after 400 ms, so each pause catches A with a full
/// window of polls in flight; they outlive its 1 s timeout while it is
/// stopped and come back as failed polls of rows B has meanwhile polled and
/// often settled. Only the fence keeps those failures from setting settled
/// rows back to active (an answered poll is also refused by the stored-status
/// check, so this is the case that shows the fence).
async fn a_paused_daemon_never_writes_over_newer_results() {
    let mut sim_config = sim_config(14).with_faults(FaultConfig {
        slow: FaultRule::always(),
        slow_delay: Duration::from_millis(400),
        ..FaultConfig::default()
    });
    sim_config.record_requests = true;
    let sim = start_sim(sim_config).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(dir.path(), &sim.base_url(), 1000, 32, "", "");
    migrate(&config);
    let store = open_store(dir.path()).await;
    record_reactivations(&Db::from(&store)).await;
    let ids = 300;
    let feeder = {
        let (sim, store) = (sim.clone(), store.clone());
        tokio::spawn(async move {
            for _ in 0..20 {
                store.add_ids(&sim.seed(ids / 20)).await.unwrap();
                // Pacing the feed (a wave every 300 ms), not a wait.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let daemon = |name: &str| {
        reliability::common::daemon::Spawn::new(&config)
            .log(&dir.path().join(format!("daemon-{name}.log")))
            .rust_log("info")
    };
    // A's listener shows how many of its results it dropped as stale.
    let port_a = free_port();
    let a = daemon("a")
        .env(
            "ISSUANCE_WATCHER__HTTP__LISTEN",
            format!("127.0.0.1:{port_a}"),
        )
        .spawn();
    // A alone for a while, then beside B: times chosen on purpose, not waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = daemon("b").spawn();
    // poll.lease is 1.5 s here: each pause outlasts it.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        a.signal("STOP");
        tokio::time::sleep(Duration::from_secs(3)).await;
        a.signal("CONT");
    }
    feeder.await.unwrap();
    let settled = wait_settled(&store, Duration::from_secs(60)).await;
    let metrics_a = metrics::get(&format!("http://127.0.0.1:{port_a}/metrics"))
        .await
        .map(|(_, text)| text)
        .unwrap_or_default();
    let stale =
        metrics::sample(&metrics_a, "issuance_watcher_stale_results_total", &[]).unwrap_or(0.0);
    let log_b = b.stop().await;
    let log_a = a.stop().await;
    if let Err(e) = settled {
        panic!("{e}");
    }
    let c = assert_history_matches(&store, &sim, ids).await;
    let db = Db::from(&store);
    let reactivated = db.rows("SELECT id, at FROM test_reactivated", &[]).await;
    let anomalies = db
        .number("SELECT count(*) FROM transitions WHERE anomaly IS NOT NULL")
        .await;
    println!(
        "paused, not killed: {ids} issuances, A stopped 3 × 3 s (lease 1.5 s), {} transitions recorded, {anomalies} anomalies, {} settled rows re-activated, {stale} of A's results dropped as stale",
        c.recorded,
        reactivated.len()
    );
    assert!(
        stale > 0.0,
        "A resumed with no stale results, so the pauses tested nothing:\n{metrics_a}"
    );
    assert!(
        reactivated.is_empty(),
        "settled rows re-activated: {reactivated:?}"
    );
    assert_eq!(anomalies, 0);
    for log in [&log_a, &log_b] {
        assert!(
            !log.contains("panicked") && !log.contains("database is locked"),
            "{log}"
        );
    }
    store.close().await;
    sim.shutdown().await;
}

/// A table `test_reactivated` and a trigger adding to it every settled row
/// set back to active (each engine's trigger language).
async fn record_reactivations(db: &Db) {
    match db {
        Db::Sqlite(_) => {
            db.exec(
                "CREATE TABLE test_reactivated (id TEXT, at TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
                &[],
            )
            .await;
            db.exec(
                "CREATE TRIGGER test_no_reactivation AFTER UPDATE OF watch ON issuances
                 WHEN OLD.watch = 'settled' AND NEW.watch = 'active'
                 BEGIN INSERT INTO test_reactivated (id) VALUES (NEW.id); END",
                &[],
            )
            .await;
        }
        Db::Postgres(_) => {
            db.exec(
                "CREATE TABLE test_reactivated (id text, at text DEFAULT CAST(clock_timestamp() AS text))",
                &[],
            )
            .await;
            db.exec(
                "CREATE FUNCTION test_no_reactivation() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN INSERT INTO test_reactivated (id) VALUES (NEW.id); RETURN NEW; END $$",
                &[],
            )
            .await;
            db.exec(
                "CREATE TRIGGER test_no_reactivation AFTER UPDATE OF watch ON issuances
                 FOR EACH ROW WHEN (OLD.watch = 'settled' AND NEW.watch = 'active')
                 EXECUTE FUNCTION test_no_reactivation()",
                &[],
            )
            .await;
        }
    }
}

on_both_engines!(
    killed_daemon_records_every_transition_exactly_once(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_kill_storm_with_default_leases_observes_every_transition(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_paused_daemon_never_writes_over_newer_results(flavor = "multi_thread", worker_threads = 2),
);
