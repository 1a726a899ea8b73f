//! Events out, over real HTTP: the daemon polls a scripted API and delivers
//! every event of the outbox to loopback receivers that verify each signature
//! with the reference `standardwebhooks` library.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::db::Db;
use common::engine::on_both_engines;
use common::receiver::World;
use common::running::{RunningApp, number};
use common::{Mode, Receiver, Reply, ScriptedApi, TestSettings, WEBHOOK_SECRET, eventually};

fn settings(api: &ScriptedApi, dir: &tempfile::TempDir) -> TestSettings {
    TestSettings::new(&api.base_url(), &dir.path().join("watcher.db"))
}

/// The daemon's settings with one standard sink, `shop`, at `receiver`.
fn shop(api: &ScriptedApi, dir: &tempfile::TempDir, receiver: &Receiver) -> TestSettings {
    settings(api, dir).webhook("shop", &receiver.url(), |_| {})
}

/// Per issuance, the event types in the order the receiver got them first
/// (a redelivery repeats an id: only its first arrival counts for order).
fn arrivals(receiver: &Receiver) -> BTreeMap<String, Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut by_issuance: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in receiver.delivered() {
        if !seen.insert(r.webhook_id()) {
            continue;
        }
        let event = r.event();
        let id = event["data"]["id"].as_str().unwrap_or_default().to_owned();
        let mut what = event["type"].as_str().unwrap_or_default().to_owned();
        if let Some(to) = event["data"]["to_status"].as_str() {
            what = format!("{what} {to}");
        }
        if let Some(lead) = event["data"]["lead"].as_str() {
            what = format!("{what} {lead}");
        }
        by_issuance.entry(id).or_default().push(what);
    }
    by_issuance
}

/// How many distinct events (by `webhook-id`) the receiver has accepted.
fn distinct_delivered(receiver: &Receiver) -> usize {
    let ids: std::collections::HashSet<String> = receiver
        .delivered()
        .iter()
        .map(|r| r.webhook_id())
        .collect();
    ids.len()
}

/// Every one of `ids` arrived as WAITED then DONE, in that order.
fn each_waited_then_done(receiver: &Receiver, ids: &[String]) {
    let per_issuance = arrivals(receiver);
    for id in ids {
        assert_eq!(
            per_issuance[id],
            [
                "issuance.status_changed WAITED",
                "issuance.status_changed DONE"
            ]
        );
    }
}

fn all_verified(receiver: &Receiver) {
    for r in receiver.received() {
        assert_eq!(r.verified, Ok(()), "{:?}", String::from_utf8_lossy(&r.body));
    }
}

