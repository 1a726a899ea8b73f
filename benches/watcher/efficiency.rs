//! `efficiency`: what the polling cadence costs and buys.
//!
//! 1. The sweep ([`crate::sweep`]): the real policy function over the
//!    simulator's drawn schedules, across a range of budgets, for the new
//!    defaults (scaled), the previous defaults and fixed intervals: lookups per
//!    paid charge against DONE detection lag (p50, p95), WAITED lag too; one
//!    table row per point, and the plot `benches/watcher/efficiency.svg`.
//! 2. End to end: the daemon with the production defaults against the
//!    simulator over HTTP on an accelerated clock, slow enough that real-time
//!    latency adds little lag: calls, lag, exactly-once and the DUE_SOON check.
//! 3. WAITED end to end: the same at real speed for the first seconds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bunjang_sim::{SimConfig, Simulator};
use chrono::{DateTime, TimeZone, Utc};
use issuance_watcher::domain::timefmt::{from_db, to_db};
use issuance_watcher::settings::PollSettings;
use issuance_watcher::tools::demo;
use issuance_watcher::watcher::Watcher;
use tokio_util::sync::CancellationToken;

use crate::Opts;
use crate::harness::{finish, open_store, workdir};
use crate::plot::{self, Line, Marker};
use crate::sweep::{self, Cadence, Point};
use crate::table::Table;

/// When an end-to-end run stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Until {
    /// Every issuance settled.
    Settled,
    /// No issuance is still WAITED (for the real-speed WAITED run).
    PastWaited,
    /// This long after the start, in simulated time.
    After(Duration),
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
    /// Of the changes to DONE.
    done_lags: Vec<f64>,
    /// Of the changes out of WAITED.
    waited_lags: Vec<f64>,
    done: usize,
    /// Issuances READY when DUE_SOON began to apply / of those, flagged late or never.
    due_soon_needed: usize,
    due_soon_late: usize,
    due_soon_max_delay: f64,
    duplicates: usize,
    invented: usize,
    real: Duration,
}

pub(crate) const DUE_SOON_LEAD_H: i64 = 6;

/// A recorded transition: from, to, when observed.
pub(crate) type Observed<'a> = (Option<&'a str>, &'a str, DateTime<Utc>);

pub(crate) type DepositTiming = bunjang_sim::DepositTiming;

