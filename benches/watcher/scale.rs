//! `scale`: 1,000,000 issuances (900,000 settled, 100,000 active): the daemon's
//! memory and time to its first request, the cost of one claim tick as the
//! settled rows grow, database bytes per issuance, and the dashboard's
//! render time at the largest stage (`dashboard.rs`).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{TimeZone, Utc};
use issuance_watcher::store::Store;

use crate::Opts;
use crate::harness::{
    BenchDb, ChildGuard, DaemonConfig, Engine, finish, insert_active, start_daemon,
    start_simulator, vm_kib, workdir,
};
use crate::table::Table;

/// Adds `count` settled issuances (ids from `first`), each with its three
/// transitions and, for one in five, a cleared DUE_SOON flag; 100,000 per transaction.
pub(crate) async fn insert_settled(store: &Store, first: u64, count: u64) -> anyhow::Result<()> {
    const CHUNK: u64 = 100_000;
    let mut conn = store.pool().acquire().await?;
    sqlx::query("PRAGMA synchronous = OFF")
        .execute(&mut *conn)
        .await?;
    let base = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    let mut done = 0;
    while done < count {
        let n = CHUNK.min(count - done);
        let from = i64::try_from(first + done)?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::query(
            "WITH RECURSIVE s(n) AS (SELECT ?1 UNION ALL SELECT n + 1 FROM s WHERE n < ?1 + ?2 - 1)
             INSERT INTO issuances (id, status, amount, created_at, modified_at, vbank_due_at,
                                    vbank_account_number, bank_name, vbank_holder_name, watch,
                                    next_poll_at, polls, last_polled_at, last_seen_at, added_at)
             SELECT CAST(n AS TEXT),
                    CASE WHEN n % 100 < 80 THEN 'DONE' WHEN n % 100 < 97 THEN 'CANCELLED' ELSE 'FAIL' END,
                    10000 * (1 + n % 50),
                    strftime('%Y-%m-%dT%H:%M:%fZ', ?3 + n * 3, 'unixepoch'),
                    strftime('%Y-%m-%dT%H:%M:%fZ', ?3 + n * 3 + 40000, 'unixepoch'),
                    strftime('%Y-%m-%dT%H:%M:%fZ', ?3 + n * 3 + 100000, 'unixepoch'),
                    CAST(451235000000 + n AS TEXT), '국민은행', '번개장터', 'settled',
                    strftime('%Y-%m-%dT%H:%M:%fZ', ?3 + n * 3 + 40001, 'unixepoch'),
                    60 + n % 100,
                    strftime('%Y-%m-%dT%H:%M:%fZ', ?3 + n * 3 + 40001, 'unixepoch'),
                    strftime('%Y-%m-%dT%H:%M:%fZ', ?3 + n * 3 + 40001, 'unixepoch'),
                    strftime('%Y-%m-%dT%H:%M:%fZ', ?3 + n * 3, 'unixepoch')
             FROM s",
        )
        .bind(from)
        .bind(i64::try_from(n)?)
        .bind(base)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO transitions (issuance_id, from_status, to_status, observed_at, modified_at)
             SELECT id, NULL, 'WAITED', created_at, created_at
               FROM issuances WHERE rowid > (SELECT max(rowid) FROM issuances) - ?1
             UNION ALL
             SELECT id, 'WAITED', 'READY', created_at, created_at
               FROM issuances WHERE rowid > (SELECT max(rowid) FROM issuances) - ?1 AND status <> 'FAIL'
             UNION ALL
             SELECT id, CASE status WHEN 'FAIL' THEN 'WAITED' ELSE 'READY' END, status, last_seen_at, modified_at
               FROM issuances WHERE rowid > (SELECT max(rowid) FROM issuances) - ?1",
        )
        .bind(i64::try_from(n)?)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO flags (issuance_id, kind, raised_at, cleared_at)
             SELECT id, 'DUE_SOON', modified_at, last_seen_at
               FROM issuances WHERE rowid > (SELECT max(rowid) FROM issuances) - ?1 AND rowid % 5 = 0",
        )
        .bind(i64::try_from(n)?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        done += n;
    }
    sqlx::query("PRAGMA synchronous = FULL")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Makes every active row due again (overdue by up to 10 minutes).
