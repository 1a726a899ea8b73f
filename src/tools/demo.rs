//! `issuance-watcher demo`: the whole job in about a minute and a half, with no credentials.
//!
//! Starts the simulator in-process with accelerated time, asks it for a batch of
//! charges the way `issuance-watcher charge` does (request rows, real POSTs,
//! each answer recorded as the issuance's first sighting) in a local SQLite file,
//! runs the real watcher against it until every issuance has settled, and checks
//! what the watcher recorded against the simulator's ground truth.
//!
//! One file, a little over 500 lines: one command, read top to bottom (set-up,
//! charges, watching, the report); the checks themselves are `verify.rs`.

mod rate;
use rate::RecentRate;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;
use crate::store::Store;
use crate::watcher::Watcher;
use crate::watcher::charges::{Charger, Performed, charge_with};
use bunjang_sim::cli::{DEMO_ACCESS_KEY, DEMO_SECRET_KEY};
use bunjang_sim::{LifecycleConfig, SimConfig, SimHandle, Simulator};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How many charges to create.
    #[arg(long, default_value_t = 50)]
    pub count: usize,
    /// Simulated seconds per real second (600: 10 minutes a second). Faster, or
    /// with more charges, the watcher falls behind its 30 s cadence and a
    /// millisecond of real latency becomes more than a second of lag.
    #[arg(long, default_value_t = 600.0)]
    pub speed: f64,
    /// The SQLite file to create (replaced if it exists).
    #[arg(long, default_value = "demo.db")]
    pub database: PathBuf,
    /// Seed of the simulator's random draws: the same seed gives the same charges and
    /// the same sequence of draws. Counts still vary from run to run (DUE_SOON flags,
    /// lookups, which intermediate statuses are seen), because the watcher's polls are
    /// scheduled in real time and land on the accelerated clock a little differently each run.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Give up after this long (real time).
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// The production polling settings (so the lags are those a user would see),
/// with only the machinery stretched that runs in simulated time but must not
/// trip on real-time latencies (the lease, the start-up spread). The idle
/// re-check stays at its production second of simulated time: the loop also
/// claims no later than that after a write, and a stretched one (2 minutes
/// here before) became minutes of lag.
///
/// `overrides` (the same `SECTION__KEY` names, without the prefix) come last
/// and win: the efficiency benchmark runs the demo's settings at a higher rate.
pub fn watcher_settings(
    base_url: &str,
    database: &std::path::Path,
    overrides: &[(&str, String)],
) -> anyhow::Result<Settings> {
    let vars = [
        ("API__BASE_URL", base_url.to_owned()),
        ("API__ACCESS_KEY", DEMO_ACCESS_KEY.to_owned()),
        ("API__SECRET_KEY", DEMO_SECRET_KEY.to_owned()),
        ("API__REQUESTS_PER_SECOND", "20000".to_owned()),
        ("API__CONCURRENCY", "32".to_owned()),
        ("API__TIMEOUT", "5s".to_owned()),
        ("DATABASE__PATH", database.display().to_string()),
        ("POLL__LEASE", "12h".to_owned()),
        ("POLL__STARTUP_SPREAD", "1m".to_owned()),
        ("FLAGS__DUE_SOON_LEAD", "6h".to_owned()),
    ];
    let env = vars
        .into_iter()
        .chain(overrides.iter().cloned())
        .map(|(k, v)| (format!("ISSUANCE_WATCHER__{k}"), v));
    Ok(Settings::load_with_env(None, env)?)
}

/// The simulator's default lifecycle on one business day: charges created at
/// 10:00 KST today, due at 23:59:59 KST the same day (instead of the next), so
/// the whole day (and two hours past the deadline) fits in about 97 s at 600x.
fn simulator_config(args: &DemoArgs) -> SimConfig {
    let mut config = SimConfig::default()
        .with_speed(args.speed)
        .with_seed(args.seed)
        .with_lifecycle(LifecycleConfig {
            due_lead_days: 0,
            // Some charges stay READY for a while past their deadline, to show OVERDUE.
            at_due_delay: Duration::from_secs(2 * 3600),
            ..LifecycleConfig::default()
        });
    config.start_at = ten_kst_today();
    config
}

