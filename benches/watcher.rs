//! The benchmarks of issue 6, in one command that prints one table:
//!
//! ```text
//! cargo bench --bench watcher                      # all four, full size (~5 min)
//! cargo bench --bench watcher -- --quick           # smaller and shorter (~1.5 min)
//! cargo bench --bench watcher -- throughput scale  # only some: throughput, scale, write, efficiency
//! cargo bench --bench watcher -- --concurrency 128 # daemon concurrency (and wrk connections) in `throughput`
//! ```
//!
//! 1. `throughput`: a child `issuance-watcher simulate` (no rate limit, 100,000
//!    READY issuances) against a child `issuance-watcher run` polling as fast as
//!    it can; the same simulator's ceiling on the same endpoint with `wrk` and a
//!    static token (row skipped when `wrk` is not installed). CPU per poll is the
//!    daemon's user+sys time from `/proc/PID/stat`.
//! 2. `scale`: 1,000,000 issuances (900,000 settled with their transitions and
//!    flags, 100,000 active), bulk-generated in SQL; the daemon's memory, the time
//!    from its start to the first request at the simulator, the cost of one claim
//!    tick (`claim_due` + `next_due`) at 10k, 100k, 900k and 1M settled rows, and
//!    database bytes per issuance.
//! 3. `write`: `Store::record` with batches of 256 results that are all transitions.
//! 4. `efficiency`: the simulator's default lifecycle (the daily deposit model) in
//!    accelerated time, with the adaptive policy and with fixed-interval polling tuned
//!    to the same number of calls: calls per settled issuance, detection lag, and the
//!    DUE_SOON deadline check; without `--quick`, the same comparison on the old
//!    uniform deposit model, for information.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, TimeZone, Utc};
use issuance_watcher::domain::status::Status;
use issuance_watcher::domain::timefmt::{from_db, to_db};
use issuance_watcher::domain::{Decision, Observation, Vbank};
use issuance_watcher::settings::{DatabaseSettings, Settings};
use issuance_watcher::sim::cli::{DEMO_ACCESS_KEY, DEMO_SECRET_KEY};
use issuance_watcher::sim::{SimConfig, Simulator};
use issuance_watcher::store::{Claimed, Lease, PollRecord, RecordKind, Store};
use issuance_watcher::watcher::Watcher;
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_issuance-watcher");
const STATIC_TOKEN: &str = "bench-static-token";
/// The simulator's ids are `ID_BASE + 1 + seq`.
const FIRST_SIM_ID: u64 = issuance_watcher::sim::ID_BASE + 1;

#[derive(Debug, Clone)]
struct Opts {
    quick: bool,
    only: Vec<String>,
    concurrency: usize,
}

impl Opts {
    fn parse() -> anyhow::Result<Self> {
        let mut opts = Opts {
            quick: false,
            only: vec![],
            concurrency: 64,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                // cargo bench passes --bench to harness = false targets.
                "--bench" => {}
                "--quick" => opts.quick = true,
                "--concurrency" => {
                    opts.concurrency = args
                        .next()
                        .context("--concurrency needs a number")?
                        .parse()?
                }
                "throughput" | "scale" | "write" | "efficiency" => opts.only.push(arg),
                other => bail!(
                    "unknown argument {other:?} (expected --quick, --concurrency N, throughput, scale, write, efficiency)"
                ),
            }
        }
        Ok(opts)
    }

    fn runs(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Met,
    Missed,
    Info,
    Skipped,
}

#[derive(Debug, Clone)]
struct Row {
    bench: &'static str,
    metric: String,
    value: String,
    target: String,
    verdict: Verdict,
}

#[derive(Default)]
struct Table {
    rows: Vec<Row>,
}

impl Table {
    fn add(&mut self, bench: &'static str, metric: impl Into<String>, value: impl Into<String>) {
        self.push(bench, metric, value, "", Verdict::Info);
    }

    fn check(
        &mut self,
        bench: &'static str,
        metric: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        met: bool,
    ) {
        let verdict = if met { Verdict::Met } else { Verdict::Missed };
        self.push(bench, metric, value, target, verdict);
    }

    fn push(
        &mut self,
        bench: &'static str,
        metric: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        verdict: Verdict,
    ) {
        let row = Row {
            bench,
            metric: metric.into(),
            value: value.into(),
            target: target.into(),
            verdict,
        };
        eprintln!("  {} | {} | {}", row.bench, row.metric, row.value);
        self.rows.push(row);
    }

