//! How the running daemon looks from outside: whether it is making progress
//! ([`Liveness`], for the systemd watchdog and `/healthz`), what it is watching
//! ([`Snapshot`], for `STATUS=` lines and gauges), and the optional HTTP listener
//! serving `/healthz` and `/metrics` (Prometheus text).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::notify::Notifier;
use crate::progress::Progress;
use crate::settings::{HttpSettings, Settings};
use crate::store::Store;

/// How often the status line and the database gauges are refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// The statuses an actively watched issuance can have (`UNSEEN`: not answered yet).
pub const WATCHED_STATUSES: &[&str] = &["UNSEEN", "WAITED", "READY"];
/// A status query that takes longer than this is skipped (the database is busy).
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether the scheduler loop is making progress, judged from [`Progress`].
#[derive(Debug, Clone)]
pub struct Liveness {
    progress: Arc<Progress>,
    stall_after: Duration,
}

impl Liveness {
    pub fn new(progress: Arc<Progress>, stall_after: Duration) -> Self {
        Self {
            progress,
            stall_after,
        }
    }

    /// The longest the loop may legitimately go without turning outside a pause:
    /// a poll's timeout, a database wait and a rate slot, with room to spare,
    /// plus the idle re-check. With the defaults about 31 s.
    pub fn stall_after(settings: &Settings) -> Duration {
        let slot = Duration::from_secs_f64((1.0 / settings.api.requests_per_second).min(3600.0));
        2 * (settings.api.timeout + settings.database.busy_timeout + slot)
            + settings.poll.idle_recheck
    }

    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    /// `None` while the loop turns (or sleeps through a known pause), else why not.
    pub fn loop_problem(&self, now: DateTime<Utc>) -> Option<String> {
        let Some(last) = self.progress.last_loop() else {
            return Some("the scheduler loop has not started".into());
        };
        let limit = chrono::Duration::from_std(self.stall_after).unwrap_or(chrono::TimeDelta::MAX);
        let age = now - last;
        if age <= limit {
            return None;
        }
        // Polling paused (Retry-After or an auth pause): the loop sleeps until then.
        if let Some(until) = self.progress.paused_until()
            && until >= last
            && now <= until + limit
        {
            return None;
        }
        Some(format!(
            "the scheduler loop has not turned for {} s",
            age.num_seconds()
        ))
    }

    /// `None` when healthy: the loop makes progress and the API accepts our credentials.
    pub fn health_problem(&self, now: DateTime<Utc>) -> Option<String> {
        if let Some(problem) = self.loop_problem(now) {
            return Some(problem);
        }
        self.progress
            .auth_failing()
            .then(|| "the API refuses our credentials (401/403)".to_owned())
    }
}

/// What is being watched, read from the database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub active: i64,
    /// Actively watched issuances by last seen status (`UNSEEN` for none yet).
    pub active_by_status: Vec<(String, i64)>,
    /// Open `DUE_SOON` flags.
    pub due_soon: i64,
    pub wal_bytes: Option<u64>,
}

impl Snapshot {
    pub async fn read(store: &Store) -> anyhow::Result<Self> {
        let counts = store.active_counts().await?;
        let due_soon = store.open_due_soon().await?;
        let mut snapshot = Snapshot {
            due_soon,
            wal_bytes: store.wal_bytes(),
            ..Snapshot::default()
        };
        for (status, count) in counts {
            snapshot.active += count;
            let status = status.unwrap_or_else(|| "UNSEEN".to_owned());
            snapshot.active_by_status.push((status, count));
        }
        Ok(snapshot)
    }
}

/// The one-line `STATUS=` text: live counts and the last successful poll.
pub fn status_line(snapshot: &Snapshot, progress: &Progress, now: DateTime<Utc>) -> String {
    let mut line = format!("{} active", snapshot.active);
    if !snapshot.active_by_status.is_empty() {
        let parts: Vec<String> = snapshot
            .active_by_status
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        line.push_str(&format!(" ({})", parts.join(", ")));
    }
    line.push_str(&format!(", {} due soon", snapshot.due_soon));
    match progress.last_success() {
        Some(at) => line.push_str(&format!(
            ", last successful poll {} s ago",
            (now - at).num_seconds().max(0)
        )),
        None => line.push_str(", no successful poll yet"),
    }
    if progress.auth_failing() {
        line.push_str("; the API refuses our credentials");
    }
    line
}

/// Binds the HTTP listener if `http.listen` is set (and installs the metrics
/// recorder); `None` when it is off. Done before `READY=1`, so a taken port fails the start.
pub async fn bind(http: &HttpSettings) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = http.listen_addr()? else {
        return Ok(None);
    };
    if !addr.ip().is_loopback() {
        warn!(%addr, "http.listen is not a loopback address: /metrics and /healthz are reachable from the network without authentication");
    }
    install_recorder();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("while binding http.listen {addr}"))?;
    Ok(Some(listener))
}

