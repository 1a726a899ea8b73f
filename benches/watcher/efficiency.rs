//! `efficiency`: the adaptive policy against fixed-interval polling tuned to the
//! same number of calls, in accelerated time: calls per settled issuance,
//! detection lag and the DUE_SOON deadline check.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, TimeZone, Utc};
use issuance_watcher::domain::timefmt::{from_db, to_db};
use issuance_watcher::settings::Settings;
use issuance_watcher::sim::cli::{DEMO_ACCESS_KEY, DEMO_SECRET_KEY};
use issuance_watcher::sim::{SimConfig, Simulator};
use issuance_watcher::watcher::Watcher;
use tokio_util::sync::CancellationToken;

use crate::Opts;
use crate::harness::{finish, open_store, workdir};
use crate::table::{Table, Verdict};

#[derive(Debug, Clone, Copy)]
pub(crate) enum Policy {
    Adaptive,
    /// Every poll `interval` later, whatever the status or deadline.
    Fixed(Duration),
}

#[derive(Debug, Default)]
pub(crate) struct EfficiencyRun {
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

pub(crate) const DUE_SOON_LEAD_H: i64 = 6;

/// A recorded transition: from, to, when observed.
pub(crate) type Observed<'a> = (Option<&'a str>, &'a str, DateTime<Utc>);

pub(crate) type DepositTiming = issuance_watcher::sim::DepositTiming;

pub(crate) async fn efficiency_run(
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
pub(crate) const DUE_SOON_TOLERANCE_S: f64 = 60.0;

pub(crate) fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

pub(crate) fn human(seconds: f64) -> String {
    if seconds.abs() >= 3600.0 {
        format!("{:.1}h", seconds / 3600.0)
    } else if seconds.abs() >= 60.0 {
        format!("{:.1}m", seconds / 60.0)
    } else {
        format!("{seconds:.1}s")
    }
}

pub(crate) fn lag_line(lags: &[f64]) -> String {
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
pub(crate) fn interval_for(calls: u64, lifetimes: &[f64]) -> Duration {
    let alive: f64 = lifetimes.iter().sum();
    let polls_while_alive = calls as f64 - 1.5 * lifetimes.len() as f64;
    Duration::from_secs_f64((alive / polls_while_alive.max(1.0)).max(1.0))
}

/// One deposit model: the adaptive run, then fixed-interval runs tuned to the
/// same number of calls. Returns both and the fixed interval.
pub(crate) async fn efficiency_pair(
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
pub(crate) fn deposit_words(deposit: &DepositTiming) -> String {
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

pub(crate) fn calls_words(run: &EfficiencyRun) -> String {
    format!(
        "{:.1} ({} calls, {} settled of {})",
        run.calls as f64 / run.settled.max(1) as f64,
        run.calls,
        run.settled,
        run.issuances
    )
}

pub(crate) async fn efficiency(opts: &Opts, table: &mut Table) -> anyhow::Result<()> {
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
