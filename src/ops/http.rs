//! The optional HTTP listener: `/healthz` (from [`Liveness`]) and `/metrics`
//! (Prometheus text). Bound before `READY=1`, so a taken port fails the start.

use anyhow::Context as _;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use metrics_exporter_prometheus::PrometheusHandle;
use tracing::warn;

use crate::ops::health::Liveness;
use crate::ops::metrics::install_recorder;
use crate::settings::HttpSettings;

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
    crate::ops::metrics::progress_gauges(state.liveness.progress());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}
