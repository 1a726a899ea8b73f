//! How a sink's worker schedules its attempts, measured from outside over
//! real HTTP with receivers that verify every signature (issue 29): a
//! `Retry-After` pauses the whole sink, one issuance's slow or failing events
//! do not hold the others back, and a backlog goes out as soon as the
//! receiver is back, also after a restart.

use crate::common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::db::Db;
use common::engine::on_both_engines;
use common::receiver::World;
use common::running::{RunningApp, number, wait_for};
use common::{Mode, Receiver};

/// Writes one `issuance.status_changed` event about `id` (an issuance not
/// watched, so the daemon writes nothing of its own about it), as the
/// triggers would.
async fn event(app: &RunningApp, id: &str, n: usize) {
    let db = Db::from(&app.store);
    db.exec(
        "INSERT INTO issuances (id, watch) VALUES ($1, 'settled') ON CONFLICT DO NOTHING",
        &[id],
    )
    .await;
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let data = serde_json::json!({ "id": id, "n": n }).to_string();
    // The time and the body as each engine stores them: text on SQLite,
    // timestamptz and jsonb on PostgreSQL.
    let insert = match db {
        Db::Sqlite(_) => {
            "INSERT INTO events (type, issuance_id, occurred_at, data)
             VALUES ('issuance.status_changed', $1, $2, $3)"
        }
        Db::Postgres(_) => {
            "INSERT INTO events (type, issuance_id, occurred_at, data)
             VALUES ('issuance.status_changed', $1, CAST($2 AS timestamptz), CAST($3 AS jsonb))"
        }
    };
    db.exec(insert, &[id, &now, &data]).await;
}

fn issuance(event: &serde_json::Value) -> String {
    event["data"]["id"].as_str().unwrap_or_default().to_owned()
}

fn distinct_delivered(receiver: &Receiver) -> usize {
    let ids: HashSet<String> = receiver
        .delivered()
        .iter()
        .map(|r| r.webhook_id())
        .collect();
    ids.len()
}

fn all_verified(receiver: &Receiver) {
    for r in receiver.received() {
        assert_eq!(r.verified, Ok(()), "{:?}", String::from_utf8_lossy(&r.body));
    }
}

async fn delivered_rows(app: &RunningApp, id: &str) -> i64 {
    let rows = Db::from(&app.store)
        .rows(
            "SELECT CAST(count(*) AS TEXT) FROM deliveries
             WHERE issuance_id = $1 AND delivered_at IS NOT NULL",
            &[id],
        )
        .await;
    rows[0][0]
        .as_deref()
        .and_then(|n| n.parse().ok())
        .expect("a count")
}

/// A 429 with `Retry-After: 3` on one request while others of the same
/// moment succeed: inside the 3 s, nothing reaches the receiver beyond the
/// attempts already in flight; right after, the flow resumes.
async fn a_retry_after_pauses_the_whole_sink_even_among_successes() {
    const CONCURRENCY: usize = 4;
    let world = World::new().await;
    // Every answer takes a moment, so attempts overlap; the 6th is a 429.
    world.receiver.answer_with(|_, index| {
        Some(if index == 5 {
            Mode::RetryAfter(3)
        } else {
            Mode::Slow(150)
        })
    });
    let config = world.shop(|s| s.concurrency = CONCURRENCY);
    let app = RunningApp::start(config.build()).await;
    app.running().await;
    for i in 0..40 {
        event(&app, &format!("i{i}"), i).await;
    }
    let receiver = &world.receiver;
    let told = wait_for("the 429", Duration::from_secs(10), async || {
        receiver
            .received()
            .into_iter()
            .find(|r| r.answered == Some(429))
            .map(|r| r.arrived)
            .ok_or_else(|| format!("{} requests, no 429 yet", receiver.received().len()))
    })
    .await;
    wait_for(
        "the flow to resume after the window",
        Duration::from_secs(8),
        async || {
            let after = receiver
                .received()
                .iter()
                .filter(|r| r.arrived > told + Duration::from_secs(3))
                .count();
            if after > 0 {
                Ok(())
            } else {
                Err("nothing after the window".into())
            }
        },
    )
    .await;
    let inside: Vec<Duration> = receiver
        .received()
        .iter()
        .filter(|r| r.arrived > told && r.arrived < told + Duration::from_millis(2900))
        .map(|r| r.arrived - told)
        .collect();
    assert!(
        inside.len() < CONCURRENCY,
        "{} requests inside the 3 s asked for (at {inside:?}); at most {} were in flight",
        inside.len(),
        CONCURRENCY - 1
    );
    let first_after = receiver
        .received()
        .iter()
        .filter(|r| r.arrived > told + Duration::from_millis(2900))
        .map(|r| r.arrived - told)
        .min()
        .unwrap();
    assert!(
        first_after < Duration::from_millis(4500),
        "resumed {first_after:?} after the 429"
    );
    wait_for(
        "all 40 delivered",
        Duration::from_secs(20),
        async || match distinct_delivered(receiver) {
            40 => Ok(()),
            n => Err(format!("{n} of 40")),
        },
    )
    .await;
    all_verified(receiver);
    app.stop().await.unwrap();
}

