//! `throughput`: a child simulator with 100,000 READY issuances against a child
//! daemon polling as fast as it can; the database's share alone; the simulator's
//! own ceiling under `wrk` with a static token.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use issuance_watcher::domain::Decision;
use issuance_watcher::domain::status::Status;
use issuance_watcher::store::{Lease, PollRecord, RecordKind, Store};

use crate::Opts;
use crate::harness::{
    BenchDb, DaemonConfig, Engine, FIRST_SIM_ID, STATIC_TOKEN, cpu_seconds, cpu_seconds_of_tree,
    finish, insert_active, local_postmaster, scalar, start_daemon, start_simulator, vm_kib,
    workdir,
};
use crate::table::{Table, Verdict};
use crate::write::transition_record;

const B: &str = "throughput";

/// The bench on each engine ([`Engine::all`]): SQLite, then PostgreSQL if a
/// server is named. The simulator's `wrk` ceiling is measured once.
pub(crate) async fn throughput(opts: &Opts, table: &mut Table) -> anyhow::Result<()> {
    let window = Duration::from_secs(if opts.quick { 5 } else { 10 });
    table.add(
        B,
        "set-up",
        format!(
            "100000 active issuances, daemon concurrency {}, poll.interval 1ms, no rate limit, {:.0} s window",
            opts.concurrency,
            window.as_secs_f64()
        ),
    );
    for (i, engine) in Engine::all().iter().enumerate() {
        if let Err(e) = throughput_on(engine, opts, window, i == 0, table).await {
            table.push(
                B,
                format!("{}: error", engine.name()),
                format!("{e:#}"),
                "",
                Verdict::Skipped,
            );
        }
    }
    Ok(())
}

async fn throughput_on(
    engine: &Engine,
    opts: &Opts,
    window: Duration,
    with_wrk: bool,
    table: &mut Table,
) -> anyhow::Result<()> {
    let active = 100_000;
    let warmup = Duration::from_secs(if opts.quick { 2 } else { 3 });
    let name = engine.name();
    let dir = workdir()?;
    let (sim, base_url) = start_simulator(dir.path(), active)?;
    let db = BenchDb::create(engine, dir.path(), "watcher").await?;
    let store = db.open().await?;
    insert_active(&store, active, Utc::now()).await?;

    let ceiling = store_ceiling(engine, dir.path(), active, opts.concurrency, window).await?;
    table.add(
        B,
        format!(
            "{name}: database alone, claim → record cycles, polls/s (answers made in memory, no HTTP)"
        ),
        format!("{ceiling:.0}"),
    );

    // The simulator's own ceiling on the same endpoint, with the same number of connections.
    let wrk = if with_wrk {
        Some(run_wrk(
            dir.path(),
            &base_url,
            active,
            opts.concurrency,
            window,
        ))
    } else {
        None
    };
    let wrk_rate = match wrk {
        None => None,
        Some(Ok((rate, note))) => {
            table.add(
                B,
                "wrk → simulator, lookups/s (ceiling)",
                format!("{rate:.0}{note}"),
            );
            Some(rate)
        }
        Some(Err(e)) => {
            table.push(
                B,
                "wrk → simulator, lookups/s (ceiling)",
                format!("{e:#}"),
                "",
                Verdict::Skipped,
            );
            None
        }
    };

    let config = dir.path().join("daemon.toml");
    DaemonConfig {
        base_url: &base_url,
        database: &db,
        requests_per_second: 1e6, // the highest `api.requests_per_second` accepts: no limit at these rates
        concurrency: opts.concurrency,
        interval: "1ms",
        max_interval: "1ms",
    }
    .write(&config)?;
    let mut daemon = start_daemon(dir.path(), &config)?;
    tokio::time::sleep(warmup).await;
    let polls = |store: Store| async move {
        scalar(&store, "SELECT CAST(sum(polls) AS BIGINT) FROM issuances").await
    };
    let (p0, t0) = (polls(store.clone()).await?, Instant::now());
    let postmaster = local_postmaster(engine, &store).await?;
    let server_cpu = || postmaster.map(cpu_seconds_of_tree);
    let (d0, s0, g0) = (
        cpu_seconds(daemon.pid()),
        cpu_seconds(sim.pid()),
        server_cpu(),
    );
    tokio::time::sleep(window).await;
    let (p1, elapsed) = (polls(store.clone()).await?, t0.elapsed());
    let (d1, s1, g1) = (
        cpu_seconds(daemon.pid()),
        cpu_seconds(sim.pid()),
        server_cpu(),
    );
    let hwm = vm_kib(daemon.pid(), "VmHWM").unwrap_or(0);
    let clean = daemon.terminate();
    let errors = scalar(
        &store,
        "SELECT count(*) FROM issuances WHERE last_error IS NOT NULL",
    )
    .await?;
    store.close().await;
    db.remove().await?;
    let done = (p1 - p0).max(0) as f64;
    let rate = done / elapsed.as_secs_f64();
    let us_per_poll = |cpu: f64| {
        if done > 0.0 {
            cpu * 1e6 / done
        } else {
            f64::NAN
        }
    };
    table.add(
        B,
        format!("{name}: daemon → simulator, polls/s committed (JWT, HTTP, JSON, {name})"),
        format!("{rate:.0}"),
    );
    if let Some(wrk) = wrk_rate {
        let ratio = rate / wrk;
        // A measure of the daemon's overhead over a bare HTTP client, not a
        // target: on 2 cores the daemon and the simulator share the CPU
        // (docs/performance.md).
        table.add(
            B,
            format!("{name}: daemon rate / wrk rate"),
            format!("{ratio:.2}"),
        );
    }
    table.add(
        B,
        format!("{name}: daemon CPU per poll (user+sys)"),
        format!("{:.0} µs", us_per_poll(d1 - d0)),
    );
    table.add(
        B,
        format!("{name}: simulator CPU per poll, during the daemon run"),
        format!("{:.0} µs", us_per_poll(s1 - s0)),
    );
    if let (Some(g0), Some(g1)) = (g0, g1) {
        // Meaningful when the server runs on this machine (its processes are
        // counted by name). With the three processes' CPU per poll, what two
        // otherwise idle cores could sustain follows, whatever else ran
        // during the window.
        let server = us_per_poll(g1 - g0);
        let total = us_per_poll(d1 - d0) + us_per_poll(s1 - s0) + server;
        table.add(
            B,
            format!("{name}: server CPU per poll (postmaster and its backends)"),
            format!("{server:.0} µs"),
        );
        table.add(
            B,
            format!(
                "{name}: CPU per poll, daemon + simulator + server → polls/s two idle cores allow"
            ),
            format!("{total:.0} µs → {:.0}", 2e6 / total),
        );
    }
    table.add(
        B,
        format!("{name}: daemon peak RSS (VmHWM) under full load"),
        format!("{:.1} MiB", hwm as f64 / 1024.0),
    );
    table.add(
        B,
        format!("{name}: rows with an error / clean exit on SIGTERM"),
        format!("{errors} / {}", if clean { "yes" } else { "NO" }),
    );
    drop(sim);
    finish(dir);
    Ok(())
}

