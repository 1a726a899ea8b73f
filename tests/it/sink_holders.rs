//! Webhooks on several hosts: daemons (child processes, each its own owner
//! id) share one database and one sink, whose receiver records every request
//! with when it arrived and when it was answered. A backlog of events of
//! several issuances is there before any daemon starts.
//!
//! - Three daemons: every event delivered, never two requests of one
//!   issuance in flight at once (one daemon sends the sink), and per issuance
//!   no event arrives before every earlier one was answered with a 2xx;
//! - the holder killed (`kill -9`) mid-backlog, twice, with a receiver that
//!   fails every fourth request: the next daemon sends on within a second or
//!   so (printed; the sink's lease is 30 s, so only the dead-holder probe
//!   explains it), repeats carry the same `webhook-id`, order holds;
//! - the holder stopped (SIGSTOP) with an attempt in flight, past its lease:
//!   another daemon takes the sink and delivers; once resumed (SIGCONT), the
//!   stopped daemon's result is not recorded (the fence), and it sends nothing more.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common;
use common::daemon::{Daemon, Spawn, migrate};
use common::db::Db;
use common::engine::on_both_engines;
use common::receiver::{Received, World};
use common::wait::wait_for;
use common::{Mode, TestSettings};
use issuance_watcher::store::Store;

/// The daemons' settings: one sink at the receiver with `lease`, written
/// to `config.toml`; the database migrated.
fn config(world: &World, lease: Duration) -> (TestSettings, PathBuf) {
    let settings = world.shop(|w| {
        w.lease = lease;
        w.concurrency = 4;
        w.backoff_first = Duration::from_millis(100);
        w.backoff_max = Duration::from_millis(300);
    });
    let path = settings.write_toml(&world.dir.path().join("config.toml"));
    migrate(&path);
    (settings, path)
}