pub(crate) async fn efficiency_run(
    until: Until,
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
    // The demo's settings (production polling, machinery in simulated time
    // stretched), at a higher request rate.
    let settings = demo::watcher_settings(
        &sim.base_url(),
        &db,
        &[
            ("API__REQUESTS_PER_SECOND", "100000".into()),
            ("API__CONCURRENCY", "64".into()),
            ("POLL__STARTUP_SPREAD", "1s".into()),
            ("POLL__BACKOFF_MAX", "30m".into()),
            ("FLAGS__DUE_SOON_LEAD", format!("{DUE_SOON_LEAD_H}h")),
        ],
    )?;
    let watcher = Watcher::new(settings, store.clone(), sim.clock())?;
    let token = CancellationToken::new();
    let loop_token = token.clone();
    let running = tokio::spawn(async move { watcher.run(loop_token).await });
    // Everything settles by the due date at the end of the next day (+ slack).
    let limit = Duration::from_secs_f64(48.0 * 3600.0 / speed) + Duration::from_secs(60);
    let mut last_report = Instant::now();
    let sim_start = sim.clock().now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Until::After(span) = until
            && sim.clock().now() >= sim_start + chrono::Duration::from_std(span)?
        {
            break;
        }
        let active: i64 = match until {
            Until::Settled | Until::After(_) => {
                sqlx::query_scalar("SELECT count(*) FROM issuances WHERE watch = 'active'")
            }
            Until::PastWaited => sqlx::query_scalar(
                "SELECT count(*) FROM issuances WHERE status IS NULL OR status = 'WAITED'",
            ),
        }
        .fetch_one(store.pool())
        .await?;
        if active == 0 {
            break;
        }
        if started.elapsed() > limit {
            let statuses: Vec<(Option<String>, i64)> = sqlx::query_as(
                "SELECT status, count(*) FROM issuances WHERE watch = 'active' GROUP BY status",
            )
            .fetch_all(store.pool())
            .await?;
            bail!(
                "{active} issuances still active after {limit:?} (sim {}; by status {statuses:?}; {} calls)",
                sim.clock().now(),
                sim.stats().by_issuance.values().sum::<u64>()
            );
        }
        if last_report.elapsed() >= Duration::from_secs(15) {
            last_report = Instant::now();
            eprintln!(
                "  {active} active at sim {}, {} calls so far",
                sim.clock().now().format("%m-%d %H:%M UTC"),
                sim.stats().by_issuance.values().sum::<u64>()
            );
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
    run.done = true_by_id
        .values()
        .filter(|events| events.iter().any(|e| e.0 == "DONE"))
        .count();
    for (id, events) in &true_by_id {
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
                        let before = (next + offset).checked_sub(1).map(|i| events[i].0);
                        if before == Some("READY") {
                            run.ready_lags.push(lag);
                        }
                        if before == Some("WAITED") {
                            run.waited_lags.push(lag);
                        }
                        if *to == "DONE" {
                            run.done_lags.push(lag);
                        }
                    }
                    next += offset + 1;
                }
                None if events[..next].iter().any(|e| e.0 == *to) => run.duplicates += 1,
                None => run.invented += 1,
            }
        }
    }
    if until == Until::Settled {
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
    run.done_lags.sort_by(f64::total_cmp);
    run.waited_lags.sort_by(f64::total_cmp);
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

fn point_words(p: &Point) -> String {
    format!(
        "{:.0} lookups per paid charge ({:.0} per settled issuance); DONE lag p50 {} · p95 {}; WAITED lag p50 {} · p95 {}",
        p.per_paid(),
        p.calls as f64 / p.issuances.max(1) as f64,
        human(pct(&p.done_lags, 50.0)),
        human(pct(&p.done_lags, 95.0)),
        human(pct(&p.waited_lags, 50.0)),
        human(pct(&p.waited_lags, 95.0)),
    )
}

/// Where the committed plot lives (the full run writes it; `--quick` writes
/// beside the build instead, so a quick run never replaces the figure in docs/performance.md).
fn plot_path(quick: bool) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if quick {
        root.join("target").join("efficiency-quick.svg")
    } else {
        root.join("benches").join("watcher").join("efficiency.svg")
    }
}

