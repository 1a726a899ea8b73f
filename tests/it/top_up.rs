//! The top-up rule end to end (issue 30), over real HTTP: the daemon (the
//! `issuance-watcher` binary) polls the simulator's balance, which the test
//! spends through `POST /_sim/spend`; the simulator keeps charges READY until
//! the test pays (DONE) or expires (CANCELLED) them, and allows one READY
//! charge per account, as Bunjang does. On both engines: the guards live in
//! the database.

use crate::common;

use std::time::Duration;

use bunjang_sim::{FaultConfig, FaultRule, SimHandle};
use common::charging::{Setup, charge_sim, posts, setup_with};
use common::daemon::{Daemon, Spawn};
use common::db::Db;
use common::engine::on_both_engines;
use common::eventually;
use issuance_watcher::settings::{Settings, TopUpSettings};

const BELOW: i64 = 500_000;
const TO: i64 = 3_000_000;

/// The rule under test: below 500,000 back to 3,000,000 in steps of 10,000,
/// the balance polled every second.
fn rule(max_per_day: i64) -> impl FnOnce(&mut Settings) {
    move |s| {
        s.balance.interval = Some(Duration::from_secs(1));
        s.top_up = TopUpSettings {
            below: BELOW,
            to: TO,
            step: 10_000,
            max_per_day,
            max_per_month: 20_000_000,
        };
    }
}