    fn print(&self) {
        println!("| benchmark | metric | value | target | |");
        println!("|---|---|---|---|---|");
        for r in &self.rows {
            let verdict = match r.verdict {
                Verdict::Met => "met",
                Verdict::Missed => "**missed**",
                Verdict::Info => "",
                Verdict::Skipped => "skipped",
            };
            println!(
                "| {} | {} | {} | {} | {} |",
                r.bench, r.metric, r.value, r.target, verdict
            );
        }
    }
}

fn main() -> anyhow::Result<()> {
    let opts = Opts::parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let machine = machine_line();
    eprintln!("{machine}");
    let mut table = Table::default();
    let started = Instant::now();
    runtime.block_on(async {
        if opts.runs("throughput") {
            eprintln!("== throughput");
            if let Err(e) = throughput(&opts, &mut table).await {
                table.push(
                    "throughput",
                    "error",
                    format!("{e:#}"),
                    "",
                    Verdict::Skipped,
                );
            }
        }
        if opts.runs("scale") {
            eprintln!("== scale");
            if let Err(e) = scale(&opts, &mut table).await {
                table.push("scale", "error", format!("{e:#}"), "", Verdict::Skipped);
            }
        }
        if opts.runs("write") {
            eprintln!("== write");
            if let Err(e) = write_path(&opts, &mut table).await {
                table.push("write", "error", format!("{e:#}"), "", Verdict::Skipped);
            }
        }
        if opts.runs("efficiency") {
            eprintln!("== efficiency");
            if let Err(e) = efficiency(&opts, &mut table).await {
                table.push(
                    "efficiency",
                    "error",
                    format!("{e:#}"),
                    "",
                    Verdict::Skipped,
                );
            }
        }
    });
    println!();
    println!("{machine}");
    println!(
        "{} mode, {:.0} s in all, {}",
        if opts.quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64(),
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!();
    table.print();
    Ok(())
}

// ---------------------------------------------------------------- machine and processes

fn machine_line() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "machine: {cores} cores ({model}), {:.1} GiB memory, load average {} at start",
        mem_kib as f64 / 1024.0 / 1024.0,
        load.join(" ")
    )
}

/// A child process that is killed if still running when dropped.
struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits up to 10 s; true when it exited with status 0.
    fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// user + sys CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, utime 14, stime 15 (1-based).
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

/// A `VmXXX:` line of /proc/PID/status, in KiB.
fn vm_kib(pid: u32, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Starts `issuance-watcher simulate` with `seed` issuances that are READY at once
/// (no WAITED phase, no FAIL) and the static token; returns it and its base URL.
fn start_simulator(dir: &Path, seed: usize) -> anyhow::Result<(ChildGuard, String)> {
    let config = dir.join("simulator.toml");
    std::fs::write(
        &config,
        "[lifecycle]\nwaited_min = \"0s\"\nwaited_max = \"0s\"\np_fail = 0.0\n",
    )?;
    let mut child = Command::new(BIN)
        .arg("simulate")
        .args(["--listen", "127.0.0.1:0", "--static-token", STATIC_TOKEN])
        .arg("--config")
        .arg(&config)
        .args(["--seed-issuances", &seed.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the simulator")?;
    let stdout = child.stdout.take().context("simulator stdout")?;
    let guard = ChildGuard { child };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("simulator listening on ") {
                let url = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send(url);
                break;
            }
        }
        // Keep draining so the simulator never writes into a closed pipe.
        for _ in lines {}
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .context("the simulator did not say where it listens")?;
    Ok((guard, url))
}

/// Daemon settings as a TOML file (everything else is the built-in default).
struct DaemonConfig<'a> {
    base_url: &'a str,
    database: &'a Path,
    requests_per_second: f64,
    concurrency: usize,
    interval: &'a str,
    max_interval: &'a str,
}

impl DaemonConfig<'_> {
    fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = format!(
            "[api]\nbase_url = \"{}\"\naccess_key = \"{DEMO_ACCESS_KEY}\"\nsecret_key = \"{DEMO_SECRET_KEY}\"\n\
             requests_per_second = {:.1}\nconcurrency = {}\n\
             [database]\npath = \"{}\"\n\
             [poll]\ninterval = \"{}\"\nmax_interval = \"{}\"\n",
            self.base_url,
            self.requests_per_second,
            self.concurrency,
            self.database.display(),
            self.interval,
            self.max_interval,
        );
        std::fs::write(path, text)?;
        Ok(())
    }
}

fn start_daemon(dir: &Path, config: &Path) -> anyhow::Result<ChildGuard> {
    let log = std::fs::File::create(dir.join("daemon.log"))?;
    let child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the daemon")?;
    Ok(ChildGuard { child })
}