pub(crate) async fn efficiency(opts: &Opts, table: &mut Table) -> anyhow::Result<()> {
    const B: &str = "efficiency";
    let settings = sweep::defaults();
    let poll = settings.poll.clone();
    let ladder = settings.flags.due_soon_lead.clone();
    let lifecycle = bunjang_sim::LifecycleConfig::default();
    let n = if opts.quick { 1000 } else { 4000 };
    table.add(
        B,
        "set-up (sweep)",
        format!(
            "{n} issuances created at 10:00 KST, due at the end of the next day; the simulator's default lifecycle (deposits: {}); the real policy function called poll by poll on the simulator's drawn schedules, in simulated time (no daemon, no real-time noise); DONE lag = DONE recorded minus the deposit",
            deposit_words(&lifecycle.deposit)
        ),
    );
    let run = |c: Cadence| sweep::run(&c, &lifecycle, &ladder, n, 42, None);
    let policy = |p: PollSettings| Cadence::Policy(Box::new(p));
    let new = run(policy(poll.clone()));
    let previous = run(policy(sweep::previous_defaults(&poll)));
    let mut adaptive = Vec::new();
    for k in [0.25, 0.5, 1.0, 2.0, 4.0, 10.0, 20.0] {
        let p = if k == 1.0 {
            new.clone()
        } else {
            run(policy(sweep::scaled(&poll, k)))
        };
        adaptive.push((k, p));
    }
    let mut old_shape = Vec::new();
    for k in [0.05, 0.1, 0.25, 0.5, 1.0, 2.0] {
        let p = if k == 1.0 {
            previous.clone()
        } else {
            run(policy(sweep::scaled(&sweep::previous_defaults(&poll), k)))
        };
        old_shape.push((k, p));
    }
    let mut fixed = Vec::new();
    for secs in [5u64, 10, 15, 20, 30, 45, 60, 120, 300, 600] {
        fixed.push((secs, run(Cadence::Fixed(Duration::from_secs(secs)))));
    }
    for (name, points) in [
        ("new defaults", &adaptive),
        ("previous defaults", &old_shape),
    ] {
        for (k, p) in points {
            let label = if *k == 1.0 {
                name.to_owned()
            } else {
                format!("{name}, READY cadence ×{k}")
            };
            table.add(B, format!("sweep, {label}"), point_words(p));
        }
    }
    for (secs, p) in &fixed {
        table.add(
            B,
            format!("sweep, fixed every {}", human(*secs as f64)),
            point_words(p),
        );
    }
    let (p50, p95) = (pct(&new.done_lags, 50.0), pct(&new.done_lags, 95.0));
    table.check(
        B,
        "new defaults: DONE recorded after the deposit",
        format!("p50 {} · p95 {}", human(p50), human(p95)),
        "p50 ≤ 10 s, p95 ≤ 30 s",
        p50 <= 10.0 && p95 <= 30.0,
    );
    let fixed30 = &fixed
        .iter()
        .find(|(s, _)| *s == 30)
        .expect("30 s is swept")
        .1;
    table.check(
        B,
        "new defaults: lookups per paid charge, against fixed 30 s",
        format!("{:.0} vs {:.0}", new.per_paid(), fixed30.per_paid()),
        "≤ fixed 30 s",
        new.per_paid() <= fixed30.per_paid(),
    );
    // Fixed polling at the new defaults' number of calls.
    let every = Duration::from_secs_f64(30.0 * fixed30.calls as f64 / new.calls as f64);
    let equal = run(Cadence::Fixed(every));
    let ratio = |q: f64| pct(&new.done_lags, q) / pct(&equal.done_lags, q);
    table.add(
        B,
        format!(
            "at equal calls: new defaults / fixed every {} ({:.0} lookups per paid charge)",
            human(every.as_secs_f64()),
            equal.per_paid()
        ),
        format!(
            "DONE lag p50 {:.2} ({} vs {}) · p95 {:.2} ({} vs {})",
            ratio(50.0),
            human(pct(&new.done_lags, 50.0)),
            human(pct(&equal.done_lags, 50.0)),
            ratio(95.0),
            human(pct(&new.done_lags, 95.0)),
            human(pct(&equal.done_lags, 95.0)),
        ),
    );
    // What each part of the shape costs and buys: the defaults without it.
    let without = [
        (
            "quiet hours",
            PollSettings {
                quiet_hours: issuance_watcher::settings::QuietHours::NONE,
                ..poll.clone()
            },
        ),
        (
            "the fresh term (fresh_divisor 1)",
            PollSettings {
                fresh_divisor: 1,
                ..poll.clone()
            },
        ),
        (
            "the deadline term (ready_divisor 1)",
            PollSettings {
                ready_divisor: 1,
                ..poll.clone()
            },
        ),
    ];
    for (part, settings) in without {
        let p = run(policy(settings));
        table.add(
            B,
            format!("sweep, new defaults without {part}"),
            format!(
                "{} ({:+.0} lookups per paid charge)",
                point_words(&p),
                p.per_paid() - new.per_paid()
            ),
        );
    }
    let line = |label: &str, colour, dashed, q: f64, pts: Vec<&Point>| Line {
        label: label.to_owned(),
        colour,
        dashed,
        points: pts
            .into_iter()
            .map(|p| (p.per_paid(), pct(&p.done_lags, q)))
            .collect(),
    };
    let a: Vec<&Point> = sorted(adaptive.iter().map(|(_, p)| p).collect());
    let o: Vec<&Point> = sorted(old_shape.iter().map(|(_, p)| p).collect());
    let f: Vec<&Point> = sorted(fixed.iter().map(|(_, p)| p).collect());
    let lines = [
        line("new shape, p50", "#1f5fbf", false, 50.0, a.clone()),
        line("new shape, p95", "#1f5fbf", true, 95.0, a),
        line("previous shape, p50", "#d9822b", false, 50.0, o.clone()),
        line("previous shape, p95", "#d9822b", true, 95.0, o),
        line("fixed interval, p50", "#777777", false, 50.0, f.clone()),
        line("fixed interval, p95", "#777777", true, 95.0, f),
    ];
    let mark = |label: &str, colour, p: &Point, q: f64| Marker {
        label: label.to_owned(),
        colour,
        at: (p.per_paid(), pct(&p.done_lags, q)),
    };
    let marks = [
        mark("new defaults p50", "#1f5fbf", &new, 50.0),
        mark("new defaults p95", "#9cc0f0", &new, 95.0),
        mark("previous defaults p50", "#d9822b", &previous, 50.0),
        mark("previous defaults p95", "#f3c89a", &previous, 95.0),
        mark("fixed 30 s p50", "#777777", fixed30, 50.0),
        mark("fixed 30 s p95", "#cccccc", fixed30, 95.0),
    ];
    let svg = plot::svg(
        "DONE detection lag against lookups per paid charge",
        "lookups per paid charge (log)",
        "seconds from the deposit to DONE recorded (log)",
        &lines,
        &marks,
    );
    let path = plot_path(opts.quick);
    std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    table.add(B, "plot", path.display().to_string());

    // End to end: the daemon, production defaults, over HTTP. Slow enough for
    // the daemon to keep up (at 1200x it fell behind: 1,005 lookups per paid
    // charge and a p50 of 28 s), so few issuances; `--quick` stops after 6 h.
    let (count, speed, until) = if opts.quick {
        (20, 300.0, Until::After(Duration::from_secs(6 * 3600)))
    } else {
        (30, 300.0, Until::Settled)
    };
    let horizon = match until {
        Until::After(span) => Some(span),
        _ => None,
    };
    table.add(
        B,
        "set-up (end to end)",
        format!(
            "{count} issuances, the daemon with the production polling defaults against the simulator over HTTP at {speed:.0}× (1 ms of real latency adds {:.1} s of lag){}",
            speed / 1000.0,
            horizon.map_or(String::new(), |h| format!(
                "; the first {} only",
                humantime::format_duration(h)
            ))
        ),
    );
    let e2e = efficiency_run(until, &lifecycle.deposit, count, speed).await?;
    eprintln!("  end-to-end run took {:.0} s", e2e.real.as_secs_f64());
    let same = sweep::run(&policy(poll.clone()), &lifecycle, &ladder, n, 42, horizon);
    table.add(
        B,
        "end to end: lookups per paid charge",
        format!(
            "{:.0} ({} calls, {} paid, {} settled of {}); the sweep over the same span: {:.0}",
            e2e.calls as f64 / e2e.done.max(1) as f64,
            e2e.calls,
            e2e.done,
            e2e.settled,
            e2e.issuances,
            same.per_paid()
        ),
    );
    table.add(
        B,
        "end to end: DONE recorded after the deposit",
        format!(
            "{}; the sweep over the same span: p50 {} · p95 {}",
            lag_line(&e2e.done_lags),
            human(pct(&same.done_lags, 50.0)),
            human(pct(&same.done_lags, 95.0))
        ),
    );
    table.add(
        B,
        "end to end: detection lag, changes out of READY",
        lag_line(&e2e.ready_lags),
    );
    table.check(
        B,
        "end to end: exactly-once",
        format!("{} duplicated, {} invented", e2e.duplicates, e2e.invented),
        "0",
        e2e.duplicates + e2e.invented == 0,
    );
    if until == Until::Settled {
        table.check(
            B,
            format!("DUE_SOON raised when the {DUE_SOON_LEAD_H} h lead began (READY then)"),
            format!(
                "{} of {} on time; latest {} after the lead began",
                e2e.due_soon_needed - e2e.due_soon_late,
                e2e.due_soon_needed,
                human(e2e.due_soon_max_delay)
            ),
            format!(
                "all, within {} (≈{:.0} ms real)",
                human(DUE_SOON_TOLERANCE_S),
                DUE_SOON_TOLERANCE_S / speed * 1e3
            ),
            e2e.due_soon_late == 0 && e2e.due_soon_needed > 0,
        );
    } else {
        table.add(
            B,
            "DUE_SOON check",
            "not run with --quick (the lead begins 32 h in)",
        );
    }
    // WAITED lasts 1–5 s: at real speed, until every issuance has left it.
    let waited = efficiency_run(Until::PastWaited, &lifecycle.deposit, 20, 1.0).await?;
    table.add(
        B,
        "end to end, real speed: WAITED → READY recorded after the change (20 issuances)",
        lag_line(&waited.waited_lags),
    );
    Ok(())
}

fn sorted(mut points: Vec<&Point>) -> Vec<&Point> {
    points.sort_by(|a, b| a.per_paid().total_cmp(&b.per_paid()));
    points
}
