//! The background tasks of a running daemon, started and stopped together:
//! the HTTP listener (if bound), the status line, gauge and sink backlog
//! refresher, the health note where `status` reads it (the owner lock file on
//! SQLite, the daemons registry on PostgreSQL), the systemd watchdog, and the
//! pruning of the delivery log (each sink's `attempts_retention`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::ops::health::Liveness;
use crate::ops::http::router;
use crate::ops::metrics::install_recorder;
use crate::ops::notify::Notifier;
use crate::ops::snapshot::{Snapshot, status_line};
use crate::store::Store;

/// How often the status line and the database gauges are refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// How often the delivery log and delivered deliveries are pruned (also
/// `PRUNE_FIRST` after start).
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The first pruning after start (not at once: startup has enough to do).
const PRUNE_FIRST: Duration = Duration::from_secs(2);
/// A status query that takes longer than this is skipped (the database is busy).
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts the background tasks of a running daemon: the HTTP listener (if
/// bound, serving `pages` beside its own routes), the status/gauge refresher, the watchdog and the pruning of the
/// delivery log (`retentions`: each configured sink's `attempts_retention`).
/// They stop when `token` is cancelled; wait for them on the returned tracker.
pub fn start(
    listener: Option<tokio::net::TcpListener>,
    pages: Option<axum::Router>,
    store: Store,
    liveness: Liveness,
    notifier: Arc<Notifier>,
    retentions: Vec<(String, Duration)>,
    token: CancellationToken,
) -> TaskTracker {
    let tracker = TaskTracker::new();
    let metrics = listener.as_ref().and_then(|_| install_recorder());
    if let Some(listener) = listener {
        let addr: Option<SocketAddr> = listener.local_addr().ok();
        info!(
            addr = addr.map(tracing::field::display),
            "serving /healthz, /metrics and the dashboard"
        );
        let mut app = router(liveness.clone(), metrics.clone());
        if let Some(pages) = pages {
            app = app.merge(pages);
        }
        let stop = token.clone();
        tracker.spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                warn!(error = %e, "the HTTP listener stopped");
            }
        });
    }
    let store_for_note = store.clone();
    let refresh_liveness = liveness.clone();
    let refresh_notifier = notifier.clone();
    let refresh_token = token.clone();
    tracker.spawn(async move {
        refresh(
            store,
            refresh_liveness,
            refresh_notifier,
            metrics,
            refresh_token,
        )
        .await;
    });
    tracker.spawn(prune(store_for_note.clone(), retentions, token.clone()));
    tracker.spawn(note_health(store_for_note, liveness.clone(), token.clone()));
    tracker.spawn(crate::ops::notify::watchdog(notifier, liveness, token));
    tracker.close();
    tracker
}

/// [`PRUNE_FIRST`] after start, then every [`PRUNE_EVERY`]: deletes each
/// sink's attempts older than its `attempts_retention`, and its deliveries
/// delivered before then (never an undelivered one). A sink the database
/// knows but the configuration no longer has is pruned by the default
/// retention. A failure is logged and tried again next time.
async fn prune(store: Store, retentions: Vec<(String, Duration)>, token: CancellationToken) {
    let mut wait = PRUNE_FIRST;
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = PRUNE_EVERY;
        let known = match store.sinks().await {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "cannot read the sinks to prune their delivery log");
                continue;
            }
        };
        let now = Utc::now();
        for sink in known {
            let keep = retentions
                .iter()
                .find(|(name, _)| *name == sink.name)
                .map_or(crate::settings::DEFAULT_ATTEMPTS_RETENTION, |(_, d)| *d);
            let before = crate::domain::time::before(now, keep);
            match store.prune_delivery_log(&sink.name, before).await {
                Ok(p) if p.attempts + p.deliveries > 0 => info!(
                    sink = %sink.name,
                    attempts = p.attempts,
                    deliveries = p.deliveries,
                    retention = %humantime::format_duration(keep),
                    "pruned the delivery log: attempts and delivered deliveries older than attempts_retention"
                ),
                Ok(_) => {}
                Err(e) => {
                    warn!(sink = %sink.name, error = %e, "cannot prune the delivery log; trying again later")
                }
            }
        }
    }
}

/// Every [`REFRESH_EVERY`]: writes the daemon's health, when it changed, into
/// its ownership (see `Store::note_health`), where `status` reads it.
async fn note_health(store: Store, liveness: Liveness, token: CancellationToken) {
    let mut noted: Option<Option<String>> = None;
    loop {
        let problem = liveness.health_problem(Utc::now());
        if noted.as_ref() != Some(&problem) {
            match store.note_health(problem.as_deref()).await {
                Ok(()) => noted = Some(problem),
                Err(e) => debug!(error = %e, "cannot note the health where status reads it"),
            }
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(REFRESH_EVERY) => {}
        }
    }
}

/// Reads each sink's backlog from the database into the sinks' health (for
/// the `STATUS=` line, `/healthz` and the backlog gauges, whose age is
/// computed at each scrape). Here rather than in the delivery workers: a
/// worker sleeps through a long `Retry-After` or while its sink is disabled,
/// and its backlog must not look frozen then.
async fn refresh_backlogs(store: &Store, liveness: &Liveness) {
    let sinks = &liveness.progress().sinks;
    for name in sinks.names() {
        match tokio::time::timeout(QUERY_TIMEOUT, store.sink_backlog(&name)).await {
            Ok(Ok(backlog)) => sinks.set_backlog(&name, backlog.pending, backlog.oldest),
            Ok(Err(e)) => debug!(sink = %name, error = %e, "cannot read the backlog"),
            Err(_) => debug!(sink = %name, "reading the backlog took too long; skipped"),
        }
    }
}

/// Every [`REFRESH_EVERY`]: reads the counts and backlogs, updates the gauges and the `STATUS=` line.
async fn refresh(
    store: Store,
    liveness: Liveness,
    notifier: Arc<Notifier>,
    metrics: Option<PrometheusHandle>,
    token: CancellationToken,
) {
    if !notifier.enabled() && metrics.is_none() {
        return;
    }
    // Events are counted from the outbox (triggers write them, whoever writes
    // the facts): those after the newest one at start.
    let mut events_seen = store.last_event_seq().await.ok();
    loop {
        if metrics.is_some()
            && let Some(after) = events_seen
            && let Ok(Ok(counts)) =
                tokio::time::timeout(QUERY_TIMEOUT, store.event_counts_after(after)).await
        {
            for (event_type, count, newest) in counts {
                crate::ops::metrics::events_written(&event_type, count.max(0) as u64);
                events_seen = events_seen.max(Some(newest));
            }
        }
        refresh_backlogs(&store, &liveness).await;
        match tokio::time::timeout(QUERY_TIMEOUT, Snapshot::read(&store)).await {
            Ok(Ok(snapshot)) => {
                if let Some(handle) = &metrics {
                    crate::ops::metrics::db_gauges(
                        crate::ops::snapshot::WATCHED_STATUSES,
                        &snapshot.active_by_status,
                        snapshot.due_soon,
                        snapshot.overdue,
                        snapshot.unknown_charges,
                        snapshot.wal_bytes,
                    );
                    crate::ops::metrics::progress_gauges(liveness.progress());
                    handle.run_upkeep();
                }
                notifier
                    .status(status_line(&snapshot, liveness.progress(), Utc::now()))
                    .await;
            }
            Ok(Err(e)) => debug!(error = %e, "cannot read counts for the status line"),
            Err(_) => debug!("counts for the status line took too long; skipped"),
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(REFRESH_EVERY) => {}
        }
    }
}