async fn every_transition_and_flag_of_a_lifecycle_arrives_verified_and_in_order() {
    let World { api, receiver, dir } = World::new().await;
    api.script(
        "a",
        vec![
            Reply::issuance("a", "WAITED"),
            Reply::ready_due_in("a", "READY", chrono::Duration::seconds(4)),
        ],
    );
    api.script(
        "b",
        vec![
            Reply::issuance("b", "WAITED"),
            Reply::issuance("b", "CANCELLED"),
        ],
    );
    // c is never found: its watch ends after the grace period.
    let config = settings(&api, &dir)
        .with(|s| {
            s.flags.due_soon_lead =
                toml::from_str::<toml::Value>(r#"x = ["1h", "2s"]"#).unwrap()["x"]
                    .clone()
                    .try_into()
                    .unwrap();
        })
        .webhook("shop", &receiver.url(), |_| {});
    let app = RunningApp::start(config.build()).await;
    app.insert(&["a", "b", "c"]).await;
    eventually("a to be overdue", || async {
        arrivals(&receiver)
            .get("a")
            .is_some_and(|a| a.iter().any(|t| t == "issuance.overdue"))
    })
    .await;
    api.set("a", Reply::issuance("a", "DONE"));
    let expected: BTreeMap<String, Vec<String>> = [
        (
            "a",
            vec![
                "issuance.status_changed WAITED",
                "issuance.status_changed READY",
                "issuance.due_soon 1h",
                "issuance.due_soon 2s",
                "issuance.overdue",
                "issuance.status_changed DONE",
            ],
        ),
        (
            "b",
            vec![
                "issuance.status_changed WAITED",
                "issuance.status_changed CANCELLED",
            ],
        ),
        ("c", vec!["issuance.watch_ended"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    eventually("every event to arrive", || async {
        arrivals(&receiver) == expected
    })
    .await;
    all_verified(&receiver);
    // What arrived is the outbox: the same ids, one delivery each when healthy.
    let events = app.events().await;
    let mut ids: Vec<String> = receiver
        .delivered()
        .iter()
        .map(|r| r.webhook_id())
        .collect();
    let mut stored: Vec<String> = events.iter().map(|e| e.1.clone()).collect();
    ids.sort();
    stored.sort();
    assert_eq!(ids, stored);
    let body = receiver.delivered()[0].event();
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
    assert_eq!(body["data"]["amount"], 10000);
    // The receiver answers before the worker records: the marks follow.
    eventually("every delivery marked delivered", || async {
        let delivered = number(
            &app.store,
            "SELECT count(*) FROM deliveries WHERE delivered_at IS NOT NULL",
        )
        .await;
        delivered as usize == events.len()
    })
    .await;
    app.stop().await.unwrap();
}

async fn a_receiver_that_was_down_gets_everything_once_it_is_back() {
    let World { api, receiver, dir } = World::new().await;
    receiver.go_away().await;
    let ids: Vec<String> = (0..10).map(|i| format!("d{i}")).collect();
    for id in &ids {
        api.script(
            id,
            vec![Reply::issuance(id, "WAITED"), Reply::issuance(id, "DONE")],
        );
    }
    let config = shop(&api, &dir, &receiver);
    let app = RunningApp::start(config.build()).await;
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.insert(&refs).await;
    eventually("20 events written", || async {
        app.events().await.len() == 20
    })
    .await;
    // Down for a while (time let pass on purpose, so that the backoff grows):
    // attempts fail (connection refused) and are recorded.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let failing = number(
        &app.store,
        "SELECT count(*) FROM deliveries WHERE attempts > 0 AND delivered_at IS NULL",
    )
    .await;
    assert!(failing >= 1, "the receiver was really tried while down");
    let back = Instant::now();
    receiver.come_back().await;
    eventually("all 20 events to arrive", || async {
        distinct_delivered(&receiver) == 20
    })
    .await;
    assert!(
        back.elapsed() < Duration::from_secs(5),
        "{:?}",
        back.elapsed()
    );
    all_verified(&receiver);
    each_waited_then_done(&receiver, &ids);
    app.stop().await.unwrap();
}

/// A 429 from a receiver is retried no sooner than its `Retry-After` asks
/// (`mode` answers it, as seconds or as an HTTP date) and soon after.
async fn a_429_with_retry_after_is_honoured(mode: Mode) {
    let World { api, receiver, dir } = World::new().await;
    receiver.set_mode(mode);
    api.set("r", Reply::issuance("r", "DONE"));
    let config = shop(&api, &dir, &receiver);
    let app = RunningApp::start(config.build()).await;
    app.insert(&["r"]).await;
    eventually("the first attempt", || async {
        !receiver.received().is_empty()
    })
    .await;
    receiver.set_mode(Mode::Ok);
    eventually("the delivery", || async {
        !receiver.delivered().is_empty()
    })
    .await;
    let received = receiver.received();
    assert_eq!(received[0].answered, Some(429));
    let waited = received[1].at - received[0].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "retried after {waited:?}"
    );
    assert!(waited < Duration::from_secs(4), "retried after {waited:?}");
    assert_eq!(received[0].webhook_id(), received[1].webhook_id());
    assert!(
        !received[0].header("webhook-timestamp").is_empty(),
        "each attempt carries its timestamp"
    );
    app.stop().await.unwrap();
}

async fn a_429_with_retry_after_in_seconds_is_honoured() {
    a_429_with_retry_after_is_honoured(Mode::RetryAfter(2)).await;
}

async fn a_429_with_retry_after_as_an_http_date_is_honoured() {
    // Whole seconds: 3 s ahead is at least 2 s ahead.
    a_429_with_retry_after_is_honoured(Mode::RetryAfterDate(3)).await;
}

async fn a_410_disables_the_sink_and_it_stays_disabled_across_a_restart() {
    let World { api, receiver, dir } = World::new().await;
    receiver.set_mode(Mode::Gone);
    for id in ["g1", "g2", "g3"] {
        api.script(
            id,
            vec![Reply::issuance(id, "WAITED"), Reply::issuance(id, "DONE")],
        );
    }
    let config = shop(&api, &dir, &receiver);
    let app = RunningApp::start(config.build()).await;
    app.insert(&["g1", "g2", "g3"]).await;
    eventually("6 events written", || async {
        app.events().await.len() == 6
    })
    .await;
    eventually("a 410", || async { !receiver.received().is_empty() }).await;
    // A window in which only the attempts already under way may end: time let
    // pass on purpose.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answered_410 = receiver.received().len();
    assert!(answered_410 <= 8, "{answered_410} requests after a 410");
    let disabled = Db::from(&app.store)
        .rows("SELECT disabled_reason FROM sinks WHERE name = 'shop'", &[])
        .await;
    assert!(
        disabled[0][0].as_ref().unwrap().contains("410"),
        "{disabled:?}"
    );
    app.stop().await.unwrap();
    receiver.set_mode(Mode::Ok);
    let app = RunningApp::start(config.build()).await;
    app.running().await;
    // A window in which nothing may be sent: time let pass on purpose.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        receiver.received().len(),
        answered_410,
        "nothing sent to a disabled sink"
    );
    // Cleared by an operator: the backlog goes out.
    Db::from(&app.store)
        .exec(
            "UPDATE sinks SET disabled_at = NULL, disabled_reason = NULL",
            &[],
        )
        .await;
    eventually("the backlog after re-enabling", || async {
        arrivals(&receiver).values().map(Vec::len).sum::<usize>() == 6
    })
    .await;
    app.stop().await.unwrap();
}

async fn a_hanging_sink_delays_neither_polling_nor_another_sink() {
    let api = ScriptedApi::start().await;
    let hanging = Receiver::start(WEBHOOK_SECRET).await;
    let healthy = Receiver::start(WEBHOOK_SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    hanging.set_mode(Mode::Hang);
    let ids: Vec<String> = (0..20).map(|i| format!("h{i}")).collect();
    for id in &ids {
        api.script(
            id,
            vec![Reply::issuance(id, "WAITED"), Reply::issuance(id, "DONE")],
        );
    }
    let config = settings(&api, &dir)
        .webhook("stuck", &hanging.url(), |w| {
            w.timeout = Duration::from_secs(30)
        })
        .webhook("shop", &healthy.url(), |_| {});
    let app = RunningApp::start(config.build()).await;
    let started = Instant::now();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.insert(&refs).await;
    eventually("every issuance settled", || async {
        number(
            &app.store,
            "SELECT count(*) FROM issuances WHERE watch = 'settled'",
        )
        .await
            == 20
    })
    .await;
    let settled_after = started.elapsed();
    eventually("the healthy sink to get all 40 events", || async {
        arrivals(&healthy).values().map(Vec::len).sum::<usize>() == 40
    })
    .await;
    let delivered_after = started.elapsed();
    assert!(
        !hanging.received().is_empty(),
        "the hanging sink was really tried"
    );
    assert!(hanging.delivered().is_empty());
    assert!(settled_after < Duration::from_secs(5), "{settled_after:?}");
    assert!(
        delivered_after < Duration::from_secs(6),
        "{delivered_after:?}"
    );
    all_verified(&healthy);
    app.stop().await.unwrap();
}

/// A Slack sink gets one unsigned sentence per event it asked for; the READY
/// one is what a payer acts on: the amount with thousands separators, the
/// bank, account, holder and deadline in KST.
async fn a_slack_sink_gets_unsigned_text_and_only_the_types_it_asked_for() {
    let World { api, receiver, dir } = World::new().await;
    let due_in = chrono::Duration::hours(5);
    let kst = |at: chrono::DateTime<chrono::Utc>| {
        (at + due_in)
            .with_timezone(&chrono_tz::Asia::Seoul)
            .format("%Y-%m-%d %H:%M:%S KST")
            .to_string()
    };
    // The deadline is made from the clock as the reply is built: one of these.
    let due_before = kst(chrono::Utc::now());
    let ready = Reply::ready_due_in("s", "READY", due_in);
    let due_after = kst(chrono::Utc::now());
    api.script(
        "s",
        vec![
            Reply::issuance("s", "WAITED"),
            ready,
            Reply::issuance("s", "DONE"),
        ],
    );
    let config = settings(&api, &dir).webhook("chat", &receiver.url(), |w| {
        w.kind = issuance_watcher::settings::SinkKind::Slack;
        w.events = vec![issuance_watcher::domain::EventType::StatusChanged];
    });
    let app = RunningApp::start(config.build()).await;
    app.insert(&["s"]).await;
    eventually("three messages", || async {
        receiver.delivered().len() == 3
    })
    .await;
    let texts: Vec<String> = receiver
        .delivered()
        .iter()
        .map(|r| r.event()["text"].as_str().unwrap().to_owned())
        .collect();
    let pay =
        "Issuance s: WAITED -> READY: transfer 10,000 KRW to 국민은행 451235741265 (번개장터) by";
    assert!(
        [format!("{pay} {due_before}"), format!("{pay} {due_after}")].contains(&texts[1]),
        "{}",
        texts[1]
    );
    assert_eq!(texts[2], "Issuance s: READY -> DONE, amount 10,000 KRW");
    assert!(
        receiver.delivered()[0]
            .header("webhook-signature")
            .is_empty()
    );
    app.stop().await.unwrap();
}

async fn kill_9_during_deliveries_loses_nothing_and_repeats_only_with_the_same_webhook_id() {
    let World { api, receiver, dir } = World::new().await;
    receiver.set_mode(Mode::Slow(100));
    let ids: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    for id in &ids {
        api.script(
            id,
            vec![Reply::issuance(id, "WAITED"), Reply::issuance(id, "DONE")],
        );
    }
    let config = settings(&api, &dir).webhook("shop", &receiver.url(), |w| w.concurrency = 2);
    let path = config.write_toml(&dir.path().join("config.toml"));
    let store = issuance_watcher::store::Store::open_migrated(&config.build().database)
        .await
        .unwrap();
    let db = Db::from(&store);
    let mut daemon = common::Daemon::start(&path);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    db.insert_ids(&refs).await;
    let mut kills = 0;
    while kills < 3 {
        // Killed during deliveries: once six more have been answered.
        let before = receiver.delivered().len();
        common::running::wait_for(
            "six more deliveries before a kill",
            Duration::from_secs(10),
            async || match receiver.delivered().len() - before {
                6.. => Ok(()),
                more => Err(format!("{more} more")),
            },
        )
        .await;
        daemon.kill9();
        kills += 1;
        daemon = common::Daemon::start(&path);
    }
    let events: Vec<Vec<Option<String>>> =
        common::running::wait_for("all 60 events written", Duration::from_secs(30), || async {
            let events = db
                .rows("SELECT id, CAST(seq AS TEXT) FROM events ORDER BY seq", &[])
                .await;
            if events.len() == 60 {
                Ok(events)
            } else {
                Err(format!("{} events", events.len()))
            }
        })
        .await;
    eventually("every event delivered", || async {
        distinct_delivered(&receiver) == 60
    })
    .await;
    let log = daemon.stop().await;
    let stored: std::collections::HashSet<&str> = events
        .iter()
        .map(|e| e[0].as_deref().expect("id is NOT NULL"))
        .collect();
    let mut bodies: std::collections::HashMap<String, Vec<u8>> = Default::default();
    for r in receiver.received() {
        assert!(
            stored.contains(r.webhook_id().as_str()),
            "an event that is not in the outbox"
        );
        assert_eq!(r.verified, Ok(()));
        // A repeat is the same event: same webhook-id, same body.
        let first = bodies
            .entry(r.webhook_id())
            .or_insert_with(|| r.body.clone());
        assert_eq!(*first, r.body);
    }
    each_waited_then_done(&receiver, &ids);
    let undelivered = number(
        &db,
        "SELECT count(*) FROM deliveries WHERE delivered_at IS NULL",
    )
    .await;
    assert_eq!(undelivered, 0);
    println!(
        "{kills} kills: {} requests for 60 events ({} repeats)",
        receiver.received().len(),
        receiver.received().len() - 60
    );
    assert!(
        !log.contains(WEBHOOK_SECRET.trim_start_matches("whsec_")),
        "{log}"
    );
}

async fn the_events_command_prints_the_outbox_lists_failures_and_redelivers() {
    let World { api, receiver, dir } = World::new().await;
    receiver.set_mode(Mode::Fail(500));
    api.script(
        "e",
        vec![Reply::issuance("e", "WAITED"), Reply::issuance("e", "DONE")],
    );
    let config = shop(&api, &dir, &receiver);
    let path = config.write_toml(&dir.path().join("config.toml"));
    let app = RunningApp::start(config.build()).await;
    app.insert(&["e"]).await;
    eventually("a failed attempt", || async {
        app.events().await.len() == 2 && !receiver.received().is_empty()
    })
    .await;
    let out = common::cli(&path, &["events", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["type"], "issuance.status_changed");
    assert_eq!(lines[1]["data"]["to_status"], "DONE");
    let first = lines[0]["seq"].as_i64().unwrap();
    let after = common::cli(&path, &["events", "--json", "--after", &first.to_string()]);
    assert_eq!(String::from_utf8_lossy(&after.stdout).lines().count(), 1);
    let failed = common::cli(&path, &["events", "--failed"]);
    let failed = String::from_utf8_lossy(&failed.stdout).into_owned();
    assert!(
        failed.contains("HTTP 500") && failed.contains("shop"),
        "{failed}"
    );

    receiver.set_mode(Mode::Ok);
    eventually("both delivered", || async {
        arrivals(&receiver).get("e").map_or(0, Vec::len) == 2
    })
    .await;
    let id = lines[0]["id"].as_str().unwrap().to_owned();
    let count = |receiver: &Receiver| {
        receiver
            .delivered()
            .iter()
            .filter(|r| r.webhook_id() == id)
            .count()
    };
    assert_eq!(count(&receiver), 1);
    let again = common::cli(&path, &["events", "redeliver", &first.to_string()]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("1 events scheduled"));
    eventually("the redelivery", || async { count(&receiver) == 2 }).await;
    let missing = common::cli(&path, &["events", "redeliver", "999"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("999"));
    let text = common::cli(&path, &["events"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("WAITED -> DONE"));
    app.stop().await.unwrap();
}

/// A receiver's redirect is never followed: the signed request goes only where
/// the sink was configured to send it. A 3xx is a failed attempt (retried),
/// and the receiver at the `Location` gets nothing, even for a 307, which
/// would repeat the POST with its body and signature.
async fn a_receivers_redirect_is_a_failed_attempt_and_its_target_gets_nothing() {
    let World { api, receiver, dir } = World::new().await;
    let elsewhere = Receiver::start(WEBHOOK_SECRET).await;
    receiver.set_mode(Mode::Redirect(307, elsewhere.addr));
    api.set("r", Reply::issuance("r", "DONE"));
    let config = shop(&api, &dir, &receiver);
    let app = RunningApp::start(config.build()).await;
    app.insert(&["r"]).await;
    // Recorded either way: as a failure, or (followed) as a delivery.
    eventually("the first attempt recorded", || async {
        number(
            &app.store,
            "SELECT count(*) FROM deliveries WHERE sink = 'shop' AND attempts > 0",
        )
        .await
            > 0
    })
    .await;
    let row = Db::from(&app.store)
        .rows(
            "SELECT CAST(last_status AS TEXT), CAST(delivered_at AS TEXT)
             FROM deliveries WHERE sink = 'shop'",
            &[],
        )
        .await;
    let [last_status, delivered] = [&row[0][0], &row[0][1]];
    assert_eq!(last_status.as_deref(), Some("307"));
    assert_eq!(*delivered, None, "a 3xx is not a delivery");
    assert!(
        elsewhere.received().is_empty(),
        "the redirect was followed: {} request(s) reached its target",
        elsewhere.received().len()
    );
    eventually("a retry, answered with the redirect again", || async {
        receiver
            .received()
            .iter()
            .filter(|r| r.answered == Some(307))
            .count()
            >= 2
    })
    .await;
    assert!(elsewhere.received().is_empty());
    app.stop().await.unwrap();
}

/// `events ping [--sink NAME]`, the real binary, on `config`: its output
/// (bounded in time, run off the runtime so the receivers keep answering).
async fn ping(config: &std::path::Path, sink: Option<&str>) -> std::process::Output {
    let mut args = vec!["events".to_owned(), "ping".to_owned()];
    if let Some(sink) = sink {
        args.extend(["--sink".to_owned(), sink.to_owned()]);
    }
    let config = config.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::daemon::cli_within(&config, &args)
    })
    .await
    .unwrap()
}

/// The one request `receiver` got, once it has: it verified with the sink's
/// secret (the reference library) and is a `webhook.test` for `sink`.
async fn the_test_message(receiver: &Receiver, sink: &str) -> common::receiver::Received {
    eventually("the test message", || async {
        !receiver.received().is_empty()
    })
    .await;
    let received = receiver.received();
    assert_eq!(received.len(), 1, "one request per ping");
    let r = received[0].clone();
    assert_eq!(r.verified, Ok(()), "{}", String::from_utf8_lossy(&r.body));
    let event = r.event();
    assert_eq!(event["type"], "webhook.test");
    assert_eq!(event["data"]["sink"], sink);
    assert!(event["timestamp"].is_string() && event["data"]["sent_at"].is_string());
    assert!(r.webhook_id().starts_with("evt_"), "{}", r.webhook_id());
    r
}

/// Whether no program has opened the database yet: SQLite's file does not
/// exist; PostgreSQL's (created empty for the test) holds no table.
async fn never_opened(database: &issuance_watcher::settings::DatabaseSettings) -> bool {
    if database.postgres().is_none() {
        return !database.path.exists();
    }
    let db = Db::connect(database).await;
    let tables = number(
        &db,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    .await;
    db.close().await;
    tables == 0
}

/// What an integrator does first: `events ping` sends a signed `webhook.test`
/// through the normal path, with no daemon and no database, and says what the
/// receiver answered and how fast; a receiver that fails makes it exit 1.
/// `--sink` picks one sink, an unknown name is refused naming the known ones,
/// and nothing is written to the outbox.
async fn events_ping_sends_a_verified_test_message_and_reports_each_receivers_answer() {
    let dir = tempfile::tempdir().unwrap();
    let shop_receiver = Receiver::start(WEBHOOK_SECRET).await;
    let ops_receiver = Receiver::start(WEBHOOK_SECRET).await;
    let settings = TestSettings::new("http://127.0.0.1:9", &dir.path().join("watcher.db"))
        .webhook("shop", &shop_receiver.url(), |_| {})
        .webhook("ops", &ops_receiver.url(), |_| {});
    let config = settings.write_toml(&dir.path().join("config.toml"));
    let database = settings.build().database;

    // No database, no daemon: both sinks get one verified test message.
    let out = ping(&config, None).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}{stderr}");
    the_test_message(&shop_receiver, "shop").await;
    the_test_message(&ops_receiver, "ops").await;
    for (name, receiver) in [("shop", &shop_receiver), ("ops", &ops_receiver)] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}: {stdout}"));
        assert!(
            line.contains(&receiver.url()) && line.contains("HTTP 204") && line.ends_with(" ms"),
            "{line}"
        );
    }
    common::assert_no_secret("ping's output", &format!("{stdout}{stderr}"));
    assert!(never_opened(&database).await, "ping created the database");

    // `--sink ops`: only ops; and with a database, nothing is written to it.
    common::daemon::migrate(&config);
    let out = ping(&config, Some("ops")).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("the second test message to ops", || async {
        ops_receiver.received().len() == 2
    })
    .await;
    assert_eq!(shop_receiver.received().len(), 1, "--sink ops reached shop");
    let ops = ops_receiver.received();
    assert_eq!(ops[1].verified, Ok(()));
    assert_ne!(
        ops[0].webhook_id(),
        ops[1].webhook_id(),
        "a fresh id each time"
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!stdout.contains("shop"), "{stdout}");
    let db = Db::connect(&database).await;
    assert_eq!(number(&db, "SELECT count(*) FROM events").await, 0);
    assert_eq!(number(&db, "SELECT count(*) FROM deliveries").await, 0);
    db.close().await;

    // A receiver answering 500: exit 1, saying which and what it answered.
    shop_receiver.set_mode(Mode::Fail(500));
    let out = ping(&config, Some("shop")).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("HTTP 500"), "{stdout}");
    assert!(
        stderr.contains("not accepted") && stderr.contains("shop"),
        "{stderr}"
    );
    eventually("the test message answered 500", || async {
        shop_receiver.received().len() == 2
    })
    .await;
    assert_eq!(shop_receiver.received()[1].answered, Some(500));

    // An unknown sink is refused, naming the configured ones; nothing is sent.
    let out = ping(&config, Some("nope")).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("\"nope\"") && stderr.contains("shop, ops"),
        "{stderr}"
    );
    assert_eq!(shop_receiver.received().len(), 2);
    assert_eq!(ops_receiver.received().len(), 2);
}