/// A scratch directory, kept for inspection when `BENCH_KEEP` is set.
fn workdir() -> anyhow::Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix("issuance-watcher-bench-")
        .tempdir()?)
}

fn finish(dir: tempfile::TempDir) {
    if std::env::var_os("BENCH_KEEP").is_some() {
        eprintln!("  (kept {})", dir.keep().display());
    }
}

async fn open_store(path: &Path) -> anyhow::Result<Store> {
    Ok(Store::open_migrated(&DatabaseSettings {
        path: path.to_owned(),
        busy_timeout: Duration::from_secs(30),
    })
    .await?)
}

/// Inserts the simulator's ids `FIRST_SIM_ID..+count` as active READY rows, due now.
async fn insert_active(store: &Store, count: usize, now: DateTime<Utc>) -> anyhow::Result<()> {
    let mut tx = store.pool().begin().await?;
    sqlx::query(
        "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < ?1 - 1)
         INSERT INTO issuances (id, status, amount, created_at, modified_at, vbank_due_at,
                                vbank_account_number, bank_name, vbank_holder_name, watch,
                                next_poll_at, polls, last_polled_at, last_seen_at)
         SELECT CAST(?2 + n AS TEXT), 'READY', 10000 * (1 + n % 50), ?3, ?3, ?4,
                CAST(451235000000 + n AS TEXT), '국민은행', '번개장터', 'active',
                strftime('%Y-%m-%dT%H:%M:%fZ', ?5 - (n % 600), 'unixepoch'), 3, ?3, ?3
         FROM s",
    )
    .bind(i64::try_from(count)?)
    .bind(i64::try_from(FIRST_SIM_ID)?)
    .bind(to_db(now - chrono::Duration::minutes(20)))
    .bind(to_db(now + chrono::Duration::hours(30)))
    .bind(now.timestamp())
    .execute(&mut *tx)
    .await?;
    // Their history so far: created WAITED, then READY.
    sqlx::query(
        "INSERT INTO transitions (issuance_id, from_status, to_status, observed_at, modified_at)
         SELECT id, NULL, 'WAITED', created_at, created_at FROM issuances WHERE watch = 'active'
         UNION ALL
         SELECT id, 'WAITED', 'READY', created_at, modified_at FROM issuances WHERE watch = 'active'",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------- 1. throughput

async fn throughput(opts: &Opts, table: &mut Table) -> anyhow::Result<()> {
    const B: &str = "throughput";
    let active = 100_000;
    let window = Duration::from_secs(if opts.quick { 5 } else { 10 });
    let warmup = Duration::from_secs(if opts.quick { 2 } else { 3 });
    let dir = workdir()?;
    let (sim, base_url) = start_simulator(dir.path(), active)?;
    let db = dir.path().join("watcher.db");
    let store = open_store(&db).await?;
    insert_active(&store, active, Utc::now()).await?;
    table.add(
        B,
        "set-up",
        format!(
            "{active} active issuances, daemon concurrency {}, poll.interval 1ms, no rate limit, {:.0} s window",
            opts.concurrency,
            window.as_secs_f64()
        ),
    );

    let ceiling = store_ceiling(dir.path(), active, opts.concurrency, window).await?;
    table.add(
        B,
        "database alone: claim → record cycles, polls/s (answers made in memory, no HTTP)",
        format!("{ceiling:.0}"),
    );

    // The simulator's own ceiling on the same endpoint, with the same number of connections.
    let wrk_rate = match run_wrk(dir.path(), &base_url, active, opts.concurrency, window) {
        Ok((rate, note)) => {
            table.add(
                B,
                "wrk → simulator, lookups/s (ceiling)",
                format!("{rate:.0}{note}"),
            );
            Some(rate)
        }
        Err(e) => {
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
        requests_per_second: 1e9,
        concurrency: opts.concurrency,
        interval: "1ms",
        max_interval: "1ms",
    }
    .write(&config)?;
    let mut daemon = start_daemon(dir.path(), &config)?;
    tokio::time::sleep(warmup).await;
    let polls = |store: Store| async move {
        let n: Option<i64> = sqlx::query_scalar("SELECT sum(polls) FROM issuances")
            .fetch_one(store.pool())
            .await?;
        anyhow::Ok(n.unwrap_or(0))
    };
    let (p0, t0) = (polls(store.clone()).await?, Instant::now());
    let (d0, s0) = (cpu_seconds(daemon.pid()), cpu_seconds(sim.pid()));
    tokio::time::sleep(window).await;
    let (p1, elapsed) = (polls(store.clone()).await?, t0.elapsed());
    let (d1, s1) = (cpu_seconds(daemon.pid()), cpu_seconds(sim.pid()));
    let hwm = vm_kib(daemon.pid(), "VmHWM").unwrap_or(0);
    let clean = daemon.terminate();
    let errors: i64 =
        sqlx::query_scalar("SELECT count(*) FROM issuances WHERE last_error IS NOT NULL")
            .fetch_one(store.pool())
            .await?;
    store.close().await;
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
        "daemon → simulator, polls/s committed (JWT, HTTP, JSON, SQLite)",
        format!("{rate:.0}"),
    );
    if let Some(wrk) = wrk_rate {
        let ratio = rate / wrk;
        table.check(
            B,
            "daemon rate / wrk rate",
            format!("{ratio:.2}"),
            "≥ 0.8",
            ratio >= 0.8,
        );
    }
    table.add(
        B,
        "daemon CPU per poll (user+sys)",
        format!("{:.0} µs", us_per_poll(d1 - d0)),
    );
    table.add(
        B,
        "simulator CPU per poll, during the daemon run",
        format!("{:.0} µs", us_per_poll(s1 - s0)),
    );
    table.add(
        B,
        "daemon peak RSS (VmHWM) under full load",
        format!("{:.1} MiB", hwm as f64 / 1024.0),
    );
    table.add(
        B,
        "rows with an error / clean exit on SIGTERM",
        format!("{errors} / {}", if clean { "yes" } else { "NO" }),
    );
    drop(sim);
    finish(dir);
    Ok(())
}

/// The database's share of a poll, alone: the daemon's claim → record cycle
/// over the same number of active rows, with unchanged READY answers made up in
/// memory. The daemon cannot record polls faster than this.
async fn store_ceiling(
    dir: &Path,
    active: usize,
    batch: usize,
    window: Duration,
) -> anyhow::Result<f64> {
    let store = open_store(&dir.join("ceiling.db")).await?;
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
                let id = String::from_utf8_lossy(&c.raw_id);
                let mut record = transition_record(&id, Status::Ready, Status::Ready, now);
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
    Ok(rate)
}

/// Runs wrk against the lookup endpoint, cycling over the ids; returns requests/s.
fn run_wrk(
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

// ---------------------------------------------------------------- 2. scale

/// Adds `count` settled issuances (ids from `first`), each with its three
/// transitions and, for one in five, a cleared DUE_SOON flag; 100,000 per transaction.
async fn insert_settled(store: &Store, first: u64, count: u64) -> anyhow::Result<()> {
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
async fn make_all_due(store: &Store) -> anyhow::Result<()> {
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
async fn tick_cost(store: &Store, iterations: usize) -> anyhow::Result<(Duration, Duration)> {
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

async fn sim_requests(http: &reqwest::Client, base_url: &str) -> anyhow::Result<u64> {
    let body = http
        .get(format!("{base_url}/_sim/stats"))
        .send()
        .await?
        .bytes()
        .await?;
    let stats: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(stats["totalRequests"].as_u64().unwrap_or(0))
}

async fn scale(opts: &Opts, table: &mut Table) -> anyhow::Result<()> {
    const B: &str = "scale";
    let active: usize = 100_000;
    let dir = workdir()?;
    let db = dir.path().join("watcher.db");
    let store = open_store(&db).await?;
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
        if stage == daemon_stage {
            daemon_at_scale(table, &store, &db, dir.path(), active, settled).await?;
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
    Ok(())
}

async fn daemon_at_scale(
    table: &mut Table,
    store: &Store,
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
    // Production settings (20 requests/s, 16 in flight), all 100k active rows overdue.
    DaemonConfig {
        base_url: &base_url,
        database: db,
        requests_per_second: 20.0,
        concurrency: 16,
        interval: "2s",
        max_interval: "10m",
    }
    .write(&config)?;
    let http = reqwest::Client::new();
    anyhow::ensure!(
        sim_requests(&http, &base_url).await? == 0,
        "simulator not fresh"
    );
    let started = Instant::now();
    let mut daemon = start_daemon(dir, &config)?;
    let first = loop {
        if sim_requests(&http, &base_url).await? > 0 {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("no poll within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
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

fn short(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        n => n.to_string(),
    }
}

// ---------------------------------------------------------------- 3. write path

async fn write_path(opts: &Opts, table: &mut Table) -> anyhow::Result<()> {
    const B: &str = "write";
    let count: usize = if opts.quick { 12_800 } else { 51_200 };
    let dir = workdir()?;
    let store = open_store(&dir.path().join("watcher.db")).await?;
    sqlx::query(
        "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < ?1 - 1)
         INSERT INTO issuances (id, status) SELECT CAST(1000001 + n AS TEXT), 'WAITED' FROM s",
    )
    .bind(i64::try_from(count)?)
    .execute(store.pool())
    .await?;
    let ids: Vec<String> = (0..count).map(|n| (1_000_001 + n).to_string()).collect();
    for (from, to, batch) in [
        (Status::Waited, Status::Ready, 256),
        (Status::Ready, Status::Done, 256),
    ] {
        let now = Utc::now();
        let records: Vec<PollRecord> = ids
            .iter()
            .map(|id| transition_record(id, from, to, now))
            .collect();
        let started = Instant::now();
        let mut transitions = 0;
        for chunk in records.chunks(batch) {
            transitions += store.record(chunk).await?.transitions.len();
        }
        let elapsed = started.elapsed();
        anyhow::ensure!(transitions == count, "recorded {transitions} of {count}");
        let rate = count as f64 / elapsed.as_secs_f64();
        table.check(
            B,
            format!("transitions committed/s, {from} → {to}, batches of {batch} ({count} in all)"),
            format!("{rate:.0}"),
            "≥ 20,000/s",
            rate >= 20_000.0,
        );
    }
    store.close().await;
    Ok(())
}

fn transition_record(id: &str, from: Status, to: Status, now: DateTime<Utc>) -> PollRecord {
    PollRecord {
        claimed: Claimed {
            raw_id: id.as_bytes().to_vec(),
            status: Some(from.as_str().to_owned()),
            due_at: None,
            attempts: 0,
            not_found_since: None,
        },
        now,
        kind: RecordKind::Observed {
            observation: Observation {
                status: to,
                amount: Some(50_000),
                created_at: Some(now),
                modified_at: Some(now),
                vbank: Some(Vbank {
                    due_at: Some(now + chrono::Duration::hours(30)),
                    account_number: Some("451235741265".into()),
                    bank_name: Some("국민은행".into()),
                    holder_name: Some("번개장터".into()),
                }),
                warnings: vec![],
            },
            decision: if to.is_terminal() {
                Decision::Settled
            } else {
                Decision::PollAt(now + chrono::Duration::minutes(10))
            },
            flags: vec![],
        },
    }
}

// ---------------------------------------------------------------- 4. efficiency

#[derive(Debug, Clone, Copy)]
enum Policy {
    Adaptive,
    /// Every poll `interval` later, whatever the status or deadline.
    Fixed(Duration),
}

#[derive(Debug, Default)]
struct EfficiencyRun {
    calls: u64,
    settled: i64,
    issuances: usize,
    /// Detection lag of every change after the first observation (simulated seconds).
    lags: Vec<f64>,
    /// The same, of changes out of READY (payments, cancellations, due-date outcomes).
    ready_lags: Vec<f64>,
    /// Issuances READY when DUE_SOON began to apply / of those, flagged late or never.
    due_soon_needed: usize,
    due_soon_late: usize,
    due_soon_max_delay: f64,
    /// Per issuance: seconds from creation to the final true change.
    lifetimes: Vec<f64>,
    duplicates: usize,
    invented: usize,
    real: Duration,
}

const DUE_SOON_LEAD_H: i64 = 6;

/// A recorded transition: from, to, when observed.
type Observed<'a> = (Option<&'a str>, &'a str, DateTime<Utc>);

type DepositTiming = issuance_watcher::sim::DepositTiming;

async fn efficiency_run(
    policy: Policy,
    deposit: &DepositTiming,
    count: usize,
    speed: f64,
) -> anyhow::Result<EfficiencyRun> {
    let started = Instant::now();
    let dir = workdir()?;
    let mut config = SimConfig::default().with_speed(speed).with_seed(42);
    config.lifecycle.deposit = deposit.clone();
    // 10:00 KST: due dates are at the end of the next day, 38 h later.
    config.start_at = Some(Utc.with_ymd_and_hms(2026, 11, 25, 1, 0, 0).unwrap());
    let sim = Simulator::start(config, "127.0.0.1:0".parse()?).await?;
    let ids = sim.seed(count);
    let db = dir.path().join("watcher.db");
    let store = open_store(&db).await?;
    store.add_ids(&ids).await?;
    // Due now in simulated time, as an id inserted when its charge is created would
    // be. (The column's default is the *wall clock*: the first polls would wait for
    // the simulated clock to reach the real time of day, and everything settled
    // before that would only be seen as a first observation.)
    sqlx::query("UPDATE issuances SET next_poll_at = ?1")
        .bind(to_db(sim.clock().now()))
        .execute(store.pool())
        .await?;
    let mut vars: Vec<(&str, String)> = vec![
        ("API__BASE_URL", sim.base_url()),
        ("API__ACCESS_KEY", DEMO_ACCESS_KEY.into()),
        ("API__SECRET_KEY", DEMO_SECRET_KEY.into()),
        ("API__REQUESTS_PER_SECOND", "100000".into()),
        ("API__CONCURRENCY", "64".into()),
        ("API__TIMEOUT", "5s".into()),
        ("DATABASE__PATH", db.display().to_string()),
        // Machinery in simulated time, stretched so real-time latencies do not trip it.
        ("POLL__LEASE", "12h".into()),
        ("POLL__STARTUP_SPREAD", "1s".into()),
        ("POLL__IDLE_RECHECK", "1m".into()),
        ("POLL__BACKOFF_MAX", "30m".into()),
        ("FLAGS__DUE_SOON_LEAD", format!("{DUE_SOON_LEAD_H}h")),
    ];
    if let Policy::Fixed(every) = policy {
        let every = humantime::format_duration(every).to_string();
        for key in [
            "POLL__INTERVAL",
            "POLL__MAX_INTERVAL",
            "POLL__OVERDUE_INTERVAL",
            "POLL__AFTER_DUE_DELAY",
        ] {
            vars.push((key, every.clone()));
        }
        vars.push(("POLL__READY_DIVISOR", "1".into()));
        // The deadline-driven extra polls never apply (flags are not judged in this run).
        vars.push(("FLAGS__DUE_SOON_LEAD", "87600h".into()));
    }
    let settings = Settings::load_with_env(
        None,
        vars.into_iter()
            .map(|(k, v)| (format!("ISSUANCE_WATCHER__{k}"), v)),
    )?;
    let watcher = Watcher::new(settings, store.clone(), sim.clock())?;
    let token = CancellationToken::new();
    let loop_token = token.clone();
    let running = tokio::spawn(async move { watcher.run(loop_token).await });
    // Everything settles by the due date at the end of the next day (+ slack).
    let limit = Duration::from_secs_f64(48.0 * 3600.0 / speed) + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let active: i64 =
            sqlx::query_scalar("SELECT count(*) FROM issuances WHERE watch = 'active'")
                .fetch_one(store.pool())
                .await?;
        if active == 0 {
            break;
        }
        if started.elapsed() > limit {
            bail!("{active} issuances still active after {limit:?}");
        }
    }
    token.cancel();
    running.await??;
    let mut run = EfficiencyRun {
        issuances: count,
        real: started.elapsed(),
        ..EfficiencyRun::default()
    };
    run.calls = sim.stats().by_issuance.values().sum();
    run.settled = sqlx::query_scalar("SELECT count(*) FROM issuances WHERE watch = 'settled'")
        .fetch_one(store.pool())
        .await?;
    let truth = sim.ground_truth();
    let mut true_by_id: HashMap<&str, Vec<(&str, DateTime<Utc>)>> = HashMap::new();
    for e in &truth {
        true_by_id
            .entry(e.issuance_id.as_str())
            .or_default()
            .push((e.to.as_str(), e.at));
    }
    let rows: Vec<(String, Option<String>, String, String)> = sqlx::query_as(
        "SELECT issuance_id, from_status, to_status, observed_at FROM transitions ORDER BY seq",
    )
    .fetch_all(store.pool())
    .await?;
    let mut recorded: HashMap<&str, Vec<Observed>> = HashMap::new();
    for (id, from, to, at) in &rows {
        let at = from_db(at).context("bad observed_at")?;
        recorded
            .entry(id.as_str())
            .or_default()
            .push((from.as_deref(), to.as_str(), at));
    }
    for (id, events) in &true_by_id {
        if let (Some(first), Some(last)) = (events.first(), events.last()) {
            run.lifetimes
                .push((last.1 - first.1).num_milliseconds() as f64 / 1e3);
        }
        let seen = recorded.get(id).map(Vec::as_slice).unwrap_or_default();
        let mut next = 0;
        for (from, to, at) in seen {
            match events[next..].iter().position(|e| e.0 == *to) {
                Some(offset) => {
                    let (_, true_at) = events[next + offset];
                    // The first observation measures when the id was added, not the policy.
                    if from.is_some() {
                        let lag = (*at - true_at).num_milliseconds() as f64 / 1e3;
                        run.lags.push(lag);
                        if next + offset > 0 && events[next + offset - 1].0 == "READY" {
                            run.ready_lags.push(lag);
                        }
                    }
                    next += offset + 1;
                }
                None if events[..next].iter().any(|e| e.0 == *to) => run.duplicates += 1,
                None => run.invented += 1,
            }
        }
    }
    if let Policy::Adaptive = policy {
        let flags: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT i.id, i.vbank_due_at, f.raised_at FROM issuances i
             LEFT JOIN flags f ON f.issuance_id = i.id AND f.kind = 'DUE_SOON'",
        )
        .fetch_all(store.pool())
        .await?;
        let lead = chrono::Duration::hours(DUE_SOON_LEAD_H);
        for (id, due, raised) in flags {
            let (Some(due), Some(events)) = (
                due.as_deref().and_then(from_db),
                true_by_id.get(id.as_str()),
            ) else {
                continue;
            };
            let from = due - lead;
            // READY at the moment DUE_SOON began to apply?
            let status_then = events.iter().rev().find(|e| e.1 <= from).map(|e| e.0);
            if status_then != Some("READY") {
                continue;
            }
            run.due_soon_needed += 1;
            match raised.as_deref().and_then(from_db) {
                Some(raised) => {
                    let delay = (raised - from).num_milliseconds() as f64 / 1e3;
                    run.due_soon_max_delay = run.due_soon_max_delay.max(delay);
                    if delay > DUE_SOON_TOLERANCE_S {
                        run.due_soon_late += 1;
                    }
                }
                None => run.due_soon_late += 1,
            }
        }
    }
    store.close().await;
    sim.shutdown().await;
    finish(dir);
    run.lags.sort_by(f64::total_cmp);
    run.ready_lags.sort_by(f64::total_cmp);
    Ok(run)
}

/// Simulated seconds a DUE_SOON flag may trail the start of the lead window: the
/// scheduler's real-time latency (a few ms) times the acceleration.
const DUE_SOON_TOLERANCE_S: f64 = 60.0;

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

fn human(seconds: f64) -> String {
    if seconds.abs() >= 3600.0 {
        format!("{:.1}h", seconds / 3600.0)
    } else if seconds.abs() >= 60.0 {
        format!("{:.1}m", seconds / 60.0)
    } else {
        format!("{seconds:.1}s")
    }
}

fn lag_line(lags: &[f64]) -> String {
    format!(
        "p50 {} · p95 {} · max {} (n={})",
        human(pct(lags, 50.0)),
        human(pct(lags, 95.0)),
        human(lags.last().copied().unwrap_or(f64::NAN)),
        lags.len()
    )
}

/// The fixed interval that would spend `calls` on these lifetimes: the first poll,
/// one every `x` while alive, and the one that sees the final change.
fn interval_for(calls: u64, lifetimes: &[f64]) -> Duration {
    let alive: f64 = lifetimes.iter().sum();
    let polls_while_alive = calls as f64 - 1.5 * lifetimes.len() as f64;
    Duration::from_secs_f64((alive / polls_while_alive.max(1.0)).max(1.0))
}

/// One deposit model: the adaptive run, then fixed-interval runs tuned to the
/// same number of calls. Returns both and the fixed interval.
async fn efficiency_pair(
    deposit: &DepositTiming,
    count: usize,
    speed: f64,
) -> anyhow::Result<(EfficiencyRun, EfficiencyRun, Duration)> {
    let adaptive = efficiency_run(Policy::Adaptive, deposit, count, speed).await?;
    eprintln!("  adaptive run took {:.0} s", adaptive.real.as_secs_f64());
    let mut every = interval_for(adaptive.calls, &adaptive.lifetimes);
    let mut fixed = efficiency_run(Policy::Fixed(every), deposit, count, speed).await?;
    for _ in 0..2 {
        let off = fixed.calls as f64 / adaptive.calls as f64;
        if (off - 1.0).abs() <= 0.05 {
            break;
        }
        eprintln!("  fixed {every:?}: {off:.2}× the adaptive calls; adjusting");
        every = Duration::from_secs_f64(every.as_secs_f64() * off);
        fixed = efficiency_run(Policy::Fixed(every), deposit, count, speed).await?;
    }
    Ok((adaptive, fixed, every))
}

/// The deposit model in words, for the set-up row.
fn deposit_words(deposit: &DepositTiming) -> String {
    match deposit {
        DepositTiming::Uniform => "uniform between READY and the due date".to_owned(),
        DepositTiming::Within { min, max } => format!(
            "{}–{} after READY",
            humantime::format_duration(*min),
            humantime::format_duration(*max)
        ),
        DepositTiming::Daily {
            prompt_share,
            prompt_mean,
            hour_weights,
        } => {
            let total: f64 = hour_weights.iter().sum();
            let night: f64 = hour_weights[1..7].iter().sum();
            format!(
                "{:.0} % right after READY (exponential, mean {}), the rest by KST hour-of-day weights until the due date ({:.1} % of the daily weight in 01:00–07:00)",
                prompt_share * 100.0,
                humantime::format_duration(*prompt_mean),
                100.0 * night / total.max(f64::MIN_POSITIVE)
            )
        }
    }
}

fn calls_words(run: &EfficiencyRun) -> String {
    format!(
        "{:.1} ({} calls, {} settled of {})",
        run.calls as f64 / run.settled.max(1) as f64,
        run.calls,
        run.settled,
        run.issuances
    )
}

async fn efficiency(opts: &Opts, table: &mut Table) -> anyhow::Result<()> {
    const B: &str = "efficiency";
    let (count, speed) = if opts.quick {
        (200, 7200.0)
    } else {
        (400, 3600.0)
    };
    let deposit = issuance_watcher::sim::LifecycleConfig::default().deposit;
    table.add(
        B,
        "set-up",
        format!(
            "{count} issuances, default simulator lifecycle (deposits: {}), {speed:.0}× time, default policy settings; lags in simulated time, first observations excluded",
            deposit_words(&deposit)
        ),
    );
    let (adaptive, fixed, every) = efficiency_pair(&deposit, count, speed).await?;
    for (name, run) in [("adaptive", &adaptive), ("fixed", &fixed)] {
        let label = match name {
            "fixed" => format!("fixed every {}", human(every.as_secs_f64())),
            _ => "adaptive".to_owned(),
        };
        table.add(
            B,
            format!("{label}: API calls per settled issuance"),
            calls_words(run),
        );
        table.add(
            B,
            format!("{label}: detection lag, all changes"),
            lag_line(&run.lags),
        );
        table.add(
            B,
            format!("{label}: detection lag, changes out of READY"),
            lag_line(&run.ready_lags),
        );
        if run.duplicates + run.invented > 0 {
            table.push(
                B,
                format!("{label}: exactly-once"),
                format!("{} duplicated, {} invented", run.duplicates, run.invented),
                "0",
                Verdict::Missed,
            );
        }
    }
    let calls_ratio = fixed.calls as f64 / adaptive.calls as f64;
    table.check(
        B,
        "calls, fixed / adaptive",
        format!("{calls_ratio:.2}"),
        "1 ± 0.1",
        (calls_ratio - 1.0).abs() <= 0.1,
    );
    let (a, f) = (pct(&adaptive.lags, 95.0), pct(&fixed.lags, 95.0));
    table.check(
        B,
        "p95 lag, adaptive / fixed at equal calls",
        format!("{:.2} ({} vs {})", a / f, human(a), human(f)),
        "≤ 0.5",
        a <= 0.5 * f,
    );
    table.check(
        B,
        format!("DUE_SOON raised when the {DUE_SOON_LEAD_H} h lead began (READY then)"),
        format!(
            "{} of {} on time; latest {} after the lead began",
            adaptive.due_soon_needed - adaptive.due_soon_late,
            adaptive.due_soon_needed,
            human(adaptive.due_soon_max_delay)
        ),
        format!(
            "all, within {} (≈{:.0} ms real)",
            human(DUE_SOON_TOLERANCE_S),
            DUE_SOON_TOLERANCE_S / speed * 1e3
        ),
        adaptive.due_soon_late == 0 && adaptive.due_soon_needed > 0,
    );
    // For comparison, the old default: deposits uniform over READY. Nothing to
    // predict there, so adaptive polling cannot beat fixed polling at equal calls.
    const UNIFORM: &str = "uniform deposits (the old default)";
    if opts.quick {
        table.add(B, format!("{UNIFORM}: comparison"), "not run with --quick");
        return Ok(());
    }
    let (adaptive, fixed, every) = efficiency_pair(&DepositTiming::Uniform, count, speed).await?;
    table.add(
        B,
        format!("{UNIFORM}, adaptive: calls per settled issuance; detection lag, all changes"),
        format!("{}; {}", calls_words(&adaptive), lag_line(&adaptive.lags)),
    );
    let (a, f) = (pct(&adaptive.lags, 95.0), pct(&fixed.lags, 95.0));
    table.add(
        B,
        format!(
            "{UNIFORM}, fixed every {}: calls per settled issuance; detection lag, all changes",
            human(every.as_secs_f64())
        ),
        format!(
            "{}; {}; p95 adaptive / fixed {:.2}",
            calls_words(&fixed),
            lag_line(&fixed.lags),
            a / f
        ),
    );
    Ok(())
}
