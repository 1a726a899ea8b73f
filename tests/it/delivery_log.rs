//! The delivery log, range replays, pruning and `disable_after`, over real
//! HTTP with receivers that verify every signature: a hostile answer (control
//! characters, invalid UTF-8, 1 MiB) is kept as at most 1 KiB of sanitised
//! text and `events show` prints it escaped; `events redeliver --since`
//! sends exactly the events of its range and type to its sink (its dry run
//! counts them and sends nothing); the daemon prunes old attempts and old
//! delivered deliveries and keeps undelivered ones; a sink failing for its
//! `disable_after` is disabled once, with its `sink.disabled` event and a
//! log line, and a receiver that recovered in time is not.

use crate::common;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use common::daemon::Spawn;
use common::db::Db;
use common::engine::on_both_engines;
use common::receiver::{HOSTILE_BODY_HEAD, World};
use common::running::RunningApp;
use common::{Mode, Receiver, Reply, WEBHOOK_SECRET, eventually};

/// Runs a command on `config`: its exit success, stdout and stderr.
fn run(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = common::cli(config, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The ids the receiver accepted (one per arrival).
fn delivered_ids(receiver: &Receiver) -> Vec<String> {
    receiver
        .delivered()
        .iter()
        .map(|r| r.webhook_id())
        .collect()
}

async fn the_log_keeps_a_hostile_answer_short_and_events_show_prints_it_escaped() {
    let world = World::new().await;
    let receiver = &world.receiver;
    // The first attempt is answered 500 with a hostile body, the next ones 204.
    receiver.answer_with(|_, index| (index == 0).then_some(Mode::Hostile(500)));
    world
        .api
        .script("h1", vec![Reply::issuance("h1", "WAITED")]);
    let config = world.shop(|_| {});
    let path = config.write_toml(&world.dir.path().join("config.toml"));
    let app = RunningApp::start(config.build()).await;
    app.insert(&["h1"]).await;
    eventually("the event delivered after a hostile 500", || async {
        !receiver.delivered().is_empty()
    })
    .await;
    let db = Db::from(&app.store);
    let rows = db
        .rows(
            "SELECT CAST(http_status AS TEXT), response, CAST(duration_ms AS TEXT) FROM attempts \
             WHERE sink = 'shop' AND seq = 1 ORDER BY attempted_at",
            &[],
        )
        .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][0].as_deref(), Some("500"));
    assert_eq!(rows[1][0].as_deref(), Some("204"));
    assert_eq!(rows[1][1].as_deref(), Some(""), "a 204 has an empty body");
    let kept = rows[0][1].clone().expect("the hostile answer is kept");
    assert!(kept.len() <= 1024, "{} bytes kept", kept.len());
    assert!(kept.len() > 1000, "the first KiB, not less: {}", kept.len());
    assert!(
        kept.starts_with("ERR \u{FFFD}[2J\u{FFFD}]0;pwned\u{FFFD}\u{FFFD} \u{FFFD}\nline two\t"),
        "{kept:?}"
    );
    assert!(
        !kept
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "no control character stored: {kept:?}"
    );
    assert!(kept.ends_with('A'), "then the 1 MiB, cut");
    assert!(rows[0][2].as_deref().unwrap().parse::<u64>().is_ok());

    let (ok, out, err) = run(&path, &["events", "show", "1"]);
    assert!(ok, "events show: {err}");
    assert!(out.contains("type       issuance.status_changed"), "{out}");
    assert!(out.contains("sink shop (2 attempts)"), "{out}");
    assert!(
        out.contains("HTTP 500") && out.contains("HTTP 204"),
        "{out}"
    );
    assert!(out.contains("KST"), "times in api.timezone: {out}");
    assert!(
        out.contains("ERR \u{FFFD}[2J\u{FFFD}]0;pwned\u{FFFD}\u{FFFD} \u{FFFD}\\nline two\\t"),
        "the answer escaped on one line: {out}"
    );
    assert!(
        !out.chars().any(|c| c.is_control() && c != '\n'),
        "no raw control character printed"
    );
    assert!(
        !out.as_bytes().contains(&0x1b) && !String::from_utf8_lossy(HOSTILE_BODY_HEAD).is_empty()
    );
    let (ok, out, err) = run(&path, &["events", "show", "1", "--json"]);
    assert!(ok, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["event"]["seq"], 1);
    assert_eq!(shown["attempts"][0]["http_status"], 500);
    assert_eq!(
        shown["attempts"][0]["response"].as_str(),
        Some(kept.as_str())
    );
    let (ok, _, err) = run(&path, &["events", "show", "99"]);
    assert!(!ok && err.contains("no event with seq 99"), "{err}");
    app.stop().await.unwrap();
}