/// Spends points over the simulator's control endpoint until the balance is
/// `target` (as orders would).
async fn spend_to(sim: &SimHandle, target: i64) {
    let amount = sim.balance().0 - target;
    let answer = reqwest::Client::new()
        .post(format!("{}/_sim/spend", sim.base_url()))
        .header("content-type", "application/json")
        .body(format!(r#"{{"amount":{amount}}}"#))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{answer:?}");
    let body: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(body["balance"], target);
}

/// Top-up requests: (id, amount, state, issuance id).
async fn top_ups(db: &Db) -> Vec<(i64, i64, String, Option<String>)> {
    db.rows(
        "SELECT CAST(id AS TEXT), CAST(amount AS TEXT), state, issuance_id
         FROM charge_requests WHERE source = 'top_up' ORDER BY id",
        &[],
    )
    .await
    .into_iter()
    .map(|r| {
        let n = |i: usize| r[i].as_deref().unwrap().parse::<i64>().unwrap();
        (n(0), n(1), r[2].clone().unwrap(), r[3].clone())
    })
    .collect()
}

/// Waits until there are `n` top-up requests and the last is `created` and
/// its issuance READY in the database; returns its issuance id.
async fn nth_ready(db: &Db, n: usize) -> String {
    eventually(&format!("top-up request {n} created and READY"), || async {
        let rows = top_ups(db).await;
        let Some(issuance) = rows.get(n - 1).and_then(|r| r.3.clone()) else {
            return false;
        };
        rows.len() == n && status(db, &issuance).await.as_deref() == Some("READY")
    })
    .await;
    top_ups(db).await[n - 1].3.clone().unwrap()
}

async fn status(db: &Db, id: &str) -> Option<String> {
    db.rows("SELECT status FROM issuances WHERE id = $1", &[id])
        .await
        .first()
        .and_then(|r| r[0].clone())
}

/// Settles `id` at the simulator and waits until the daemon has seen it.
async fn settle(sim: &SimHandle, db: &Db, id: &str, to: &str) {
    sim.force(id, to).unwrap();
    eventually(&format!("{id} seen {to}"), || async {
        status(db, id).await.as_deref() == Some(to)
    })
    .await;
}

/// Lets `polls` more balance polls happen.
async fn balance_polls(db: &Db, polls: i64) {
    let count = async || db.number("SELECT count(*) FROM balance_history").await;
    let target = count().await + polls;
    eventually("more balance polls", || async { count().await >= target }).await;
}

/// `top-up --json`.
fn state(s: &Setup) -> serde_json::Value {
    let out = common::cli(&s.config, &["top-up", "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn start(sim: &SimHandle, edit: impl FnOnce(&mut Settings)) -> (Setup, Db, Daemon) {
    sim.set_balance(TO, None);
    let s = setup_with(&sim.base_url(), edit);
    let db = s.db().await;
    let daemon = Spawn::new(&s.config).spawn();
    (s, db, daemon)
}

#[test]
fn check_config_says_what_the_rule_will_do_and_refuses_it_without_a_balance_poll() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup_with("http://127.0.0.1:9", rule(2));
    let out = common::cli(&s.config, &["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("# Top-up: when a balance polled every 1s is below 500000 KRW, ask for one charge that brings it back to 3000000 KRW"),
        "{text}"
    );
    let config = common::charging::config_file("http://127.0.0.1:9", dir.path(), |s| {
        rule(2)(s);
        s.balance.interval = None;
    });
    let out = common::cli(&config, &["check-config"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("top_up.below") && text.contains("needs balance.interval"),
        "{text}"
    );
}

/// Drained below `below`: exactly one charge, of `to - balance` rounded up
/// to `step`, announced with its virtual account; paid: the balance is back
/// above and nothing more is asked; drained again: the day's second; a third
/// dip that day: nothing (max_per_day = 2), and the rule says why.
async fn a_drained_balance_asks_once_paid_asks_nothing_and_the_day_cap_holds() {
    let sim = charge_sim().await;
    let (s, db, daemon) = start(&sim, rule(2)).await;
    balance_polls(&db, 2).await;
    assert!(
        top_ups(&db).await.is_empty(),
        "nothing while the balance is high"
    );

    spend_to(&sim, 123_456).await;
    let first = nth_ready(&db, 1).await;
    assert_eq!(
        top_ups(&db).await[0].1,
        2_880_000,
        "3,000,000 - 123,456 rounded up"
    );
    let created = db
        .rows(
            "SELECT CAST(data AS TEXT) FROM events WHERE type = 'charge.created' ORDER BY seq",
            &[],
        )
        .await;
    assert_eq!(created.len(), 1, "{created:?}");
    let data: serde_json::Value = serde_json::from_str(created[0][0].as_deref().unwrap()).unwrap();
    assert_eq!(data["amount"], 2_880_000, "{data}");
    assert_eq!(data["issuance_id"], first.as_str(), "{data}");
    // The account is prepared while the charge is WAITED: the payer gets it
    // with the charge's move to READY (and the due_soon ladder after it).
    let ready = db
        .rows(
            "SELECT CAST(data AS TEXT) FROM events
             WHERE type = 'issuance.status_changed' AND issuance_id = $1 ORDER BY seq DESC",
            &[&first],
        )
        .await;
    let ready: serde_json::Value = serde_json::from_str(ready[0][0].as_deref().unwrap()).unwrap();
    assert_eq!(ready["to_status"], "READY", "{ready}");
    for field in ["bank_name", "account_number", "holder_name", "due_at"] {
        assert!(
            ready["vbank"][field].is_string(),
            "{field} missing: {ready}"
        );
    }
    balance_polls(&db, 3).await;
    assert_eq!(
        posts(&sim),
        1,
        "still low, but a charge is READY: nothing more"
    );

    settle(&sim, &db, &first, "DONE").await;
    balance_polls(&db, 3).await;
    assert_eq!(sim.balance().0, 123_456 + 2_880_000);
    assert_eq!(
        posts(&sim),
        1,
        "paid: the balance is back above, no second charge"
    );

    spend_to(&sim, 0).await;
    let second = nth_ready(&db, 2).await;
    assert_eq!(top_ups(&db).await[1].1, 3_000_000);
    settle(&sim, &db, &second, "DONE").await;
    spend_to(&sim, 10_000).await;
    balance_polls(&db, 4).await;
    assert_eq!(posts(&sim), 2, "max_per_day = 2: no third charge today");
    let state = state(&s);
    assert_eq!(state["rule"], "on", "{state}");
    assert_eq!(state["state"]["day_count"], 2, "{state}");
    let last = state["state"]["last_decision"].as_str().unwrap();
    assert!(last.contains("max_per_day is 2"), "{last}");
    daemon.stop().await;
}

/// A charge that expires unpaid (CANCELLED) is followed by one new one while
/// the balance is still low, and no more that day, whatever the day's cap.
async fn an_unpaid_expiry_is_followed_by_at_most_one_charge_that_day() {
    let sim = charge_sim().await;
    let (s, db, daemon) = start(&sim, rule(10)).await;
    spend_to(&sim, 100_000).await;
    let first = nth_ready(&db, 1).await;
    settle(&sim, &db, &first, "CANCELLED").await;
    let second = nth_ready(&db, 2).await;
    settle(&sim, &db, &second, "CANCELLED").await;
    balance_polls(&db, 4).await;
    assert_eq!(posts(&sim), 2, "{:?}", top_ups(&db).await);
    let state = state(&s);
    assert_eq!(state["state"]["expiry_retry_spent"], true, "{state}");
    let last = state["state"]["last_decision"].as_str().unwrap();
    assert!(last.contains("expired unpaid"), "{last}");
    daemon.stop().await;
}

/// A top-up charge of unknown outcome (the simulator creates it, then drops
/// the connection) suspends the rule: a `top_up.suspended` event, a log
/// line, `/healthz` unhealthy saying so, and nothing asked until a person
/// resolves the request and runs `top-up resume`.
async fn an_unknown_charge_suspends_the_rule_until_a_person_resumes_it() {
    let sim = charge_sim().await;
    sim.set_faults(FaultConfig {
        created_then_drop: FaultRule::always(),
        ..FaultConfig::default()
    });
    let port = common::metrics::free_port();
    let (s, db, daemon) = start(&sim, |s| {
        rule(5)(s);
        s.http.listen = format!("127.0.0.1:{port}");
    })
    .await;
    spend_to(&sim, 0).await;
    eventually("the top-up request unknown", || async {
        top_ups(&db).await.first().map(|r| r.2.as_str()) == Some("unknown")
    })
    .await;
    sim.set_faults(FaultConfig::default());
    let events = db
        .rows(
            "SELECT CAST(data AS TEXT) FROM events WHERE type = 'top_up.suspended'",
            &[],
        )
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    let data: serde_json::Value = serde_json::from_str(events[0][0].as_deref().unwrap()).unwrap();
    common::schema::check_row(
        "top_up.suspended",
        data["suspended_at"].as_str().unwrap(),
        &data,
    )
    .unwrap();
    assert!(
        data["reason"].as_str().unwrap().contains("unknown outcome"),
        "{data}"
    );
    let health = format!("http://127.0.0.1:{port}/healthz");
    common::metrics::until(&health, "/healthz to say the rule is suspended", |t| {
        t.contains("top-up rule is suspended")
    })
    .await;
    balance_polls(&db, 3).await;
    assert_eq!(posts(&sim), 1, "suspended: nothing more asked");
    assert_eq!(state(&s)["rule"], "suspended");
    let status = common::cli(&s.config, &["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("the top-up rule is SUSPENDED since"),
        "{status}"
    );

    // Resumed while the unknown request is unresolved: still nothing.
    let id = top_ups(&db).await[0].0.to_string();
    assert!(
        common::cli(&s.config, &["top-up", "resume"])
            .status
            .success()
    );
    balance_polls(&db, 3).await;
    assert_eq!(posts(&sim), 1, "an unresolved unknown request still blocks");
    // Resolved (the console shows the charge: here it is cancelled) and
    // resumed: asked again.
    let truth = sim.ground_truth();
    let charge = &truth
        .first()
        .expect("the dropped charge exists at the simulator")
        .issuance_id;
    sim.force(charge, "CANCELLED").unwrap();
    let out = common::cli(&s.config, &["charges", "resolve", &id, "--none"]);
    assert!(out.status.success(), "{out:?}");
    nth_ready(&db, 2).await;
    assert!(daemon.log().contains("top-up rule SUSPENDED"));
    daemon.stop().await;
}

/// A run of dips for 20 s with `daemons` daemons on one database, each
/// killed (-9) and restarted at random moments if `kill`: the test spends the
/// balance below `below` whenever it is above, and pays each READY charge.
/// Whatever happened, never two charges were open (no top-up request was
/// refused by the API, whose one READY charge per account would refuse the
/// second, nor refused here as one was already open: each was inserted only
/// when nothing was), and the day's cap held (max_per_day = 3, reached in
/// the run's 20 s when nothing goes wrong).
async fn storm(daemons: usize, kill: bool) {
    let sim = charge_sim().await;
    let (s, db, first) = start(&sim, rule(3)).await;
    let spawn = |n: usize, life: usize| {
        Spawn::new(&s.config)
            .log(&s.dir.path().join(format!("daemon-{n}-{life}.log")))
            .spawn()
    };
    let mut running = vec![first];
    running.extend((1..daemons).map(|n| spawn(n, 0)));
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("storm seed {seed}");
    let mut random = move |below: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % below
    };
    let (mut kills, mut lives) = (0, 1);
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < end {
        if sim.balance().0 >= BELOW {
            spend_to(&sim, random(400_000) as i64).await;
        }
        for row in db
            .rows("SELECT id FROM issuances WHERE status = 'READY'", &[])
            .await
        {
            if random(3) == 0 {
                let _ = sim.force(row[0].as_deref().unwrap(), "DONE");
            }
        }
        if kill && random(12) == 0 {
            let victim = random(running.len() as u64) as usize;
            running[victim].kill9();
            kills += 1;
            running[victim] = spawn(victim, lives);
            lives += 1;
        }
        let rows = top_ups(&db).await;
        let bad: Vec<_> = rows
            .iter()
            .filter(|r| r.2 == "refused" || r.2 == "rejected")
            .collect();
        assert!(
            bad.is_empty(),
            "a second charge while one was open: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let rows = top_ups(&db).await;
    assert!(posts(&sim) <= 3, "max_per_day passed: {rows:?}");
    assert!(
        posts(&sim) >= 2,
        "the run asked for too little to test: {rows:?}"
    );
    assert!(!kill || kills >= 3, "only {kills} kills");
    eprintln!("{kills} kills, {} posts, requests {rows:?}", posts(&sim));
    for daemon in running {
        daemon.stop().await;
    }
}

async fn kill_9_during_a_run_of_dips_never_opens_two_charges_nor_passes_a_cap() {
    storm(1, true).await;
}

async fn two_daemons_on_one_database_never_open_two_charges_nor_pass_a_cap() {
    storm(2, false).await;
}

/// Several daemons (store handles of their own) decide at the same instant
/// that the balance is low and ask together: the database inserts one
/// request, and after `max_per_day` rounds none at all.
async fn simultaneous_asks_insert_one_request_and_never_pass_the_day_cap() {
    use issuance_watcher::store::{Access, Store, TopUpLimits};
    let dir = tempfile::tempdir().unwrap();
    let settings =
        common::TestSettings::new("http://127.0.0.1:9", &dir.path().join("watcher.db")).build();
    let first = Store::open_migrated(&settings.database).await.unwrap();
    let mut stores = vec![first];
    for _ in 1..4 {
        stores.push(
            Store::open_for(&settings.database, Access::Write)
                .await
                .unwrap(),
        );
    }
    let db = Db::connect(&settings.database).await;
    let now = chrono::Utc::now();
    let limits = TopUpLimits {
        day_start: now - chrono::Duration::hours(1),
        month_start: now - chrono::Duration::days(1),
        max_per_day: 3,
        max_per_month: 100_000_000,
    };
    let long_ago = now - chrono::Duration::days(1);
    for round in 0..5 {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(stores.len()));
        let mut tasks = tokio::task::JoinSet::new();
        for store in &stores {
            let (barrier, store) = (barrier.clone(), store.clone());
            tasks.spawn(async move {
                barrier.wait().await;
                store
                    .ask_top_up(1_000_000, chrono::Utc::now(), limits, long_ago)
                    .await
            });
        }
        let answers: Vec<_> = tasks.join_all().await;
        let inserted = answers.iter().filter(|a| matches!(a, Ok(Some(_)))).count();
        assert!(
            answers.iter().all(Result::is_ok),
            "round {round}: {answers:?}"
        );
        assert_eq!(
            inserted,
            usize::from(round < 3),
            "round {round}: {answers:?}"
        );
        // The request was sent and its charge paid: nothing open any more.
        db.exec(
            "UPDATE charge_requests SET state = 'created' WHERE state = 'pending'",
            &[],
        )
        .await;
    }
    assert_eq!(top_ups(&db).await.len(), 3);
}

/// Two top-up requests refused in a row suspend the rule, once (one event);
/// a created one in between starts the count again; a resume clears it.
async fn two_refusals_in_a_row_suspend_the_rule_and_a_created_one_between_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let settings =
        common::TestSettings::new("http://127.0.0.1:9", &dir.path().join("watcher.db")).build();
    let store = issuance_watcher::store::Store::open_migrated(&settings.database)
        .await
        .unwrap();
    let db = Db::connect(&settings.database).await;
    let suspended = async || {
        db.number("SELECT count(*) FROM top_up WHERE suspended_at IS NOT NULL")
            .await
    };
    let events = async || {
        db.number("SELECT count(*) FROM events WHERE type = 'top_up.suspended'")
            .await
    };
    // Outcomes as the sender writes them: over `sending`.
    for outcome in ["refused", "created", "refused"] {
        db.exec(
            "INSERT INTO charge_requests (amount, source, state) VALUES (10000, 'top_up', 'sending')",
            &[],
        )
        .await;
        db.exec(
            "UPDATE charge_requests SET state = $1 WHERE state = 'sending'",
            &[outcome],
        )
        .await;
    }
    assert_eq!(
        suspended().await,
        0,
        "refused, created, refused: not in a row"
    );
    db.exec(
        "INSERT INTO charge_requests (amount, source, state) VALUES (10000, 'top_up', 'sending')",
        &[],
    )
    .await;
    db.exec(
        "UPDATE charge_requests SET state = 'refused', error_code = 'LIMIT' WHERE state = 'sending'",
        &[],
    )
    .await;
    assert_eq!(suspended().await, 1);
    assert_eq!(events().await, 1);
    assert!(
        store
            .resume_top_up("cli:test", chrono::Utc::now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .resume_top_up("cli:test", chrono::Utc::now())
            .await
            .unwrap()
    );
    assert_eq!(suspended().await, 0);
    assert_eq!(db.number("SELECT refusals_in_a_row FROM top_up").await, 0);
}

on_both_engines!(
    a_drained_balance_asks_once_paid_asks_nothing_and_the_day_cap_holds(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    an_unpaid_expiry_is_followed_by_at_most_one_charge_that_day(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    an_unknown_charge_suspends_the_rule_until_a_person_resumes_it(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    kill_9_during_a_run_of_dips_never_opens_two_charges_nor_passes_a_cap(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    two_daemons_on_one_database_never_open_two_charges_nor_pass_a_cap(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    simultaneous_asks_insert_one_request_and_never_pass_the_day_cap(
        flavor = "multi_thread",
        worker_threads = 4
    ),
    two_refusals_in_a_row_suspend_the_rule_and_a_created_one_between_does_not,
);
