//! `hosts`: what more daemons on one database buy. The `throughput` set-up
//! (100,000 READY issuances, no rate limit, polling as fast as it can) with 1,
//! 2 and 3 daemons on one database, each with its own owner id, as several
//! hosts would run them; on this one machine they also share its cores, so
//! the CPU per poll says what separate hosts would add.

use std::time::{Duration, Instant};

use chrono::Utc;

use crate::Opts;
use crate::harness::{
    BenchDb, ChildGuard, DaemonConfig, Engine, cpu_seconds, cpu_seconds_of_tree, finish,
    insert_active, local_postmaster, scalar, start_daemon_logging_to, start_simulator, workdir,
};
use crate::table::{Table, Verdict};

const B: &str = "hosts";

pub(crate) async fn hosts(opts: &Opts, table: &mut Table) -> anyhow::Result<()> {
    let window = Duration::from_secs(if opts.quick { 5 } else { 10 });
    table.add(
        B,
        "set-up",
        format!(
            "100000 active issuances, each daemon concurrency {}, no rate limit, {:.0} s window, all on this machine",
            opts.concurrency,
            window.as_secs_f64()
        ),
    );
    for engine in Engine::all() {
        for daemons in 1..=3 {
            if let Err(e) = hosts_on(&engine, daemons, opts, window, table).await {
                table.push(
                    B,
                    format!("{}: {daemons} daemons: error", engine.name()),
                    format!("{e:#}"),
                    "",
                    Verdict::Skipped,
                );
            }
        }
    }
    Ok(())
}

async fn hosts_on(
    engine: &Engine,
    daemons: usize,
    opts: &Opts,
    window: Duration,
    table: &mut Table,
) -> anyhow::Result<()> {
    let active = 100_000;
    let name = engine.name();
    let dir = workdir()?;
    let (sim, base_url) = start_simulator(dir.path(), active)?;
    let db = BenchDb::create(engine, dir.path(), "hosts").await?;
    let store = db.open().await?;
    insert_active(&store, active, Utc::now()).await?;
    let config = dir.path().join("daemon.toml");
    DaemonConfig {
        base_url: &base_url,
        database: &db,
        requests_per_second: 1e6,
        concurrency: opts.concurrency,
        interval: "1ms",
        max_interval: "1ms",
    }
    .write(&config)?;
    let mut running: Vec<ChildGuard> = (0..daemons)
        .map(|i| start_daemon_logging_to(&dir.path().join(format!("daemon-{i}.log")), &config))
        .collect::<anyhow::Result<_>>()?;
    tokio::time::sleep(Duration::from_secs(if opts.quick { 2 } else { 3 })).await;
    let postmaster = local_postmaster(engine, &store).await?;
    let cpu = |running: &[ChildGuard]| {
        running.iter().map(|d| cpu_seconds(d.pid())).sum::<f64>()
            + cpu_seconds(sim.pid())
            + postmaster.map_or(0.0, cpu_seconds_of_tree)
    };
    let polls = async || scalar(&store, "SELECT CAST(sum(polls) AS BIGINT) FROM issuances").await;
    let (p0, c0, t0) = (polls().await?, cpu(&running), Instant::now());
    tokio::time::sleep(window).await;
    let (p1, c1, elapsed) = (polls().await?, cpu(&running), t0.elapsed());
    // Every daemon is asked to stop, not only those before a failure.
    let stopped: Vec<bool> = running.iter_mut().map(ChildGuard::terminate).collect();
    let clean = stopped.iter().all(|clean| *clean);
    let errors = scalar(
        &store,
        "SELECT count(*) FROM issuances WHERE last_error IS NOT NULL",
    )
    .await?;
    store.close().await;
    db.remove().await?;
    let done = (p1 - p0).max(0) as f64;
    let per_poll = if done > 0.0 {
        (c1 - c0) * 1e6 / done
    } else {
        f64::NAN
    };
    table.add(
        B,
        format!("{name}: {daemons} daemon(s), polls/s committed in all"),
        format!("{:.0}", done / elapsed.as_secs_f64()),
    );
    table.add(
        B,
        format!(
            "{name}: {daemons} daemon(s), CPU per poll (daemons + simulator{})",
            match engine {
                Engine::Postgres(_) => " + server",
                Engine::Sqlite => "",
            }
        ),
        format!("{per_poll:.0} µs"),
    );
    table.add(
        B,
        format!("{name}: {daemons} daemon(s), rows with an error / clean exits on SIGTERM"),
        format!("{errors} / {}", if clean { "yes" } else { "NO" }),
    );
    drop(sim);
    finish(dir);
    Ok(())
}
