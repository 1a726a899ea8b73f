//! What an operator sees of webhook deliveries and does with them, through
//! the real commands: `events --json` for events about no issuance,
//! `events redeliver` of a list, `events --failed` saying what each delivery
//! waits for, `events discard` for a removed sink's deliveries, `status`
//! showing each sink's health with what needs a person first, and the
//! oldest-undelivered gauge that must keep growing while nothing is sent.

use crate::common;

use std::path::{Path, PathBuf};

use chrono::Utc;
use common::db::Db;
use common::engine::on_both_engines;
use common::metrics::{free_port, sample, until};
use common::running::{RunningApp, number};
use common::{Mode, Receiver, Reply, ScriptedApi, TestSettings, WEBHOOK_SECRET, eventually};
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

/// `events --failed --json` (or `status --json`): the parsed document.
fn json(config: &Path, args: &[&str]) -> Value {
    let (ok, out, err) = run(config, args);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// A `balance.low` event, as the daemon writes it when the balance falls below.
async fn balance_low(store: &issuance_watcher::store::Store) {
    store
        .record_balance(Utc::now(), 120_000, 0, Some(500_000))
        .await
        .unwrap();
}

fn settings(api: &ScriptedApi, dir: &Path) -> TestSettings {
    TestSettings::new(&api.base_url(), &dir.join("watcher.db"))
}

fn config_file(settings: &TestSettings, dir: &Path) -> PathBuf {
    settings.write_toml(&dir.join("config.toml"))
}

async fn events_json_prints_null_for_the_issuance_of_an_event_about_none() {
    let api = ScriptedApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&api, dir.path());
    let config = config_file(&settings, dir.path());
    let store = issuance_watcher::store::Store::open_migrated(&settings.build().database)
        .await
        .unwrap();
    balance_low(&store).await;
    let (ok, out, err) = run(&config, &["events", "--json"]);
    assert!(ok, "{err}");
    let event: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(event["type"], "balance.low");
    assert_eq!(event["issuance_id"], Value::Null, "{out}");
    let (_, text, _) = run(&config, &["events"]);
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.contains("balance.low")),
        "{text}"
    );
    store.close().await;
}