async fn a_range_replay_sends_exactly_its_events_of_its_type_to_its_sink() {
    let world = World::new().await;
    let (api, shop) = (&world.api, &world.receiver);
    let erp = Receiver::start(WEBHOOK_SECRET).await;
    for id in ["r1", "r2", "r3"] {
        api.script(id, vec![Reply::issuance(id, "WAITED")]);
    }
    let config = world.shop(|_| {}).webhook("erp", &erp.url(), |_| {});
    let path = config.write_toml(&world.dir.path().join("config.toml"));
    let app = RunningApp::start(config.build()).await;
    let both_have = |n: usize| {
        let (shop, erp) = (&shop, &erp);
        move || async move { shop.delivered().len() == n && erp.delivered().len() == n }
    };
    app.insert(&["r1"]).await;
    eventually("r1's event at both sinks", both_have(1)).await;
    let since = Utc::now();
    app.insert(&["r2"]).await;
    // An event of another type inside the range.
    app.store
        .record_balance(Utc::now(), 120_000, 0, Some(500_000))
        .await
        .unwrap();
    eventually("r2's and balance.low at both sinks", both_have(2 + 1)).await;
    let until = Utc::now();
    app.insert(&["r3"]).await;
    eventually("r3's event at both sinks", both_have(4)).await;
    let in_range: Vec<String> = shop.delivered()[1..3]
        .iter()
        .map(|r| r.webhook_id())
        .collect();
    let r2 = shop
        .delivered()
        .iter()
        .find(|r| r.event()["data"]["id"] == "r2")
        .unwrap()
        .webhook_id();
    assert!(in_range.contains(&r2));
    let (since, until) = (since.to_rfc3339(), until.to_rfc3339());
    let range = ["--since", since.as_str(), "--until", until.as_str()];
    let (shop_before, erp_before) = (shop.received().len(), erp.received().len());

    let mut args = vec!["events", "redeliver"];
    args.extend(range);
    args.extend(["--sink", "shop", "--dry-run"]);
    let (ok, out, err) = run(&path, &args);
    assert!(ok, "dry run: {err}");
    assert!(out.contains("dry run: 2 events occurred since"), "{out}");
    assert!(
        out.contains("2 to shop") && out.contains("nothing was scheduled"),
        "{out}"
    );
    let mut typed = args.clone();
    typed.extend(["--type", "issuance.status_changed"]);
    let (ok, out, err) = run(&path, &typed);
    assert!(ok, "{err}");
    assert!(
        out.contains("dry run: 1 events occurred")
            && out.contains("of type issuance.status_changed"),
        "{out}"
    );
    // A window in which a dry run must not send: time let pass on purpose.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        (shop.received().len(), erp.received().len()),
        (shop_before, erp_before)
    );

    typed.retain(|a| *a != "--dry-run");
    let (ok, out, err) = run(&path, &typed);
    assert!(ok, "replay: {err}");
    assert!(
        out.contains("1 deliveries scheduled again (1 to shop)"),
        "{out}"
    );
    eventually("the replayed event at shop", || async {
        shop.delivered().len() == 5
    })
    .await;
    assert_eq!(
        delivered_ids(shop)[4],
        r2,
        "exactly r2's status change, same webhook-id"
    );
    // A window in which nothing else may arrive: time let pass on purpose.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(shop.delivered().len(), 5, "nothing else to shop");
    assert_eq!(
        erp.received().len(),
        erp_before,
        "nothing to the other sink"
    );
    for r in shop.received().iter().chain(erp.received().iter()) {
        assert_eq!(r.verified, Ok(()));
    }

    let (ok, _, err) = run(&path, &["events", "redeliver", "--since", "yesterday"]);
    assert!(
        !ok && err.contains("--since") && err.contains("RFC 3339"),
        "{err}"
    );
    let (ok, _, err) = run(&path, &["events", "redeliver", "1", "--since", "1h"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    app.stop().await.unwrap();
}

async fn the_daemon_prunes_old_attempts_and_delivered_deliveries_and_keeps_undelivered_ones() {
    let world = World::new().await;
    let config = world.shop(|_| {});
    let db = {
        let store = issuance_watcher::store::Store::open_migrated(&config.build().database)
            .await
            .unwrap();
        Db::from(&store)
    };
    // Events 1..3; sink shop has them all (nothing for the daemon to admit):
    // 1 delivered long ago, 2 open since long ago (retried far ahead),
    // 3 given up long ago, 4 (balance.low) delivered after any cutoff (a
    // future time: one both engines take as a literal).
    for statement in [
        "INSERT INTO issuances (id, watch) VALUES ('p1', 'not_found')",
        "INSERT INTO transitions (issuance_id, to_status, observed_at) VALUES ('p1', 'WAITED', '2026-11-01T00:00:00.000Z')",
        "INSERT INTO transitions (issuance_id, from_status, to_status, observed_at) VALUES ('p1', 'WAITED', 'READY', '2026-11-01T00:01:00.000Z')",
        "INSERT INTO transitions (issuance_id, from_status, to_status, observed_at) VALUES ('p1', 'READY', 'DONE', '2026-11-01T00:02:00.000Z')",
        "INSERT INTO events (type, issuance_id, occurred_at, data) VALUES ('balance.low', NULL, '2026-11-01T00:03:00.000Z', '{}')",
        "INSERT INTO sinks (name, admitted_seq) VALUES ('shop', 4)",
        "INSERT INTO deliveries (sink, seq, issuance_id, created_at, attempts, next_attempt_at, delivered_at)
             VALUES ('shop', 1, 'p1', '2026-11-01T00:00:00.000Z', 1, '2026-11-01T00:00:00.000Z', '2026-11-01T00:00:01.000Z')",
        "INSERT INTO deliveries (sink, seq, issuance_id, created_at, attempts, next_attempt_at)
             VALUES ('shop', 2, 'p1', '2026-11-01T00:00:00.000Z', 1, '2999-01-01T00:00:00.000Z')",
        "INSERT INTO deliveries (sink, seq, issuance_id, created_at, attempts, next_attempt_at, failed_at)
             VALUES ('shop', 3, 'p1', '2026-11-01T00:00:00.000Z', 1, '2026-11-01T00:00:00.000Z', '2026-11-04T00:00:00.000Z')",
        "INSERT INTO attempts (sink, seq, attempted_at, duration_ms, http_status, response)
             VALUES ('shop', 1, '2026-11-01T00:00:01.000Z', 5, 204, ''),
                    ('shop', 2, '2026-11-01T00:00:01.000Z', 5, 503, 'busy'),
                    ('shop', 3, '2026-11-01T00:00:01.000Z', 5, 503, 'busy')",
        "INSERT INTO deliveries (sink, seq, issuance_id, created_at, attempts, next_attempt_at, delivered_at)
             VALUES ('shop', 4, '', '2099-01-01T00:00:00.000Z', 1, '2099-01-01T00:00:00.000Z', '2099-01-01T00:00:00.000Z')",
        "INSERT INTO attempts (sink, seq, attempted_at, duration_ms, http_status, response)
             VALUES ('shop', 4, '2099-01-01T00:00:00.000Z', 5, 204, '')",
    ] {
        db.exec(statement, &[]).await;
    }
    let app = RunningApp::start(config.build()).await;
    eventually("the old delivered delivery pruned", || async {
        db.number("SELECT count(*) FROM deliveries WHERE seq = 1")
            .await
            == 0
    })
    .await;
    let kept = db
        .rows("SELECT CAST(seq AS TEXT) FROM deliveries ORDER BY seq", &[])
        .await;
    assert_eq!(
        kept,
        [
            [Some("2".to_owned())],
            [Some("3".to_owned())],
            [Some("4".to_owned())]
        ],
        "undelivered (open, given up) and recently delivered kept"
    );
    let attempts = db
        .rows("SELECT CAST(seq AS TEXT) FROM attempts ORDER BY seq", &[])
        .await;
    assert_eq!(attempts, [[Some("4".to_owned())]], "old attempts pruned");
    app.stop().await.unwrap();
}

async fn a_sink_failing_for_disable_after_is_disabled_once_and_one_that_recovered_is_not() {
    let world = World::new().await;
    let api = &world.api;
    let dead = &world.receiver;
    dead.set_mode(Mode::Fail(503));
    let flaky = Receiver::start(WEBHOOK_SECRET).await;
    flaky.set_mode(Mode::Fail(503));
    let ops = Receiver::start(WEBHOOK_SECRET).await;
    for id in ["d1", "d2", "d3"] {
        api.script(id, vec![Reply::issuance(id, "WAITED")]);
    }
    let disable_after = |w: &mut issuance_watcher::settings::WebhookSettings| {
        w.disable_after = Some(Duration::from_secs(2));
    };
    let config = world
        .shop(disable_after)
        .webhook("flaky", &flaky.url(), disable_after)
        .webhook("ops", &ops.url(), |w| {
            w.events = vec![issuance_watcher::domain::EventType::SinkDisabled];
        });
    let path = config.write_toml(&world.dir.path().join("config.toml"));
    common::daemon::migrate(&path);
    let daemon = Spawn::new(&path).spawn();
    let (ok, _, err) = run(&path, &["add", "d1"]);
    assert!(ok, "{err}");
    let db = {
        let store = issuance_watcher::store::Store::open_migrated(&config.build().database)
            .await
            .unwrap();
        Db::from(&store)
    };
    let started = std::time::Instant::now();
    eventually("both failing sinks tried", || async {
        !dead.received().is_empty() && !flaky.received().is_empty()
    })
    .await;
    // flaky answers again before its deadline...
    flaky.set_mode(Mode::Ok);
    eventually("flaky delivers", || async { !flaky.delivered().is_empty() }).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // ... and fails again, with attempts after the deadline counted from its
    // first failure (time let pass on purpose, to be past it).
    tokio::time::sleep(Duration::from_millis(2200).saturating_sub(started.elapsed())).await;
    flaky.set_mode(Mode::Fail(503));
    let second = std::time::Instant::now();
    let before = flaky.received().len();
    let (ok, _, err) = run(&path, &["add", "d2"]);
    assert!(ok, "{err}");
    eventually("flaky failing again", || async {
        flaky.received().len() > before
    })
    .await;
    eventually("dead disabled", || async {
        db.number("SELECT count(*) FROM sinks WHERE name = 'shop' AND disabled_at IS NOT NULL")
            .await
            == 1
    })
    .await;
    let reason = db
        .rows("SELECT disabled_reason FROM sinks WHERE name = 'shop'", &[])
        .await;
    let reason = reason[0][0].clone().unwrap();
    assert!(reason.contains("disable_after (2s)"), "{reason}");
    eventually("ops told", || async { !ops.delivered().is_empty() }).await;
    let told = ops.delivered()[0].event();
    assert_eq!(told["type"], "sink.disabled");
    assert_eq!(told["data"]["sink"], "shop");
    assert_eq!(told["data"]["reason"].as_str(), Some(reason.as_str()));
    let sent_to_dead = dead.received().len();
    // A window in which nothing more may happen: time let pass on purpose.
    // flaky's second stretch stays shorter than disable_after.
    tokio::time::sleep(Duration::from_millis(1300).saturating_sub(second.elapsed())).await;
    flaky.set_mode(Mode::Ok);
    eventually("flaky delivers again", || async {
        flaky.delivered().len() >= 2
    })
    .await;
    assert_eq!(
        dead.received().len(),
        sent_to_dead,
        "nothing more to a disabled sink"
    );
    assert_eq!(
        ops.received().len(),
        1,
        "one sink.disabled event: {:?}",
        ops.received().len()
    );
    assert_eq!(
        db.number("SELECT count(*) FROM events WHERE type = 'sink.disabled'")
            .await,
        1,
        "once"
    );
    assert_eq!(
        db.number("SELECT count(*) FROM sinks WHERE name = 'flaky' AND disabled_at IS NOT NULL")
            .await,
        0,
        "flaky recovered before its deadline: not disabled"
    );
    for r in ops.received() {
        assert_eq!(r.verified, Ok(()));
    }
    let log = daemon.stop().await;
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("webhook sink disabled") && l.contains("disable_after"))
        .collect();
    assert_eq!(lines.len(), 1, "one log line: {log}");
    assert!(
        lines[0].contains("shop") && lines[0].contains("ERROR"),
        "{}",
        lines[0]
    );
}

on_both_engines!(
    the_log_keeps_a_hostile_answer_short_and_events_show_prints_it_escaped(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_range_replay_sends_exactly_its_events_of_its_type_to_its_sink(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    the_daemon_prunes_old_attempts_and_delivered_deliveries_and_keeps_undelivered_ones(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_sink_failing_for_disable_after_is_disabled_once_and_one_that_recovered_is_not(
        flavor = "multi_thread",
        worker_threads = 2
    ),
);
