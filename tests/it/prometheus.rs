//! The shipped alert rules in a real Prometheus (Debian's `prometheus`
//! package), scraping a running daemon on loopback that watches charges on the
//! simulator: the metrics arrive, the rules load and stay quiet while all is
//! well, and the credentials alert fires when the simulator refuses our
//! credentials, then resolves once it accepts them again. Where `prometheus`
//! is missing this fails under CI (`.ci/run` installs it) and is skipped
//! elsewhere (see `tests/support`).
//!
//! The rules' `for:` durations (minutes) are set to 0 here: what this shows is
//! that the expressions match what the daemon really exports; the durations are
//! covered by the promtool unit tests (`tests/operator_kit.rs`).

use crate::common;
use crate::support;

use std::path::Path;
use std::time::Duration;

use bunjang_sim::SimConfig;
use bunjang_sim::cli::{DEMO_ACCESS_KEY, DEMO_SECRET_KEY};
use common::TestSettings;
use common::daemon::{Daemon, cli};
use common::prometheus::{Prometheus, free_port};
use common::sim_client::{self, Client};
use reqwest::Method;
use serde_json::{Value, json};

const JOB: &str = "issuance-watcher";

/// The shipped rules with every `for:` set to 0s.
fn rules_without_for() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/monitoring/issuance-watcher.rules.yml");
    let rules = std::fs::read_to_string(path).unwrap();
    let edited: Vec<String> = rules
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for:") {
            Some(_) => format!("{}for: 0s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_owned(),
        })
        .collect();
    assert!(
        edited.iter().filter(|l| l.trim() == "for: 0s").count() >= 5,
        "the rules have fewer `for:` lines than expected"
    );
    edited.join("\n")
}

fn firing<'a>(alerts: &'a [Value], name: &str) -> Option<&'a Value> {
    alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == name && a["state"] == "firing")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_daemon_and_fires_the_credentials_alert() {
    let sim = sim_client::start(SimConfig::default()).await;
    let control = Client::new(&sim);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = TestSettings::new(&sim.base_url(), &dir.path().join("watcher.db"))
        .credentials(DEMO_ACCESS_KEY, DEMO_SECRET_KEY)
        .with(|s| s.http.listen = format!("127.0.0.1:{port}"))
        .write_toml(&dir.path().join("config.toml"));
    let ids = control.seed(3, 10000).await;
    let mut args = vec!["add"];
    args.extend(ids.iter().map(String::as_str));
    common::daemon::migrate(&config);
    let added = cli(&config, &args);
    assert!(added.status.success(), "{added:?}");
    let _daemon = Daemon::start(&config);

    let target = format!("127.0.0.1:{port}");
    let Some(prometheus) = support::require(Prometheus::start(
        JOB,
        std::slice::from_ref(&target),
        &rules_without_for(),
    )) else {
        return;
    };
    let wait = Duration::from_secs(60);

    // The scrape works and the daemon's metrics are in Prometheus.
    prometheus
        .until("up == 1", wait, || async {
            let up = prometheus.query(&format!("up{{job=\"{JOB}\"}} == 1")).await;
            (!up.is_empty()).then_some(())
        })
        .await;
    let watched = prometheus
        .until("3 active issuances", wait, || async {
            let r = prometheus
                .query(&format!(
                    "sum(issuance_watcher_active_issuances{{job=\"{JOB}\"}})"
                ))
                .await;
            let value: f64 = r.first()?["value"][1].as_str()?.parse().ok()?;
            (value == 3.0).then_some(value)
        })
        .await;
    assert_eq!(watched, 3.0);
    prometheus
        .until(
            "observed polls and a last successful poll",
            wait,
            || async {
                let polls = prometheus
                    .query("issuance_watcher_polls_total{outcome=\"observed\"}")
                    .await;
                let since = prometheus
                    .query("issuance_watcher_seconds_since_last_successful_poll")
                    .await;
                (!polls.is_empty() && !since.is_empty()).then_some(())
            },
        )
        .await;
    // Every metric the rules use (the webhook one needs a sink) is scraped.
    let names = prometheus
        .api("label/__name__/values", &[])
        .await
        .expect("metric names");
    for name in [
        "issuance_watcher_auth_failing",
        "issuance_watcher_seconds_since_last_successful_poll",
        "issuance_watcher_active_issuances",
        "issuance_watcher_due_soon",
        "issuance_watcher_overdue",
        "issuance_watcher_database_wal_bytes",
        "issuance_watcher_polls_total",
        "issuance_watcher_request_duration_seconds_bucket",
    ] {
        assert!(
            names.as_array().unwrap().iter().any(|n| n == name),
            "{name} is not among the scraped metrics: {names}"
        );
    }
    // The rules loaded, and all is well: no alert about the daemon or the API.
    let groups = prometheus.api("rules", &[]).await.expect("rules");
    let loaded = groups["groups"][0]["rules"].as_array().unwrap().len();
    assert!(loaded >= 8, "{groups}");
    let alerts = prometheus.alerts().await;
    for quiet in [
        "IssuanceWatcherDown",
        "IssuanceWatcherCredentialsRefused",
        "IssuanceWatcherNoSuccessfulPoll",
        "IssuanceWatcherNoSuccessfulPollYet",
    ] {
        assert!(
            firing(&alerts, quiet).is_none(),
            "{quiet} fires: {alerts:?}"
        );
    }

    // The API refuses our credentials: the alert fires for this daemon.
    let put = control
        .control(
            Method::PUT,
            "/_sim/faults",
            json!({"unauthorized": {"rate": 1.0}, "unauthorized_code": "INVALID_AUTH_TOKEN"}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let alert = prometheus
        .until("IssuanceWatcherCredentialsRefused firing", wait, || async {
            firing(
                &prometheus.alerts().await,
                "IssuanceWatcherCredentialsRefused",
            )
            .cloned()
        })
        .await;
    assert_eq!(alert["labels"]["instance"], target.as_str(), "{alert}");
    assert_eq!(alert["labels"]["severity"], "page", "{alert}");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains(&target),
        "{alert}"
    );

    // Credentials accepted again: the daemon retries after its pause and the alert ends.
    let put = control
        .control(Method::PUT, "/_sim/faults", json!({}))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    prometheus
        .until(
            "IssuanceWatcherCredentialsRefused resolved",
            wait,
            || async {
                firing(
                    &prometheus.alerts().await,
                    "IssuanceWatcherCredentialsRefused",
                )
                .is_none()
                .then_some(())
            },
        )
        .await;
}