async fn redeliver_schedules_every_seq_it_can_balance_low_included_and_names_the_others() {
    let api = ScriptedApi::start().await;
    let receiver = Receiver::start(WEBHOOK_SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    api.script(
        "e",
        vec![Reply::issuance("e", "WAITED"), Reply::issuance("e", "DONE")],
    );
    let settings = settings(&api, dir.path()).webhook("shop", &receiver.url(), |_| {});
    let config = config_file(&settings, dir.path());
    let app = RunningApp::start(settings.build()).await;
    app.insert(&["e"]).await;
    // Once the sink is registered (it starts after the newest event of then).
    eventually("the issuance's two events delivered", || async {
        receiver.delivered().len() == 2
    })
    .await;
    balance_low(&app.store).await;
    eventually("three events delivered", || async {
        receiver.delivered().len() == 3
    })
    .await;
    let events = app.events().await;
    let low = events
        .iter()
        .find(|e| e.2 == "balance.low")
        .unwrap()
        .clone();
    let first = events[0].clone();
    let times = |id: &str| {
        receiver
            .delivered()
            .iter()
            .filter(|r| r.webhook_id() == id)
            .count()
    };

    let (low_seq, first_seq) = (low.0.to_string(), first.0.to_string());
    let (ok, out, err) = run(
        &config,
        &["events", "redeliver", &low_seq, "999", &first_seq],
    );
    assert!(!ok, "a SEQ was not scheduled: the exit code says so\n{out}");
    assert!(
        out.contains(&format!("seq {low_seq}: scheduled for shop"))
            && out.contains("seq 999: NOT scheduled: no such event")
            && out.contains(&format!("seq {first_seq}: scheduled for shop")),
        "{out}"
    );
    assert!(
        err.contains("1 of 3 events not scheduled: seq 999"),
        "{err}"
    );
    eventually("both events delivered again", || async {
        times(&low.1) == 2 && times(&first.1) == 2
    })
    .await;
    app.stop().await.unwrap();
}

async fn failed_says_what_each_delivery_waits_for_and_a_removed_sinks_can_be_discarded() {
    let api = ScriptedApi::start().await;
    let failing = Receiver::start(WEBHOOK_SECRET).await;
    let gone = Receiver::start(WEBHOOK_SECRET).await;
    let old = Receiver::start(WEBHOOK_SECRET).await;
    failing.set_mode(Mode::Fail(503));
    gone.set_mode(Mode::Gone);
    old.go_away().await;
    let dir = tempfile::tempdir().unwrap();
    api.script(
        "e",
        vec![Reply::issuance("e", "WAITED"), Reply::issuance("e", "DONE")],
    );
    let kept = settings(&api, dir.path())
        .webhook("shop", &failing.url(), |_| {})
        .webhook("gone", &gone.url(), |_| {});
    // First run: `old` is configured too, and its receiver is down.
    let app = RunningApp::start(kept.clone().webhook("old", &old.url(), |_| {}).build()).await;
    app.insert(&["e"]).await;
    let tried = |sink: &'static str| {
        let db = Db::from(&app.store);
        async move {
            !db.rows(
                "SELECT sink FROM deliveries WHERE sink = $1 AND attempts > 0",
                &[sink],
            )
            .await
            .is_empty()
        }
    };
    eventually(
        "both events written, every sink tried, `gone` disabled",
        || async {
            app.events().await.len() == 2
                && number(
                    &app.store,
                    "SELECT count(*) FROM deliveries WHERE sink = 'old'",
                )
                .await
                    == 2
                && tried("shop").await
                && tried("old").await
                && number(
                    &app.store,
                    "SELECT count(*) FROM sinks WHERE disabled_at IS NOT NULL",
                )
                .await
                    == 1
        },
    )
    .await;
    app.stop().await.unwrap();
    // `old` is removed from the configuration; the daemon runs on without it.
    let config = config_file(&kept, dir.path());
    let app = RunningApp::start(kept.build()).await;

    let failed = json(&config, &["events", "--failed", "--json"]);
    let rows: Vec<(String, i64, String, bool)> = failed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["sink"].as_str().unwrap().to_owned(),
                r["seq"].as_i64().unwrap(),
                r["state"].as_str().unwrap().to_owned(),
                r["next_attempt_at"].is_string(),
            )
        })
        .collect();
    let state_of = |sink: &str| -> Vec<(&str, bool)> {
        rows.iter()
            .filter(|r| r.0 == sink)
            .map(|r| (r.2.as_str(), r.3))
            .collect()
    };
    // Only `shop` retries, so only it has a next attempt; `old`'s second
    // delivery was never attempted, and is listed all the same.
    assert_eq!(state_of("old"), [("sink_removed", false); 2], "{failed}");
    assert_eq!(state_of("gone"), [("sink_disabled", false)], "{failed}");
    let shop = state_of("shop");
    assert!(
        !shop.is_empty() && shop.iter().all(|s| *s == ("retrying", true)),
        "{failed}"
    );
    let (_, text, note) = run(&config, &["events", "--failed"]);
    assert!(
        text.contains("sink removed")
            && text.contains("sink disabled since")
            && text.contains("retrying, next"),
        "{text}"
    );
    assert!(note.contains("events discard --sink old"), "{note}");

    // `status` says the same of each sink, and puts them first.
    let status = json(&config, &["status", "--json"]);
    let health: Vec<(String, String)> = status["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["health"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
    };
    assert_eq!(
        health,
        pairs(&[
            ("shop", "failing"),
            ("gone", "disabled"),
            ("old", "removed")
        ]),
        "{status}"
    );
    assert_eq!(status["webhooks"][2]["backlog"], 2, "{status}");

    // Redelivering to the removed sink is refused, with the way out.
    let (ok, _, err) = run(&config, &["events", "redeliver", "1", "--sink", "old"]);
    assert!(!ok);
    assert!(err.contains("events discard --sink old"), "{err}");
    let (ok, out, err) = run(&config, &["events", "discard", "--sink", "old"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("2 undelivered deliveries to old discarded"),
        "{out}"
    );
    let failed = json(&config, &["events", "--failed", "--json"]);
    assert!(
        failed
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["sink"] != "old"),
        "{failed}"
    );
    assert_eq!(
        number(
            &app.store,
            "SELECT count(*) FROM deliveries WHERE sink = 'old' AND discarded_at IS NOT NULL"
        )
        .await,
        2,
        "kept, marked"
    );
    let status = json(&config, &["status", "--json"]);
    assert!(
        status["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != "old"),
        "{status}"
    );
    assert!(old.received().is_empty());
    app.stop().await.unwrap();
}