/// A statement made at run time, for [`Db::exec`].
fn sql(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// `per` events of each of `issuances` settled issuances (`h0`, `h1`, ...),
/// interleaved, after the sink `shop` was registered: its backlog. Each
/// event's data is `{"id": issuance, "n": its rank within its issuance}`.
async fn backlog(settings: &TestSettings, issuances: usize, per: usize) -> Store {
    let store = Store::open_migrated(&settings.build().database)
        .await
        .unwrap();
    store.register_sink("shop").await.unwrap();
    let db = Db::from(&store);
    let ids: Vec<String> = (0..issuances)
        .map(|i| format!("('h{i}', 'settled')"))
        .collect();
    db.exec(
        sql(format!(
            "INSERT INTO issuances (id, watch) VALUES {}",
            ids.join(", ")
        )),
        &[],
    )
    .await;
    for n in 0..per {
        let rows: Vec<String> = (0..issuances)
            .map(|i| {
                format!(
                    "('issuance.status_changed', 'h{i}', '2026-12-06T10:00:00.000Z', '{{\"id\":\"h{i}\",\"n\":{n}}}')"
                )
            })
            .collect();
        db.exec(
            sql(format!(
                "INSERT INTO events (type, issuance_id, occurred_at, data) VALUES {}",
                rows.join(", ")
            )),
            &[],
        )
        .await;
    }
    store
}

fn spawn(config: &Path, name: &str) -> Daemon {
    Spawn::new(config)
        .log(&config.with_file_name(format!("daemon-{name}.log")))
        .rust_log("info")
        .spawn()
}

/// The issuance and rank of a request's event.
fn key(r: &Received) -> (String, u64) {
    let event = r.event();
    (
        event["data"]["id"].as_str().unwrap_or_default().to_owned(),
        event["data"]["n"].as_u64().unwrap_or(u64::MAX),
    )
}

/// How many distinct events were answered with a 2xx.
fn delivered(world: &World) -> usize {
    let mut seen: Vec<(String, u64)> = world.receiver.delivered().iter().map(key).collect();
    seen.sort();
    seen.dedup();
    seen.len()
}

/// The pid of the daemon holding the sink (from its owner id).
async fn holder_pid(store: &Store) -> Result<u32, String> {
    let holders = store.sink_holders().await.map_err(|e| e.to_string())?;
    let owner = holders
        .iter()
        .find(|h| h.sink == "shop")
        .and_then(|h| h.holder.clone())
        .ok_or("the sink is not held")?;
    store
        .daemons()
        .await
        .live
        .iter()
        .find(|d| d.owner == owner)
        .and_then(|d| d.pid)
        .ok_or_else(|| format!("holder {owner} is not a live daemon"))
}

/// What the receiver saw, checked: every event of `issuances` × `per`
/// answered with a 2xx; every repeat of an event with its first `webhook-id`;
/// per issuance, no request arriving before every earlier event was
/// answered with a 2xx, and no two requests in flight at once, except one
/// that was in flight when its daemon was killed (at one of `kills`: the
/// receiver goes on with it, its sender is gone). Returns how many requests
/// were repeats.
fn check(world: &World, issuances: usize, per: usize, kills: &[Instant]) -> usize {
    let received = world.receiver.received();
    let mut ids: HashMap<(String, u64), String> = HashMap::new();
    let mut by_issuance: BTreeMap<String, Vec<&Received>> = BTreeMap::new();
    let mut repeats = 0;
    for r in &received {
        assert!(r.verified.is_ok(), "{:?}", r.verified);
        let k = key(r);
        match ids.get(&k) {
            Some(id) => {
                repeats += 1;
                assert_eq!(
                    id,
                    &r.webhook_id(),
                    "{k:?} repeated with another webhook-id"
                );
            }
            None => {
                ids.insert(k.clone(), r.webhook_id());
            }
        }
        by_issuance.entry(k.0).or_default().push(r);
    }
    assert_eq!(
        by_issuance.len(),
        issuances,
        "every issuance's events arrived"
    );
    for (issuance, requests) in &by_issuance {
        // When each rank was first answered with a 2xx.
        let mut first_ok: BTreeMap<u64, Instant> = BTreeMap::new();
        for r in requests.iter().filter(|r| r.delivered()) {
            let at = first_ok.entry(key(r).1).or_insert(r.at);
            *at = (*at).min(r.at);
        }
        let ranks: Vec<u64> = first_ok.keys().copied().collect();
        let all: Vec<u64> = (0..per as u64).collect();
        assert_eq!(ranks, all, "{issuance}: every event delivered");
        for r in requests {
            let n = key(r).1;
            for (m, ok_at) in first_ok.range(..n) {
                assert!(
                    *ok_at <= r.arrived,
                    "{issuance}: event {n} arrived before event {m} was delivered"
                );
            }
        }
        let abandoned = |r: &Received| kills.iter().any(|k| r.arrived <= *k && *k <= r.at);
        let sent: Vec<&&Received> = requests.iter().filter(|r| !abandoned(r)).collect();
        for (i, a) in sent.iter().enumerate() {
            for b in &sent[i + 1..] {
                let apart = a.at <= b.arrived || b.at <= a.arrived;
                assert!(
                    apart,
                    "{issuance}: events {} and {} were in flight at once (sent in parallel)",
                    key(a).1,
                    key(b).1
                );
            }
        }
    }
    repeats
}

async fn three_daemons_send_one_sink_one_request_of_an_issuance_at_a_time_in_order() {
    let world = World::new().await;
    let (settings, config) = config(&world, Duration::from_secs(15));
    let (issuances, per) = (12, 10);
    let store = backlog(&settings, issuances, per).await;
    // Slow enough that parallel senders would overlap; every seventh fails.
    world.receiver.answer_with(|_, index| {
        Some(if index % 7 == 6 {
            Mode::Fail(503)
        } else {
            Mode::Slow(30)
        })
    });
    let daemons: Vec<Daemon> = ["a", "b", "c"].iter().map(|n| spawn(&config, n)).collect();
    wait_for(
        "every event to be delivered",
        Duration::from_secs(60),
        async || match delivered(&world) {
            n if n == issuances * per => Ok(()),
            n => Err(format!("{n} of {} delivered", issuances * per)),
        },
    )
    .await;
    let repeats = check(&world, issuances, per, &[]);
    println!(
        "3 daemons, {} events: {} requests, {repeats} repeats (each a retry after a 503)",
        issuances * per,
        world.receiver.received().len()
    );
    let sent_by = daemons
        .iter()
        .filter(|d| d.log().contains("holding the webhook sink"))
        .count();
    assert_eq!(sent_by, 1, "one daemon held the sink the whole time");
    // `status` says which one.
    let pid = holder_pid(&store).await.unwrap();
    let out = common::cli(&config, &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("sent by pid {pid}")), "{text}");
    for d in daemons {
        d.stop().await;
    }
    store.close().await;
}