/// The database's share of a poll, alone: the daemon's claim → record cycle
/// over the same number of active rows, with unchanged READY answers made up in
/// memory. The daemon cannot record polls faster than this.
pub(crate) async fn store_ceiling(
    engine: &Engine,
    dir: &Path,
    active: usize,
    batch: usize,
    window: Duration,
) -> anyhow::Result<f64> {
    let db = BenchDb::create(engine, dir, "ceiling").await?;
    let store = db.open().await?;
    insert_active(&store, active, Utc::now()).await?;
    let lease = |now: DateTime<Utc>| Lease {
        now,
        until: now + chrono::Duration::minutes(2),
        limit: batch,
    };
    let started = Instant::now();
    let mut polled = 0;
    let mut claimed = store.claim_due(Utc::now(), Utc::now(), batch).await?;
    while started.elapsed() < window {
        anyhow::ensure!(!claimed.is_empty(), "ran out of due rows");
        let now = Utc::now();
        let records: Vec<PollRecord> = claimed
            .iter()
            .map(|c| {
                let mut record = transition_record(c.clone(), Status::Ready, now);
                // Due again at once, like the daemon's run with a 1 ms interval.
                if let RecordKind::Observed { decision, .. } = &mut record.kind {
                    *decision = Decision::PollAt(now);
                }
                record
            })
            .collect();
        polled += records.len();
        claimed = store
            .record_and_claim(&records, lease(now))
            .await?
            .1
            .context("the claim failed")?;
    }
    let rate = polled as f64 / started.elapsed().as_secs_f64();
    store.close().await;
    db.remove().await?;
    Ok(rate)
}

/// Runs wrk against the lookup endpoint, cycling over the ids; returns requests/s.
pub(crate) fn run_wrk(
    dir: &Path,
    base_url: &str,
    ids: usize,
    connections: usize,
    window: Duration,
) -> anyhow::Result<(f64, String)> {
    let script = dir.join("lookup.lua");
    std::fs::write(
        &script,
        format!(
            "counter = 0\nrequest = function()\n  counter = counter + 1\n  return wrk.format(nil, \"/api/v1/points/issuance/\" .. ({FIRST_SIM_ID} + counter % {ids}))\nend\n"
        ),
    )?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let output = Command::new("wrk")
        .args([
            "-t",
            &threads.min(connections).to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{}s", window.as_secs()),
            "-H",
            &format!("Authorization: Bearer {STATIC_TOKEN}"),
            "-s",
        ])
        .arg(&script)
        .arg(format!("{base_url}/api/v1/points/issuance/{FIRST_SIM_ID}"))
        .output()
        .map_err(|e| {
            anyhow::anyhow!("wrk not available ({e}); install it with `apt-get install -y wrk`")
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let rate: f64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?;
    let note = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .map(|l| format!(" ({})", l.trim()))
        .unwrap_or_default();
    Ok((rate, note))
}