/// A Slack sink gets a `webhook.test` sentence (unsigned), and its URL, the
/// credential, is never printed.
async fn events_ping_to_a_slack_sink_sends_a_sentence_and_never_shows_its_url() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(WEBHOOK_SECRET).await;
    let config = TestSettings::new("http://127.0.0.1:9", &dir.path().join("watcher.db"))
        .webhook("chat", &receiver.url(), |w| {
            w.kind = issuance_watcher::settings::SinkKind::Slack;
        })
        .write_toml(&dir.path().join("config.toml"));
    let out = ping(&config, None).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("the Slack test message", || async {
        receiver.delivered().len() == 1
    })
    .await;
    let text = receiver.delivered()[0].event()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.starts_with("webhook.test: ") && text.contains("chat"),
        "{text}"
    );
    assert!(
        stdout.contains("[REDACTED]") && !stdout.contains(&receiver.addr.to_string()),
        "{stdout}"
    );
}

on_both_engines!(
    every_transition_and_flag_of_a_lifecycle_arrives_verified_and_in_order(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_receiver_that_was_down_gets_everything_once_it_is_back(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_429_with_retry_after_in_seconds_is_honoured(flavor = "multi_thread", worker_threads = 2),
    a_429_with_retry_after_as_an_http_date_is_honoured(flavor = "multi_thread", worker_threads = 2),
    a_410_disables_the_sink_and_it_stays_disabled_across_a_restart(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_hanging_sink_delays_neither_polling_nor_another_sink(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_slack_sink_gets_unsigned_text_and_only_the_types_it_asked_for(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    kill_9_during_deliveries_loses_nothing_and_repeats_only_with_the_same_webhook_id(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    the_events_command_prints_the_outbox_lists_failures_and_redelivers(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_receivers_redirect_is_a_failed_attempt_and_its_target_gets_nothing(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    events_ping_sends_a_verified_test_message_and_reports_each_receivers_answer(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    events_ping_to_a_slack_sink_sends_a_sentence_and_never_shows_its_url(
        flavor = "multi_thread",
        worker_threads = 2
    ),
);