pub(crate) async fn make_all_due(store: &Store) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE issuances SET next_poll_at = strftime('%Y-%m-%dT%H:%M:%fZ', ?1 - (rowid % 600), 'unixepoch')
         WHERE watch = 'active'",
    )
    .bind(Utc::now().timestamp())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Median and p95 of one claim tick: `claim_due` of 16 (the default concurrency)
/// plus `next_due`, as the scheduler does when a batch is not full.
pub(crate) async fn tick_cost(
    store: &Store,
    iterations: usize,
) -> anyhow::Result<(Duration, Duration)> {
    make_all_due(store).await?;
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let now = Utc::now();
        let started = Instant::now();
        let claimed = store
            .claim_due(now, now + chrono::Duration::minutes(2), 16)
            .await?;
        store.next_due().await?;
        times.push(started.elapsed());
        anyhow::ensure!(claimed.len() == 16, "claimed only {}", claimed.len());
    }
    times.sort();
    Ok((times[times.len() / 2], times[times.len() * 95 / 100]))
}

pub(crate) async fn sim_requests(http: &reqwest::Client, base_url: &str) -> anyhow::Result<u64> {
    let body = http
        .get(format!("{base_url}/_sim/stats"))
        .send()
        .await?
        .bytes()
        .await?;
    let stats: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(stats["totalRequests"].as_u64().unwrap_or(0))
}

pub(crate) async fn scale(opts: &Opts, table: &mut Table) -> anyhow::Result<()> {
    const B: &str = "scale";
    let active: usize = 100_000;
    let dir = workdir()?;
    let bench_db = BenchDb::create(&Engine::Sqlite, dir.path(), "watcher").await?;
    let db = dir.path().join("watcher.db");
    let store = bench_db.open().await?;
    let iterations = if opts.quick { 100 } else { 300 };
    let generated = Instant::now();
    insert_active(&store, active, Utc::now()).await?;
    let active_generation = generated.elapsed();
    // Settled ids live far from the simulator's.
    let settled_base = 50_000_000u64;
    let stages: &[u64] = if opts.quick {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 900_000, 1_000_000]
    };
    let daemon_stage = *stages
        .iter()
        .rev()
        .nth(usize::from(!opts.quick))
        .unwrap_or(&0);
    let mut settled = 0;
    let mut generation = Duration::ZERO;
    for &stage in stages {
        let t = Instant::now();
        insert_settled(&store, settled_base + settled, stage - settled).await?;
        generation += t.elapsed();
        settled = stage;
        let (median, p95) = tick_cost(&store, iterations).await?;
        table.add(
            B,
            format!(
                "claim tick (claim_due 16 + next_due), {} active + {} settled rows",
                short(active as u64),
                short(settled)
            ),
            format!(
                "median {:.0} µs, p95 {:.0} µs",
                median.as_secs_f64() * 1e6,
                p95.as_secs_f64() * 1e6
            ),
        );
        if stage == *stages.last().unwrap_or(&0) {
            let settled_id = (settled_base + settled / 2).to_string();
            let rounds = if opts.quick { 5 } else { 20 };
            crate::dashboard::render_times(table, &store, &settled_id, rounds).await?;
        }
        if stage == daemon_stage {
            daemon_at_scale(table, &store, &bench_db, &db, dir.path(), active, settled).await?;
        }
    }
    table.add(
        B,
        "bulk generation (SQL, 100k rows per transaction)",
        format!(
            "{:.1} s for {} settled issuances, {:.1} s for {} active",
            generation.as_secs_f64(),
            short(settled),
            active_generation.as_secs_f64(),
            short(active as u64)
        ),
    );
    store.close().await;
    finish(dir);
    for engine in Engine::all() {
        first_poll_all_active(&engine, table).await?;
    }
    Ok(())
}

