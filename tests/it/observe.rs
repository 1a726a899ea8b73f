//! The optional HTTP listener: `/healthz` and `/metrics`, on the real binary
//! (configured with `http.listen`) and on the router itself for the stall case.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::daemon::{Daemon, cli};
use common::metrics::{free_port, get, sample, until};
use common::{Reply, ScriptedApi, TestSettings, assert_no_secret, eventually};
use issuance_watcher::ops::health::Liveness;
use issuance_watcher::ops::http::router;
use issuance_watcher::ops::progress::Progress;

fn config(dir: &Path, base_url: &str, listen: &str) -> std::path::PathBuf {
    let ms = Duration::from_millis;
    TestSettings::new(base_url, &dir.join("watcher.db"))
        .with(|s| {
            s.api.access_key = "observe-test".into();
            s.poll.max_interval = ms(200);
            s.poll.startup_spread = ms(10);
            s.poll.auth_pause = ms(200);
            s.poll.auth_pause_max = ms(400);
            s.http.listen = listen.into();
        })
        .write_toml(&dir.join("config.toml"))
}

/// A daemon with its HTTP listener on, watching one issuance `id` that a
/// scripted API answers as READY, due in `due`: the API, the daemon, the
/// listener's base URL and the directory that holds the daemon's files.
async fn watching_ready(
    id: &str,
    due: chrono::Duration,
) -> (ScriptedApi, Daemon, String, tempfile::TempDir) {
    let api = ScriptedApi::start().await;
    api.set_ready(id, due);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = config(dir.path(), &api.base_url(), &format!("127.0.0.1:{port}"));
    common::daemon::migrate(&config);
    let added = cli(&config, &["add", id]);
    assert!(added.status.success(), "{added:?}");
    let daemon = Daemon::start(&config);
    (api, daemon, format!("http://127.0.0.1:{port}"), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_turns_503_while_the_api_answers_401_and_recovers() {
    let (api, _daemon, base, _dir) = watching_ready("h1", chrono::Duration::days(1)).await;
    let healthz = format!("{base}/healthz");

    eventually("/healthz 200", || async {
        matches!(get(&healthz).await, Some((200, _)))
    })
    .await;

    api.answer_everyone(Some(Reply::error(401, "UNAUTHORIZED")));
    eventually("/healthz 503 naming the credentials", || async {
        matches!(get(&healthz).await, Some((503, body)) if body.contains("credentials"))
    })
    .await;

    api.answer_everyone(None);
    eventually("/healthz 200 again", || async {
        matches!(get(&healthz).await, Some((200, _)))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_counters_move_with_polls() {
    let (_api, _daemon, base, _dir) = watching_ready("m1", chrono::Duration::hours(1)).await;
    let metrics = format!("{base}/metrics");
    let observed = ["outcome=\"observed\"", "status=\"200\""];
    let polls = "issuance_watcher_polls_total";

    let text = until(&metrics, "a first observed poll", |t| {
        sample(t, polls, &observed).is_some_and(|n| n >= 1.0)
    })
    .await;
    let first = sample(&text, polls, &observed).unwrap();
    until(&metrics, "the poll counter to move", |t| {
        sample(t, polls, &observed).is_some_and(|n| n > first)
    })
    .await;
    // The gauges are refreshed every few seconds; wait for the database ones.
    let text = until(&metrics, "the active and due-soon gauges", |t| {
        sample(
            t,
            "issuance_watcher_active_issuances",
            &["status=\"READY\""],
        ) == Some(1.0)
            && sample(t, "issuance_watcher_due_soon", &[]) == Some(1.0)
    })
    .await;
    assert_eq!(
        sample(
            &text,
            "issuance_watcher_transitions_total",
            &["from=\"none\"", "to=\"READY\""]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "issuance_watcher_flags_raised_total",
            &["kind=\"DUE_SOON\""]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "issuance_watcher_request_duration_seconds_count",
            &[]
        ) >= Some(2.0),
        "{text}"
    );
    assert!(
        text.contains("issuance_watcher_request_duration_seconds_bucket{le=\"0.1\"}"),
        "{text}"
    );
    assert!(
        sample(&text, "issuance_watcher_database_wal_bytes", &[]).is_some(),
        "the WAL size is exported: {text}"
    );
    assert!(
        sample(
            &text,
            "issuance_watcher_seconds_since_last_successful_poll",
            &[]
        )
        .is_some_and(|s| s < 10.0),
        "{text}"
    );
    assert!(!text.contains("observe-test"));
    assert_no_secret("/metrics", &text);
}

#[tokio::test]
async fn healthz_turns_503_when_the_loop_stalls() {
    let progress = Arc::new(Progress::default());
    let liveness = Liveness::new(progress.clone(), Duration::from_millis(100));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(liveness, None)).await });

    let (status, body) = get(&format!("{base}/healthz")).await.unwrap();
    assert_eq!(status, 503, "never turned: {body}");
    progress.loop_turned();
    let (status, _) = get(&format!("{base}/healthz")).await.unwrap();
    assert_eq!(status, 200);
    // A stall: no turn for longer than the 100 ms limit, time let pass on purpose.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = get(&format!("{base}/healthz")).await.unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("has not turned"), "{body}");
}

#[test]
fn a_malformed_http_listen_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "http://127.0.0.1:9", "localhost-ish");
    let out = cli(&config, &["check-config"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http.listen"), "{err}");
}