/// The process-wide Prometheus recorder (installed once; `None` if another recorder was).
pub fn install_recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(crate::metrics::REQUEST_SECONDS.to_owned()),
                    crate::metrics::REQUEST_BUCKETS,
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    crate::metrics::describe();
                    Some(handle)
                }
                Err(_) => {
                    warn!("a metrics recorder is already installed: /metrics will be empty");
                    None
                }
            }
        })
        .clone()
}

#[derive(Clone)]
struct AppState {
    liveness: Liveness,
    metrics: Option<PrometheusHandle>,
}

/// The HTTP routes: `/healthz` and `/metrics`.
pub fn router(liveness: Liveness, metrics: Option<PrometheusHandle>) -> axum::Router {
    axum::Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/metrics", axum::routing::get(render_metrics))
        .with_state(AppState { liveness, metrics })
}

async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    match state.liveness.health_problem(Utc::now()) {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {reason}\n"),
        )
            .into_response(),
    }
}

async fn render_metrics(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let Some(handle) = state.metrics else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no metrics recorder\n").into_response();
    };
    crate::metrics::progress_gauges(state.liveness.progress());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// Starts the background tasks of a running daemon: the HTTP listener (if
/// bound), the status/gauge refresher and the watchdog. They stop when `token`
/// is cancelled; wait for them on the returned tracker.
pub fn start(
    listener: Option<tokio::net::TcpListener>,
    store: Store,
    liveness: Liveness,
    notifier: Arc<Notifier>,
    token: CancellationToken,
) -> TaskTracker {
    let tracker = TaskTracker::new();
    let metrics = listener.as_ref().and_then(|_| install_recorder());
    if let Some(listener) = listener {
        let addr: Option<SocketAddr> = listener.local_addr().ok();
        info!(addr = ?addr, "serving /healthz and /metrics");
        let app = router(liveness.clone(), metrics.clone());
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
    tracker.spawn(crate::notify::watchdog(notifier, liveness, token));
    tracker.close();
    tracker
}

/// Every [`REFRESH_EVERY`]: reads the counts, updates the gauges and the `STATUS=` line.
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
    loop {
        match tokio::time::timeout(QUERY_TIMEOUT, Snapshot::read(&store)).await {
            Ok(Ok(snapshot)) => {
                if let Some(handle) = &metrics {
                    crate::metrics::db_gauges(&snapshot);
                    crate::metrics::progress_gauges(liveness.progress());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_never_turned_or_stopped_turning_is_a_problem() {
        let progress = Arc::new(Progress::default());
        let liveness = Liveness::new(progress.clone(), Duration::from_secs(10));
        let now = Utc::now();
        assert!(liveness.loop_problem(now).unwrap().contains("not started"));
        progress.loop_turned();
        assert_eq!(liveness.loop_problem(Utc::now()), None);
        assert_eq!(liveness.health_problem(Utc::now()), None);
        let later = Utc::now() + chrono::Duration::seconds(60);
        assert!(
            liveness
                .loop_problem(later)
                .unwrap()
                .contains("has not turned")
        );
        assert!(liveness.health_problem(later).is_some());
    }

    #[test]
    fn failing_auth_is_unhealthy_but_not_a_stall() {
        let progress = Arc::new(Progress::default());
        progress.loop_turned();
        progress.set_auth_failing(true);
        let liveness = Liveness::new(progress, Duration::from_secs(10));
        assert_eq!(liveness.loop_problem(Utc::now()), None);
        assert!(
            liveness
                .health_problem(Utc::now())
                .unwrap()
                .contains("credentials")
        );
    }

    #[test]
    fn default_stall_threshold_is_about_half_a_minute() {
        let settings = Settings::load_with_env(None, Vec::new()).unwrap();
        let stall = Liveness::stall_after(&settings);
        assert!(
            stall >= Duration::from_secs(20) && stall <= Duration::from_secs(60),
            "{stall:?}"
        );
    }

    #[test]
    fn status_line_names_the_counts() {
        let progress = Progress::default();
        let snapshot = Snapshot {
            active: 3,
            active_by_status: vec![("READY".into(), 2), ("UNSEEN".into(), 1)],
            due_soon: 1,
            wal_bytes: None,
        };
        let line = status_line(&snapshot, &progress, Utc::now());
        assert_eq!(
            line,
            "3 active (READY 2, UNSEEN 1), 1 due soon, no successful poll yet"
        );
        assert!(!line.contains('\n'));
    }
}