pub(crate) async fn daemon_at_scale(
    table: &mut Table,
    store: &Store,
    bench_db: &BenchDb,
    db: &Path,
    dir: &Path,
    active: usize,
    settled: u64,
) -> anyhow::Result<()> {
    const B: &str = "scale";
    let total = active as u64 + settled;
    make_all_due(store).await?;
    store.checkpoint().await?;
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let bytes = std::fs::metadata(db)?.len() + std::fs::metadata(&wal).map_or(0, |m| m.len());
    let transitions: i64 = sqlx::query_scalar("SELECT count(*) FROM transitions")
        .fetch_one(store.pool())
        .await?;
    table.add(
        B,
        format!(
            "database size, {} issuances + {} transitions (indexes included)",
            short(total),
            short(transitions as u64)
        ),
        format!(
            "{:.0} MiB, {:.0} bytes per issuance",
            bytes as f64 / 1048576.0,
            bytes as f64 / total as f64
        ),
    );
    let (sim, base_url) = start_simulator(dir, active)?;
    let config = dir.join("daemon-scale.toml");
    // Production settings, all 100k active rows overdue.
    production(&base_url, bench_db).write(&config)?;
    let http = reqwest::Client::new();
    let (first, mut daemon) = first_poll(&http, dir, &config, &base_url).await?;
    table.check(
        B,
        format!(
            "start to first poll, {} issuances ({} active, all overdue)",
            short(total),
            short(active as u64)
        ),
        format!("{:.0} ms", first.as_secs_f64() * 1e3),
        "≤ 1 s",
        first <= Duration::from_secs(1),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let hwm = vm_kib(daemon.pid(), "VmHWM").unwrap_or(0);
    let rss = vm_kib(daemon.pid(), "VmRSS").unwrap_or(0);
    let polled = sim_requests(&http, &base_url).await?;
    daemon.terminate();
    table.check(
        B,
        format!(
            "daemon memory, {} issuances, 5 s at 20 polls/s ({polled} polls)",
            short(total)
        ),
        format!(
            "peak {:.1} MiB (VmHWM), now {:.1} MiB (VmRSS)",
            hwm as f64 / 1024.0,
            rss as f64 / 1024.0
        ),
        "≤ 64 MiB",
        hwm <= 64 * 1024,
    );
    drop(sim);
    Ok(())
}

/// The daemon's production pace: 20 requests/s, 16 in flight, default cadence.
fn production<'a>(base_url: &'a str, database: &'a BenchDb) -> DaemonConfig<'a> {
    DaemonConfig {
        base_url,
        database,
        requests_per_second: 20.0,
        concurrency: 16,
        interval: "2s",
        max_interval: "10m",
    }
}

/// Starts the daemon on `config` and waits for its first request at the
/// simulator: how long that took, and the running daemon.
async fn first_poll(
    http: &reqwest::Client,
    dir: &Path,
    config: &Path,
    base_url: &str,
) -> anyhow::Result<(Duration, ChildGuard)> {
    anyhow::ensure!(
        sim_requests(http, base_url).await? == 0,
        "simulator not fresh"
    );
    let started = Instant::now();
    let daemon = start_daemon(dir, config)?;
    loop {
        if sim_requests(http, base_url).await? > 0 {
            return Ok((started.elapsed(), daemon));
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("no poll within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Start-up with a million rows, every one active and overdue (an import, or
/// a long outage): no statement before the first request may be proportional
/// to the rows. The simulator knows none of the ids; only the first request's
/// arrival is timed. On each engine.
pub(crate) async fn first_poll_all_active(
    engine: &Engine,
    table: &mut Table,
) -> anyhow::Result<()> {
    const B: &str = "scale";
    const ACTIVE: usize = 1_000_000;
    let dir = workdir()?;
    let db = BenchDb::create(engine, dir.path(), "watcher").await?;
    let store = db.open().await?;
    insert_active(&store, ACTIVE, Utc::now()).await?;
    if store.pg_pool().is_none() {
        make_all_due(&store).await?;
        store.checkpoint().await?;
    }
    store.close().await;
    let (sim, base_url) = start_simulator(dir.path(), 0)?;
    let config = dir.path().join("daemon-active.toml");
    production(&base_url, &db).write(&config)?;
    let http = reqwest::Client::new();
    let (first, mut daemon) = first_poll(&http, dir.path(), &config, &base_url).await?;
    daemon.terminate();
    table.check(
        B,
        format!(
            "{}: start to first poll, {} issuances ({} active, all overdue)",
            engine.name(),
            short(ACTIVE as u64),
            short(ACTIVE as u64)
        ),
        format!("{:.0} ms", first.as_secs_f64() * 1e3),
        "≤ 1 s",
        first <= Duration::from_secs(1),
    );
    drop(sim);
    db.remove().await?;
    finish(dir);
    Ok(())
}

pub(crate) fn short(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        n => n.to_string(),
    }
}
