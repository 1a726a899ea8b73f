//! `issuance-watcher sinks`, `sinks disable NAME` and `sinks enable NAME`,
//! through the real binary against a running daemon delivering to a receiver
//! that verifies every signature: a disabled sink gets nothing (its events
//! wait, across a restart), `sinks` says so and why, and enabling sends the
//! backlog within seconds, without a restart, and stays enabled after one.

use crate::common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use common::engine::on_both_engines;
use common::running::{EVERY, RunningApp, poll, wait_for};
use common::{Receiver, ScriptedApi, TestSettings, WEBHOOK_SECRET};
use serde_json::Value;

/// Runs a command on `config`; its exit success, stdout and stderr.
fn run(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = common::cli(config, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sinks --json`, parsed.
fn sinks_json(config: &Path) -> Value {
    let (ok, out, err) = run(config, &["sinks", "--json"]);
    assert!(ok, "sinks --json: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("sinks --json: {e}: {out}"))
}

/// A `balance.low` event: one event each call, about no issuance.
async fn event(store: &issuance_watcher::store::Store) {
    store
        .record_balance(Utc::now(), 120_000, 0, Some(500_000))
        .await
        .unwrap();
}

/// The `webhook-id`s of the events of the outbox.
async fn event_ids(app: &RunningApp) -> Vec<String> {
    app.events().await.into_iter().map(|e| e.1).collect()
}

/// The distinct `webhook-id`s the receiver accepted; panics on any request
/// whose signature did not verify.
fn delivered(receiver: &Receiver) -> HashSet<String> {
    receiver
        .delivered()
        .iter()
        .map(|r| {
            assert!(r.verified.is_ok(), "unverified request: {:?}", r.verified);
            r.webhook_id()
        })
        .collect()
}

/// Waits until every id of `ids` has been delivered, within `limit`.
async fn all_delivered(receiver: &Receiver, ids: &[String], limit: Duration, what: &str) {
    wait_for(what, limit, async || {
        let got = delivered(receiver);
        let missing: Vec<&String> = ids.iter().filter(|id| !got.contains(*id)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("still missing {missing:?}"))
        }
    })
    .await;
}

/// Over a `window`, none of `ids` reaches the receiver (the window is the
/// point: a deadline on something that must not happen).
async fn none_delivered(receiver: &Receiver, ids: &[String], window: Duration, what: &str) {
    let arrived = poll(what, window, EVERY, async || {
        let got = delivered(receiver);
        match ids.iter().find(|id| got.contains(*id)) {
            Some(id) => Ok(id.clone()),
            None => Err("none arrived".to_owned()),
        }
    })
    .await;
    if let Ok(id) = arrived {
        panic!("{what}: event {id} was delivered to a disabled sink");
    }
}

fn setup(api: &ScriptedApi, receiver: &Receiver, dir: &Path) -> (TestSettings, PathBuf) {
    let settings = TestSettings::new(&api.base_url(), &dir.join("watcher.db")).webhook(
        "shop",
        &receiver.url(),
        |_| {},
    );
    let config = settings.write_toml(&dir.join("config.toml"));
    (settings, config)
}

async fn disable_stops_deliveries_and_enable_sends_the_backlog_without_a_restart() {
    let api = ScriptedApi::start().await;
    let receiver = Receiver::start(WEBHOOK_SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let (settings, config) = setup(&api, &receiver, dir.path());
    let app = RunningApp::start(settings.build()).await;
    app.running().await;
    event(&app.store).await;
    let first = event_ids(&app).await;
    all_delivered(
        &receiver,
        &first,
        Duration::from_secs(15),
        "the first event",
    )
    .await;
    // The receiver has the event; the daemon records the delivery once the
    // answer is back, a moment later.
    let json = wait_for(
        "sinks --json to show the first event delivered",
        Duration::from_secs(15),
        async || {
            let json = sinks_json(&config);
            match json[0]["backlog"] == 0 && json[0]["last_success"].is_string() {
                true => Ok(json),
                false => Err(json.to_string()),
            }
        },
    )
    .await;
    assert_eq!(json[0]["name"], "shop", "{json}");
    assert_eq!(json[0]["health"], "ok", "{json}");

    let (ok, out, err) = run(
        &config,
        &[
            "sinks",
            "disable",
            "shop",
            "--reason",
            "receiver maintenance",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("sink `shop` disabled at"), "{out}");
    event(&app.store).await;
    event(&app.store).await;
    let waiting: Vec<String> = event_ids(&app).await.split_off(first.len());
    assert_eq!(waiting.len(), 2);
    none_delivered(
        &receiver,
        &waiting,
        Duration::from_secs(2),
        "events written while disabled",
    )
    .await;

    let (ok, table, err) = run(&config, &["sinks"]);
    assert!(ok, "{err}");
    let header = table.lines().next().unwrap();
    for column in ["NAME", "HEALTH", "BACKLOG", "OLDEST", "LAST PROBLEM"] {
        assert!(header.contains(column), "{table}");
    }
    let row = table.lines().nth(1).unwrap();
    assert!(row.starts_with("shop  "), "{table}");
    assert!(row.contains("disabled since "), "{table}");
    assert!(row.contains(": disabled by hand by "), "{table}");
    assert!(row.contains("receiver maintenance"), "{table}");
    let json = sinks_json(&config);
    assert_eq!(json[0]["health"], "disabled", "{json}");
    assert_eq!(json[0]["backlog"], 2, "{json}");
    assert!(json[0]["oldest_undelivered_seconds"].is_i64(), "{json}");
    let reason = json[0]["disabled_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("disabled by hand by ") && reason.ends_with(": receiver maintenance"),
        "{reason}"
    );
    let (ok, status, _) = run(&config, &["status"]);
    assert!(ok);
    assert!(status.contains("`sinks enable shop` resumes"), "{status}");

    let (ok, out, err) = run(&config, &["sinks", "enable", "shop"]);
    assert!(ok, "{err}");
    assert!(out.contains("sink `shop` enabled"), "{out}");
    // The worker re-reads a disabled sink's row every 5 s.
    all_delivered(
        &receiver,
        &waiting,
        Duration::from_secs(7),
        "the backlog after `sinks enable`",
    )
    .await;
    let json = sinks_json(&config);
    assert_eq!(json[0]["health"], "ok", "{json}");
    assert_eq!(json[0]["backlog"], 0, "{json}");

    let (ok, out, err) = run(&config, &["sinks", "enable", "shop"]);
    assert!(ok, "enabling an enabled sink is no error: {err}");
    assert!(out.contains("sink `shop` is not disabled"), "{out}");
    app.stop().await.unwrap();
}

async fn disable_and_enable_survive_a_restart() {
    let api = ScriptedApi::start().await;
    let receiver = Receiver::start(WEBHOOK_SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let (settings, config) = setup(&api, &receiver, dir.path());
    let app = RunningApp::start(settings.build()).await;
    app.running().await;
    let (ok, _, err) = run(&config, &["sinks", "disable", "shop"]);
    assert!(ok, "{err}");
    app.stop().await.unwrap();

    let app = RunningApp::start(settings.build()).await;
    app.running().await;
    event(&app.store).await;
    let waiting = event_ids(&app).await;
    none_delivered(
        &receiver,
        &waiting,
        Duration::from_secs(2),
        "an event while disabled, after a restart",
    )
    .await;
    let (ok, out, err) = run(&config, &["sinks", "disable", "shop"]);
    assert!(ok, "{err}");
    assert!(out.contains("was already disabled"), "{out}");
    let (ok, _, err) = run(&config, &["sinks", "enable", "shop"]);
    assert!(ok, "{err}");
    all_delivered(
        &receiver,
        &waiting,
        Duration::from_secs(7),
        "the backlog after `sinks enable`",
    )
    .await;
    app.stop().await.unwrap();

    let app = RunningApp::start(settings.build()).await;
    app.running().await;
    event(&app.store).await;
    let all = event_ids(&app).await;
    all_delivered(
        &receiver,
        &all,
        Duration::from_secs(15),
        "an event after a restart: still enabled",
    )
    .await;
    app.stop().await.unwrap();
}

async fn an_unknown_sink_is_refused_with_the_known_ones() {
    let api = ScriptedApi::start().await;
    let receiver = Receiver::start(WEBHOOK_SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let (_settings, config) = setup(&api, &receiver, dir.path());
    common::daemon::migrate(&config);
    for action in ["disable", "enable"] {
        let (ok, out, err) = run(&config, &["sinks", action, "shpo"]);
        assert!(!ok, "{action} of an unknown sink: {out}");
        assert!(
            err.contains("no webhook sink named `shpo`; known sinks: shop"),
            "{err}"
        );
    }
    // Configured, never started by a daemon: listed as such, and nothing was written.
    let json = sinks_json(&config);
    assert_eq!(json.as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json[0]["health"], "not_started", "{json}");
    let (ok, table, _) = run(&config, &["sinks"]);
    assert!(ok);
    assert!(
        table.lines().nth(1).unwrap().contains("not started"),
        "{table}"
    );
}

on_both_engines!(
    disable_stops_deliveries_and_enable_sends_the_backlog_without_a_restart(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    disable_and_enable_survive_a_restart(flavor = "multi_thread", worker_threads = 2),
    an_unknown_sink_is_refused_with_the_known_ones(flavor = "multi_thread", worker_threads = 2),
);