/// One issuance's events answered in 5 s, or failing: the other issuances'
/// events on the same sink arrive within a second of being written, and
/// each is marked delivered when its own attempt ends.
async fn one_issuance_does_not_hold_the_others(mode: Mode) {
    let world = World::new().await;
    world
        .receiver
        .answer_with(move |event, _| (issuance(event) == "stuck").then_some(mode));
    let config = world.shop(|s| s.timeout = Duration::from_secs(10));
    let app = RunningApp::start(config.build()).await;
    app.running().await;
    let receiver = &world.receiver;
    event(&app, "stuck", 0).await;
    event(&app, "stuck", 1).await;
    wait_for(
        "the stuck issuance's first attempt",
        Duration::from_secs(5),
        async || match receiver.received().is_empty() && !matches!(mode, Mode::Slow(_)) {
            true => Err("no attempt yet".into()),
            false => Ok(()),
        },
    )
    .await;
    // A failing issuance has failed a few times in a row by now.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    for i in 0..6 {
        let id = format!("ok{i}");
        let written = Instant::now();
        event(&app, &id, i).await;
        wait_for(
            &format!("{id} to arrive and be marked delivered"),
            Duration::from_secs(1),
            async || {
                let arrived = receiver
                    .delivered()
                    .iter()
                    .any(|r| issuance(&r.event()) == id);
                match (arrived, delivered_rows(&app, &id).await) {
                    (true, 1) => Ok(()),
                    (arrived, marked) => Err(format!(
                        "arrived {arrived}, marked {marked}, after {:?}",
                        written.elapsed()
                    )),
                }
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Per issuance in order: the stuck issuance's second event waits for its first.
    let stuck: Vec<i64> = receiver
        .received()
        .iter()
        .map(|r| r.event())
        .filter(|e| issuance(e) == "stuck")
        .map(|e| e["data"]["n"].as_i64().unwrap())
        .collect();
    assert!(
        stuck.iter().all(|n| *n == 0),
        "the later event waited: {stuck:?}"
    );
    all_verified(receiver);
    app.stop().await.unwrap();
}

async fn a_slow_issuance_does_not_delay_the_others_on_its_sink() {
    one_issuance_does_not_hold_the_others(Mode::Slow(5000)).await;
}

async fn a_failing_issuance_does_not_delay_the_others_on_its_sink() {
    one_issuance_does_not_hold_the_others(Mode::Fail(500)).await;
}

/// A backlog built while the receiver was down, with each delivery's own
/// retry far away (20 s): it all arrives within seconds of the receiver's
/// return — without a restart (a new event's 2xx), and after one (a probe
/// at start).
async fn a_backlog_is_flushed_when_the_receiver_is_back(restart: bool) {
    let world = World::new().await;
    let receiver = &world.receiver;
    receiver.go_away().await;
    let config = world.shop(|s| {
        s.backoff_first = Duration::from_secs(20);
        s.backoff_max = Duration::from_secs(3600);
    });
    let mut app = RunningApp::start(config.build()).await;
    app.running().await;
    for i in 0..10 {
        event(&app, &format!("b{i}"), i).await;
    }
    wait_for(
        "every delivery to fail once",
        Duration::from_secs(10),
        async || {
            let failed = number(
                &app.store,
                "SELECT count(*) FROM deliveries WHERE attempts > 0 AND delivered_at IS NULL",
            )
            .await;
            let failing = number(
                &app.store,
                "SELECT count(*) FROM sinks WHERE failing_since IS NOT NULL",
            )
            .await;
            match (failed, failing) {
                (10, 1) => Ok(()),
                other => Err(format!("(failed, failing sinks) = {other:?}")),
            }
        },
    )
    .await;
    if restart {
        app.stop().await.unwrap();
        receiver.come_back().await;
        app = RunningApp::start(config.build()).await;
    } else {
        receiver.come_back().await;
        event(&app, "fresh", 99).await;
    }
    let back = Instant::now();
    let want = if restart { 10 } else { 11 };
    wait_for(
        "the backlog",
        Duration::from_secs(4),
        async || match distinct_delivered(receiver) {
            n if n == want => Ok(()),
            n => Err(format!("{n} of {want} after {:?}", back.elapsed())),
        },
    )
    .await;
    all_verified(receiver);
    let failing = number(
        &app.store,
        "SELECT count(*) FROM sinks WHERE failing_since IS NOT NULL",
    )
    .await;
    assert_eq!(failing, 0, "the sink answers again");
    app.stop().await.unwrap();
}

async fn a_backlog_is_flushed_within_seconds_of_the_receivers_return() {
    a_backlog_is_flushed_when_the_receiver_is_back(false).await;
}

async fn a_backlog_is_flushed_within_seconds_of_the_receivers_return_after_a_restart() {
    a_backlog_is_flushed_when_the_receiver_is_back(true).await;
}

/// A sink failing for longer than its `unhealthy_after` when the daemon
/// stops is unhealthy at once after the restart (`/healthz` 503 naming it),
/// not only after its next attempt has failed again: the failing state is the
/// database's (`sinks.failing_since`), not the process's.
async fn a_sink_failing_before_a_restart_is_unhealthy_right_after_it() {
    let world = World::new().await;
    let receiver = &world.receiver;
    receiver.go_away().await;
    let port = common::metrics::free_port();
    let config = world
        .shop(|s| {
            s.unhealthy_after = Duration::from_millis(500);
            // The next attempt after the restart is far away: only the
            // recorded state can make /healthz say so at once.
            s.backoff_first = Duration::from_secs(60);
            s.backoff_max = Duration::from_secs(3600);
        })
        .with(|s| s.http.listen = format!("127.0.0.1:{port}"));
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    let app = RunningApp::start(config.build()).await;
    app.running().await;
    event(&app, "h1", 1).await;
    wait_for(
        "/healthz 503 naming the failing sink",
        Duration::from_secs(10),
        async || match common::metrics::get(&healthz).await {
            Some((503, body)) if body.contains("shop") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    app.stop().await.unwrap();
    let restarted = RunningApp::start(config.build()).await;
    restarted.running().await;
    // The first answer after the restart, with no new attempt made.
    let first = wait_for("/healthz to answer", Duration::from_secs(10), async || {
        common::metrics::get(&healthz)
            .await
            .ok_or_else(|| "no answer yet".to_owned())
    })
    .await;
    assert_eq!(first.0, 503, "{first:?}");
    assert!(first.1.contains("shop"), "{first:?}");
    assert_eq!(
        receiver.received().len(),
        0,
        "the receiver was away throughout"
    );
    restarted.stop().await.unwrap();
}

on_both_engines!(
    a_sink_failing_before_a_restart_is_unhealthy_right_after_it(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_retry_after_pauses_the_whole_sink_even_among_successes(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_slow_issuance_does_not_delay_the_others_on_its_sink(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_failing_issuance_does_not_delay_the_others_on_its_sink(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_backlog_is_flushed_within_seconds_of_the_receivers_return(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_backlog_is_flushed_within_seconds_of_the_receivers_return_after_a_restart(
        flavor = "multi_thread",
        worker_threads = 2
    ),
);