/// 10:00 in Seoul on today's Seoul date.
fn ten_kst_today() -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone as _;
    let seoul = chrono_tz::Asia::Seoul;
    let today = chrono::Utc::now().with_timezone(&seoul).date_naive();
    seoul
        .from_local_datetime(&today.and_hms_opt(10, 0, 0)?)
        .single()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Runs the demo, printing to stdout. A closed stdout (`demo | head -3`) ends it
/// with a broken-pipe error, which the command line treats as a normal end.
pub async fn run(args: DemoArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    run_to(args, &mut std::io::stdout(), shutdown).await
}

/// [`run`], printing to `out` (never `println!`, which panics on a closed pipe).
pub async fn run_to(
    args: DemoArgs,
    out: &mut (impl Write + Send),
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if args.count == 0 || args.count > 100_000 {
        bail!("--count must be between 1 and 100000");
    }
    let sim = Simulator::start(simulator_config(&args), "127.0.0.1:0".parse()?).await?;
    let result = demo(&args, &sim, out, shutdown).await;
    sim.shutdown().await;
    result
}

async fn demo(
    args: &DemoArgs,
    sim: &SimHandle,
    out: &mut (impl Write + Send),
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "simulator listening on {} (time runs {}x)",
        sim.base_url(),
        args.speed
    )?;
    out.flush()?;
    remove_database(&args.database)?;
    let settings = watcher_settings(&sim.base_url(), &args.database, &[])?;
    let store = Store::open_migrated(&settings.database)
        .await
        .context("while creating the demo database")?;

    // The watcher runs first and each id is stored the moment its charge exists,
    // as a merchant's system would do.
    let charging = settings.clone();
    let watcher = Watcher::new(settings, store.clone(), sim.clock())?;
    let progress = watcher.progress();
    let token = CancellationToken::new();
    let loop_token = token.clone();
    let watching = tokio::spawn(async move { watcher.run(loop_token).await });
    let stop_watching = |token: CancellationToken| async move {
        token.cancel();
        watching.await.context("the watcher task failed")??;
        anyhow::Ok(())
    };
    let ids = match create_charges(&store, &charging, sim.clock(), args.count).await {
        Ok(ids) => ids,
        Err(e) => {
            stop_watching(token).await?;
            store.close().await;
            return Err(e.context("while creating charges"));
        }
    };
    let started = Instant::now();
    let outcome = match writeln!(
        out,
        "created {} charges through POST /api/v1/points/issuance; watching them in {}",
        ids.len(),
        args.database.display()
    )
    .and_then(|()| out.flush())
    {
        Err(e) => Err(e.into()),
        Ok(()) => tokio::select! {
            r = show_progress(&store, sim, &progress, args.count, started, args.timeout) => r,
            () = shutdown => Ok(false),
        },
    };
    stop_watching(token).await?;
    // What `issuance-watcher balance` shows: the DONE charges are credited.
    let balance = match crate::api::ApiClient::from_settings(&charging) {
        Ok(client) => client.balance().await.ok(),
        Err(_) => None,
    };
    let printed = match outcome {
        Ok(settled) => {
            let report = Report::build(&store, sim, ids.len(), started.elapsed()).await;
            match report {
                Ok(report) => print_ending(out, &report, &args.database, &ids[0], balance)
                    .map(|()| (settled, report.exactly_once()))
                    .map_err(anyhow::Error::from),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    store.close().await;
    let (settled, exact) = printed?;
    if !settled {
        bail!("not every issuance settled before the timeout");
    }
    if !exact {
        bail!("the recorded history differs from the simulator's ground truth");
    }
    Ok(())
}

/// The summary and how to explore what the demo left behind.
fn print_ending(
    out: &mut impl Write,
    report: &Report,
    database: &std::path::Path,
    first_id: &str,
    balance: Option<crate::api::Balance>,
) -> std::io::Result<()> {
    writeln!(out)?;
    report.print(out)?;
    if let Some(b) = balance {
        writeln!(
            out,
            "point balance now: {} ({} expiring within 30 days), as `issuance-watcher balance` shows it",
            b.balance, b.expiring_30d
        )?;
    }
    let db = database.display();
    writeln!(
        out,
        "\nThe database is left in {db}. Explore it with, for example:"
    )?;
    writeln!(
        out,
        "  sqlite3 {db} \"SELECT status, count(*) FROM issuances GROUP BY status;\""
    )?;
    writeln!(
        out,
        "  sqlite3 {db} \"SELECT * FROM transitions ORDER BY seq LIMIT 10;\""
    )?;
    writeln!(
        out,
        "  sqlite3 {db} \"SELECT issuance_id, kind, raised_at, cleared_at FROM flags LIMIT 10;\""
    )?;
    writeln!(
        out,
        "  ISSUANCE_WATCHER__DATABASE__PATH={db} cargo run --release -- show {first_id}"
    )?;
    writeln!(
        out,
        "  ISSUANCE_WATCHER__DATABASE__PATH={db} cargo run --release -- charges   # the charge requests"
    )?;
    out.flush()
}

fn remove_database(path: &std::path::Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("while removing the old {}", PathBuf::from(file).display())
                });
            }
        }
    }
    Ok(())
}