async fn status_puts_a_failing_sink_and_unknown_charges_first_until_they_are_resolved() {
    let api = ScriptedApi::start().await;
    let receiver = Receiver::start(WEBHOOK_SECRET).await;
    receiver.go_away().await;
    let dir = tempfile::tempdir().unwrap();
    api.script(
        "e",
        vec![Reply::issuance("e", "WAITED"), Reply::issuance("e", "DONE")],
    );
    let settings = settings(&api, dir.path()).webhook("shop", &receiver.url(), |_| {});
    let config = config_file(&settings, dir.path());
    let app = RunningApp::start(settings.build()).await;
    app.insert(&["e"]).await;
    // A charge whose POST got no usable answer: it may exist.
    Db::from(&app.store)
        .exec(
            "INSERT INTO charge_requests (amount, state, error_code, finished_at) VALUES (50000, 'unknown', 'TIMEOUT', '2026-12-05T10:00:00.000Z')",
            &[],
        )
        .await;
    eventually("status to see the sink failing", || async {
        json(&config, &["status", "--json"])["webhooks"][0]["health"] == "failing"
    })
    .await;
    let status = json(&config, &["status", "--json"]);
    let shop = &status["webhooks"][0];
    assert!(shop["failing_since"].is_string(), "{status}");
    assert!(
        shop["last_problem"].as_str().unwrap().contains("connect"),
        "{status}"
    );
    assert!(shop["backlog"].as_i64().unwrap() >= 1, "{status}");
    assert!(shop["oldest_undelivered_seconds"].is_i64(), "{status}");
    assert_eq!(status["charge_requests"]["unknown"]["total"], 1);
    let (_, text, _) = run(&config, &["status"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "ATTENTION", "{text}");
    assert!(lines[1].contains("UNKNOWN outcome"), "{text}");
    assert!(lines[2].contains("`shop` is FAILING since"), "{text}");
    assert!(
        text.contains("webhooks              1 sink(s)\n  shop                 FAILING since"),
        "{text}"
    );

    receiver.come_back().await;
    eventually("status to see the sink delivering again", || async {
        let s = json(&config, &["status", "--json"]);
        s["webhooks"][0]["health"] == "ok" && s["webhooks"][0]["backlog"] == 0
    })
    .await;
    let (_, text, _) = run(&config, &["status"]);
    assert!(!text.contains("`shop`"), "{text}");
    assert!(text.contains("UNKNOWN outcome"), "still unresolved: {text}");
    assert!(
        text.contains("  shop                 ok; backlog 0"),
        "{text}"
    );
    // A person found no charge in the partner console: nothing needs attention.
    let resolved = common::cli(&config, &["charges", "resolve", "1", "--none"]);
    assert!(resolved.status.success(), "{resolved:?}");
    let (_, text, _) = run(&config, &["status"]);
    assert!(!text.contains("ATTENTION"), "{text}");
    assert_eq!(
        json(&config, &["status", "--json"])["charge_requests"]["unknown"]["total"],
        0
    );
    app.stop().await.unwrap();
}

/// The oldest-undelivered gauge is read at each scrape: it grows while the
/// sink's worker waits out a long `Retry-After` and sends nothing, which is
/// when an alert on it has to fire.
async fn the_oldest_undelivered_age_grows_at_every_scrape_while_nothing_is_sent() {
    let api = ScriptedApi::start().await;
    let receiver = Receiver::start(WEBHOOK_SECRET).await;
    receiver.set_mode(Mode::RetryAfter(3600));
    api.set("e", Reply::issuance("e", "DONE"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let settings = settings(&api, dir.path())
        .with(|s| s.http.listen = format!("127.0.0.1:{port}"))
        .webhook("patient", &receiver.url(), |_| {});
    let config = config_file(&settings, dir.path());
    common::daemon::migrate(&config);
    let added = common::cli(&config, &["add", "e"]);
    assert!(added.status.success(), "{added:?}");
    let daemon = common::Daemon::start(&config);
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let oldest = |text: &str| {
        sample(
            text,
            "issuance_watcher_oldest_undelivered_seconds",
            &["sink=\"patient\""],
        )
    };
    eventually("the 429 answered", || async {
        !receiver.received().is_empty()
    })
    .await;
    let text = until(&metrics, "an undelivered event's age", |t| {
        oldest(t).is_some_and(|age| age > 0.0)
    })
    .await;
    let first = oldest(&text).unwrap();
    assert_eq!(
        sample(
            &text,
            "issuance_watcher_deliveries_pending",
            &["sink=\"patient\""]
        ),
        Some(1.0),
        "{text}"
    );
    until(&metrics, "the age to grow by 2 s more", |t| {
        oldest(t).is_some_and(|age| age >= first + 2.0)
    })
    .await;
    assert_eq!(
        receiver.received().len(),
        1,
        "the worker waits out its hour"
    );
    daemon.stop().await;
}

on_both_engines!(
    events_json_prints_null_for_the_issuance_of_an_event_about_none(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    redeliver_schedules_every_seq_it_can_balance_low_included_and_names_the_others(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    failed_says_what_each_delivery_waits_for_and_a_removed_sinks_can_be_discarded(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    status_puts_a_failing_sink_and_unknown_charges_first_until_they_are_resolved(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    the_oldest_undelivered_age_grows_at_every_scrape_while_nothing_is_sent(
        flavor = "multi_thread",
        worker_threads = 2
    ),
);