async fn a_killed_holders_backlog_is_sent_on_by_another_daemon_within_a_second_or_two() {
    let world = World::new().await;
    // A hold that would only run out after the test: a dead holder's sink
    // must be taken because it is dead.
    let (settings, config) = config(&world, Duration::from_secs(30));
    let (issuances, per) = (10, 12);
    let total = issuances * per;
    let store = backlog(&settings, issuances, per).await;
    world.receiver.answer_with(|_, index| {
        Some(if index % 4 == 3 {
            Mode::Fail(503)
        } else {
            Mode::Slow(40)
        })
    });
    let mut daemons: Vec<Daemon> = ["a", "b", "c"].iter().map(|n| spawn(&config, n)).collect();
    let mut takeovers = Vec::new();
    let mut kills = Vec::new();
    for part in [1, 2] {
        let pid = wait_for(
            "a third more of the backlog to be delivered",
            Duration::from_secs(30),
            async || {
                let done = delivered(&world);
                if done < total * part / 3 {
                    return Err(format!("{done} of {total} delivered"));
                }
                holder_pid(&store).await
            },
        )
        .await;
        let holder = daemons
            .iter()
            .position(|d| d.pid() == pid)
            .expect("the holder is one of the daemons");
        let mut dead = daemons.remove(holder);
        let killed = Instant::now();
        dead.kill9();
        kills.push(killed);
        // Taken: another live daemon holds the sink.
        let taken = wait_for(
            "another daemon to take the sink",
            Duration::from_secs(15),
            async || match holder_pid(&store).await {
                Ok(now) if now != pid => Ok(killed.elapsed()),
                held => Err(format!("{held:?}")),
            },
        )
        .await;
        // Sent on: a request of the new holder arrived (the first one after
        // the takeover; the killed one's last bytes may still arrive late).
        let taken_at = killed + taken;
        let sent_on = wait_for(
            "the new holder to send",
            Duration::from_secs(15),
            async || {
                let received = world.receiver.received();
                match received.iter().find(|r| r.arrived > taken_at) {
                    Some(r) => Ok(r.arrived - killed),
                    None => Err(format!(
                        "nothing arrived since the takeover ({} so far)",
                        received.len()
                    )),
                }
            },
        )
        .await;
        takeovers.push((taken, sent_on));
    }
    wait_for(
        "every event to be delivered",
        Duration::from_secs(60),
        async || match delivered(&world) {
            n if n == total => Ok(()),
            n => Err(format!("{n} of {total} delivered")),
        },
    )
    .await;
    let repeats = check(&world, issuances, per, &kills);
    println!(
        "kill -9 of the holder twice, sink lease 30 s: (taken over, sent on) after {takeovers:?}; {} requests for {total} events, {repeats} repeats (same webhook-id)",
        world.receiver.received().len()
    );
    for (taken, sent_on) in &takeovers {
        assert!(
            *sent_on < Duration::from_secs(3),
            "the takeover took {taken:?}, sending on {sent_on:?} (lease 30 s): the dead holder was not detected"
        );
    }
    for d in daemons {
        d.stop().await;
    }
    store.close().await;
}

async fn a_holder_stopped_past_its_lease_records_nothing_after_another_took_the_sink() {
    let world = World::new().await;
    let lease = Duration::from_secs(2);
    let (settings, config) = config(&world, lease);
    let store = backlog(&settings, 1, 1).await;
    // The first request is answered after 3 s (A is stopped meanwhile); the
    // rest at once.
    world
        .receiver
        .answer_with(|_, index| (index == 0).then_some(Mode::Slow(3000)));
    let a = spawn(&config, "a");
    wait_for(
        "A's attempt to arrive",
        Duration::from_secs(20),
        async || match world.receiver.arrived() {
            0 => Err("nothing yet".to_owned()),
            _ => Ok(()),
        },
    )
    .await;
    a.signal("STOP");
    let stopped = Instant::now();
    let b = spawn(&config, "b");
    wait_for(
        "B to deliver the event",
        Duration::from_secs(20),
        async || match world.receiver.delivered().len() {
            n if n >= 2 => Ok(()),
            n => Err(format!("{n} delivered")),
        },
    )
    .await;
    let db = Db::from(&store);
    let logged = async || {
        db.number("SELECT count(*) FROM attempts WHERE sink = 'shop'")
            .await
    };
    wait_for(
        "B's attempt to be recorded",
        Duration::from_secs(10),
        async || match logged().await {
            1 => Ok(()),
            n => Err(format!("{n} attempts logged")),
        },
    )
    .await;
    // A was stopped past its lease, its answer waiting since; it resumes.
    assert!(stopped.elapsed() > lease);
    a.signal("CONT");
    wait_for(
        "A to handle its late answer (dropped, saying so, or recorded)",
        Duration::from_secs(10),
        async || {
            let dropped = a.log().contains("delivery attempts not recorded");
            match (dropped, logged().await) {
                (false, 1) => Err("not yet".to_owned()),
                _ => Ok(()),
            }
        },
    )
    .await;
    let log_a = a.stop().await;
    b.stop().await;
    assert_eq!(
        logged().await,
        1,
        "A's late result was recorded over B's delivery:\n{log_a}"
    );
    let failing = db
        .number("SELECT count(*) FROM sinks WHERE name = 'shop' AND failing_since IS NOT NULL")
        .await;
    assert_eq!(failing, 0);
    assert_eq!(
        world.receiver.received().len(),
        2,
        "A sent nothing once resumed"
    );
    println!(
        "A stopped {:?} (lease {lease:?}) with an attempt in flight: B delivered, A's late result dropped",
        stopped.elapsed()
    );
    store.close().await;
}

on_both_engines!(
    three_daemons_send_one_sink_one_request_of_an_issuance_at_a_time_in_order(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_killed_holders_backlog_is_sent_on_by_another_daemon_within_a_second_or_two(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_holder_stopped_past_its_lease_records_nothing_after_another_took_the_sink(
        flavor = "multi_thread",
        worker_threads = 2
    ),
);