/// Creates charges the way `issuance-watcher charge` does (the same code
/// path: a request row, one POST, the answer recorded as the issuance's first
/// sighting), 16 at a time. The watcher running beside holds the store's
/// owner lock.
async fn create_charges(
    store: &Store,
    settings: &Settings,
    clock: crate::domain::Clock,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let client = Arc::new(crate::api::ApiClient::from_settings(settings)?);
    let limit = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..count {
        let (client, limit, store, settings) = (
            client.clone(),
            limit.clone(),
            store.clone(),
            settings.clone(),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire().await?;
            let amount = 10_000 * (1 + (n * 7919) % 50) as i64;
            let charger = Charger {
                store: &store,
                client: &client,
                settings: &settings,
                clock,
                pacer: None,
            };
            // Forced: the demo opens many charges at once (its simulator allows it).
            let (request, attempt) = charge_with(&charger, amount, true, false).await?;
            attempt.recorded?;
            match attempt.performed {
                Performed::Created { issuance_id, .. } => anyhow::Ok((n, issuance_id)),
                other => bail!(
                    "charge request {request} came to {}: {other:?}",
                    other.state()
                ),
            }
        });
    }
    let mut ids = vec![String::new(); count];
    while let Some(joined) = tasks.join_next().await {
        let (n, id) = joined??;
        ids[n] = id;
    }
    Ok(ids)
}

/// Prints a live line until everything settled (true) or the timeout (false).
async fn show_progress(
    store: &Store,
    sim: &SimHandle,
    progress: &crate::ops::progress::Progress,
    total: usize,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let live = std::io::stderr().is_terminal();
    let mut last_print = Instant::now() - Duration::from_secs(60);
    let mut recent = RecentRate::default();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let counts = store.counts().await?;
        let active: i64 = counts
            .iter()
            .filter(|c| c.watch == "active")
            .map(|c| c.count)
            .sum();
        let mut by_status: BTreeMap<String, i64> = BTreeMap::new();
        for c in &counts {
            *by_status
                .entry(c.status.clone().unwrap_or_else(|| "UNSEEN".into()))
                .or_default() += c.count;
        }
        let flags = store.flags(None).await?;
        let due_soon = flags.iter().filter(|f| f.kind == "DUE_SOON").count();
        let overdue = flags.iter().filter(|f| f.kind == "OVERDUE").count();
        let rate = recent.add(Instant::now(), progress.transitions());
        let line = format!(
            "[{:>5.1}s | sim {}] {} | active {active}/{total} | {rate:>6.1} transitions/s | flags open: {due_soon} due soon, {overdue} overdue | {} polls",
            started.elapsed().as_secs_f64(),
            sim.clock()
                .now()
                .with_timezone(&chrono_tz::Asia::Seoul)
                .format("%m-%d %H:%M KST"),
            by_status
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            progress.polls(),
        );
        // A closed stderr only loses the progress line: never `eprintln!`, which panics.
        let mut err = std::io::stderr();
        if live {
            let _ = write!(err, "\r\x1b[2K{line}").and_then(|()| err.flush());
        } else if last_print.elapsed() >= Duration::from_secs(5) || active == 0 {
            let _ = writeln!(err, "{line}");
            last_print = Instant::now();
        }
        if active == 0 {
            return Ok(true);
        }
        if started.elapsed() > timeout {
            return Ok(false);
        }
    }
}

/// The comparison of what the watcher recorded with what really happened.
#[derive(Debug, Default)]
pub struct Report {
    pub issuances: usize,
    pub elapsed: Duration,
    pub by_outcome: BTreeMap<String, i64>,
    pub flags_raised: BTreeMap<String, i64>,
    pub api_calls: u64,
    pub calls_per_issuance: f64,
    pub max_calls: u64,
    pub true_transitions: usize,
    pub recorded: usize,
    /// True transitions recorded once, with their detection lags (simulated seconds).
    pub lags: Vec<f64>,
    /// Recorded more than once.
    pub duplicates: usize,
    /// Recorded but never happened.
    pub invented: usize,
    /// Happened but could not be seen (changed again before the next poll).
    pub unobserved: usize,
    /// Final status differs from the simulator's.
    pub wrong_final: usize,
}

impl Report {
    pub async fn build(
        store: &Store,
        sim: &SimHandle,
        issuances: usize,
        elapsed: Duration,
    ) -> anyhow::Result<Self> {
        let mut report = Report {
            issuances,
            elapsed,
            ..Report::default()
        };
        let recorded = crate::tools::verify::recorded_transitions(store.pool()).await?;
        let truth = sim.ground_truth();
        let c = crate::tools::verify::compare(&recorded, &truth, chrono::Duration::zero());
        report.recorded = c.recorded;
        report.true_transitions = c.true_transitions;
        report.lags = c.lags;
        report.duplicates = c.duplicates;
        // A row out of chain or stamped before its change is as wrong as an invented one.
        report.invented = c.invented + c.broken_chain + c.before_truth;
        report.unobserved = c.unobserved;
        report.wrong_final = c.wrong_final;
        for c in store.counts().await? {
            *report
                .by_outcome
                .entry(format!(
                    "{} ({})",
                    c.status.unwrap_or_else(|| "UNSEEN".into()),
                    c.watch
                ))
                .or_default() += c.count;
        }
        let flags: Vec<(String, i64)> =
            sqlx::query_as("SELECT kind, count(*) FROM flags GROUP BY kind")
                .fetch_all(store.pool())
                .await?;
        report.flags_raised = flags.into_iter().collect();
        let stats = sim.stats();
        report.api_calls = stats.by_issuance.values().sum();
        report.max_calls = stats.by_issuance.values().copied().max().unwrap_or(0);
        report.calls_per_issuance = report.api_calls as f64 / issuances.max(1) as f64;
        Ok(report)
    }

    /// Every observable true transition recorded exactly once, nothing invented, final statuses right.
    pub fn exactly_once(&self) -> bool {
        self.duplicates == 0 && self.invented == 0 && self.wrong_final == 0
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.lags.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * (self.lags.len() - 1) as f64).round() as usize;
        self.lags[rank.min(self.lags.len() - 1)]
    }

    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "== summary ({} issuances, {:.1}s real time)",
            self.issuances,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(out, "settled by outcome:")?;
        for (outcome, n) in &self.by_outcome {
            writeln!(out, "  {outcome:<24} {n:>6}")?;
        }
        writeln!(out, "flags raised:")?;
        if self.flags_raised.is_empty() {
            writeln!(out, "  (none)")?;
        }
        for (kind, n) in &self.flags_raised {
            writeln!(out, "  {kind:<24} {n:>6}")?;
        }
        writeln!(
            out,
            "API calls: {} lookups, {:.1} per issuance (max {})",
            self.api_calls, self.calls_per_issuance, self.max_calls
        )?;
        writeln!(
            out,
            "detection lag (simulated time, watcher's observation minus the true change): p50 {} | p95 {} | max {}",
            human(self.percentile(50.0)),
            human(self.percentile(95.0)),
            human(self.lags.last().copied().unwrap_or(0.0))
        )?;
        writeln!(
            out,
            "ground truth check: {} true transitions, {} recorded; {} duplicated, {} invented, {} not observable between polls, {} wrong final statuses => {}",
            self.true_transitions,
            self.recorded,
            self.duplicates,
            self.invented,
            self.unobserved,
            self.wrong_final,
            if self.exactly_once() {
                "PASS: every observable transition recorded exactly once"
            } else {
                "FAIL"
            }
        )?;
        Ok(())
    }
}

fn human(seconds: f64) -> String {
    if seconds >= 3600.0 {
        format!("{:.1}h", seconds / 3600.0)
    } else if seconds >= 60.0 {
        format!("{:.1}m", seconds / 60.0)
    } else {
        format!("{seconds:.1}s")
    }
}
