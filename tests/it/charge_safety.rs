//! Loose ends that cost money, closed (issue 25), over real HTTP with the
//! `issuance-watcher` binary: a charge of unknown outcome blocks every new
//! one until a person resolves it; requests go first come, first served; a
//! charge POST answered 5xx is sent once; `cancel` takes the row's lease
//! from a poll in flight; a charge under an id stored as settled is never
//! merged into it.

use crate::common;

use bunjang_sim::{FaultConfig, FaultRule, ID_BASE};
use chrono::Utc;
use common::charging::{
    ScriptedCharge, charge_sim, charge_sim_with, config_file, posts, requests, run, setup,
    setup_with, text,
};
use common::daemon::Spawn;
use common::db::Db;
use common::engine::{on_a_fresh_database, on_both_engines};
use common::running::transitions;
use common::{eventually, row};
use issuance_watcher::domain::{Decision, Observation, Status};
use issuance_watcher::store::{Claimed, PollRecord, RecordKind, Store};

fn assert_says(output: &str, said: &[&str]) {
    for s in said {
        assert!(output.contains(s), "{s:?} not in:\n{output}");
    }
}

/// `(force, forced_past, resolution, resolved_by, resolved_at set)` of request `id`.
async fn audit(db: &Db, id: i64) -> (i64, Option<String>, Option<String>, Option<String>, bool) {
    let mut row = db
        .rows(
            "SELECT CAST(force AS TEXT), forced_past, resolution, resolved_by,
                    CASE WHEN resolved_at IS NULL THEN 'no' ELSE 'yes' END
             FROM charge_requests WHERE id = CAST($1 AS BIGINT)",
            &[&id.to_string()],
        )
        .await
        .pop()
        .unwrap_or_else(|| panic!("no charge request {id}"));
    let resolved = row.pop().flatten().as_deref() == Some("yes");
    let by = row.pop().flatten();
    let resolution = row.pop().flatten();
    let past = row.pop().flatten();
    let force = row.pop().flatten().and_then(|f| f.parse().ok()).unwrap();
    (force, past, resolution, by, resolved)
}

/// Whether every request has come to an outcome.
async fn all_finished(db: &Db, count: usize) -> bool {
    let rows = requests(db).await;
    rows.len() == count && rows.iter().all(|r| r.2 != "pending" && r.2 != "sending")
}

async fn an_unknown_charge_blocks_every_new_one_until_a_person_resolves_it() {
    let sim = charge_sim().await;
    sim.set_faults(FaultConfig {
        created_then_drop: FaultRule::always(),
        ..FaultConfig::default()
    });
    let s = setup(&sim.base_url());
    let first = run(&s.config, &["charge", "70000"]).await;
    assert!(!first.status.success());
    assert_eq!(posts(&sim), 1);
    sim.set_faults(FaultConfig::default());
    let db = s.db().await;
    let unknown = requests(&db).await[0].0;
    assert_eq!(requests(&db).await[0].2, "unknown");

    // The same charge again from the command: refused here, naming it.
    let again = run(&s.config, &["charge", "70000"]).await;
    assert!(!again.status.success());
    assert_says(
        &text(&again.stderr),
        &[
            "LOCAL_CHARGE_UNKNOWN",
            &format!("charge request {unknown} (70000 KRW, unknown since "),
            "may have created a charge",
            "partner console",
            &format!("charges resolve {unknown} --issuance ID"),
            "--none",
        ],
    );
    assert_eq!(posts(&sim), 1, "nothing sent");

    // A row another program inserts: the daemon refuses it the same way.
    let daemon = Spawn::new(&s.config).spawn();
    db.exec("INSERT INTO charge_requests (amount) VALUES (5000)", &[])
        .await;
    eventually("the inserted request to come to an outcome", || {
        all_finished(&db, 3)
    })
    .await;
    let inserted = &requests(&db).await[2];
    assert_eq!(
        (inserted.2.as_str(), inserted.4.as_deref()),
        ("rejected", Some("LOCAL_CHARGE_UNKNOWN"))
    );
    assert_eq!(posts(&sim), 1, "nothing sent");

    // --force still sends, loudly, and the row records what it went past.
    let forced = run(&s.config, &["charge", "5000", "--force"]).await;
    assert_says(
        &text(&forced.stderr),
        &[
            "warning: FORCED",
            &format!("charge request {unknown} (70000 KRW, unknown since "),
        ],
    );
    assert_eq!(posts(&sim), 2, "the forced POST was sent");
    let (force, past, ..) = audit(&db, 4).await;
    assert_eq!(force, 1);
    assert!(
        past.as_deref()
            .is_some_and(|p| p.starts_with(&format!("charge request {unknown} (70000 KRW"))),
        "{past:?}"
    );

    // Resolved with the charge found in the partner console: linked, watched.
    let found = sim.ground_truth()[0].issuance_id.clone();
    let unknown_arg = unknown.to_string();
    let hostile = run(
        &s.config,
        &["charges", "resolve", &unknown_arg, "--issuance", ".."],
    )
    .await;
    assert!(!hostile.status.success());
    assert_says(&text(&hostile.stderr), &["refusing issuance id"]);
    let resolved = run(
        &s.config,
        &["charges", "resolve", &unknown_arg, "--issuance", &found],
    )
    .await;
    assert!(resolved.status.success(), "{}", text(&resolved.stderr));
    assert_says(&text(&resolved.stdout), &["resolved", &found]);
    let (_, _, resolution, by, at) = audit(&db, unknown).await;
    assert_eq!(resolution.as_deref(), Some("issuance"));
    assert!(
        by.as_deref().is_some_and(|b| b.starts_with("cli:")),
        "{by:?}"
    );
    assert!(at);
    assert_eq!(requests(&db).await[0].3.as_deref(), Some(found.as_str()));
    eventually("the charge found to be watched up to READY", || async {
        transitions(&db, &found).await.last().map(|t| t.1.as_str()) == Some("READY")
    })
    .await;

    // Resolving twice, or what is not unknown, is refused.
    let twice = run(&s.config, &["charges", "resolve", &unknown_arg, "--none"]).await;
    assert!(!twice.status.success());
    assert_says(&text(&twice.stderr), &["resolved already", &found]);
    let not_unknown = run(&s.config, &["charges", "resolve", "3", "--none"]).await;
    assert!(!not_unknown.status.success());
    assert_says(&text(&not_unknown.stderr), &["is rejected, not unknown"]);
    assert_eq!(audit(&db, unknown).await.2.as_deref(), Some("issuance"));

    // What stands in the way now is the charge found, open, not the request.
    let blocked = run(&s.config, &["charge", "5000"]).await;
    let stderr = text(&blocked.stderr);
    assert!(!blocked.status.success());
    assert_says(&stderr, &["LOCAL_CHARGE_OPEN", &found]);
    assert!(!stderr.contains("LOCAL_CHARGE_UNKNOWN"), "{stderr}");
    assert_eq!(posts(&sim), 2);
    daemon.stop().await;
}

/// A running daemon given two request rows inserted in one statement
/// (`amounts`, oldest first), with `charge.max_amount` at `max`: the rows once
/// both came to an outcome, the POSTs the simulator received, and the amount
/// of the charge it created.
async fn serve_two(
    amounts: (i64, i64),
    max: i64,
) -> (
    Vec<(i64, i64, String, Option<String>, Option<String>)>,
    usize,
    Option<i64>,
) {
    on_a_fresh_database(serve_two_on(amounts, max)).await
}

/// [`serve_two`] on the test's current database.
async fn serve_two_on(
    amounts: (i64, i64),
    max: i64,
) -> (
    Vec<(i64, i64, String, Option<String>, Option<String>)>,
    usize,
    Option<i64>,
) {
    let sim = charge_sim().await;
    let s = setup_with(&sim.base_url(), |settings| settings.charge.max_amount = max);
    let db = s.db().await;
    let daemon = Spawn::new(&s.config).spawn();
    db.exec(
        "INSERT INTO charge_requests (amount) VALUES (CAST($1 AS BIGINT)), (CAST($2 AS BIGINT))",
        &[&amounts.0.to_string(), &amounts.1.to_string()],
    )
    .await;
    eventually("both requests to come to an outcome", || {
        all_finished(&db, 2)
    })
    .await;
    let rows = requests(&db).await;
    let created = rows
        .iter()
        .find_map(|r| r.3.as_deref())
        .map(|id| sim.issuance(id).unwrap().amount);
    let sent = posts(&sim);
    daemon.stop().await;
    (rows, sent, created)
}

async fn requests_are_served_first_come_first_served() {
    // 100 then 200: the older goes, the newer waits its turn and is refused
    // while the first charge is open.
    let (rows, sent, created) = serve_two((100, 200), 10_000_000).await;
    assert_eq!(
        (rows[0].1, rows[0].2.as_str(), rows[1].1, rows[1].2.as_str()),
        (100, "created", 200, "rejected"),
        "{rows:?}"
    );
    assert_eq!(rows[1].4.as_deref(), Some("LOCAL_CHARGE_OPEN"));
    assert_eq!((sent, created), (1, Some(100)));

    // A valid request, then one above charge.max_amount: the valid one goes,
    // the other is rejected unsent.
    let (rows, sent, created) = serve_two((500, 5000), 1_000).await;
    assert_eq!(
        (rows[0].2.as_str(), rows[1].2.as_str(), rows[1].4.as_deref()),
        ("created", "rejected", Some("LOCAL_AMOUNT_TOO_LARGE")),
        "{rows:?}"
    );
    assert_eq!((sent, created), (1, Some(500)));
}

async fn a_charge_answered_5xx_is_sent_once_and_stays_unknown() {
    for (status, body) in [
        (500, r#"{"errorCode":"INTERNAL_ERROR","reason":"boom"}"#),
        (502, "<html><title>502 Bad Gateway</title></html>"),
        (503, ""),
    ] {
        on_a_fresh_database(async {
            let api = ScriptedCharge::start(status, body).await;
            let s = setup(&api.base_url);
            let out = run(&s.config, &["charge", "5000"]).await;
            assert!(!out.status.success(), "{status}");
            assert_says(&text(&out.stderr), &["UNKNOWN", "SERVER_ERROR"]);
            assert_eq!(api.posts(), 1, "HTTP {status}: exactly one POST");
            let db = s.db().await;
            let rows = requests(&db).await;
            assert_eq!(
                (rows[0].2.as_str(), rows[0].4.as_deref()),
                ("unknown", Some("SERVER_ERROR")),
                "{status}"
            );
            let stored = db
                .rows(
                    "SELECT CAST(http_status AS TEXT) FROM charge_requests WHERE id = 1",
                    &[],
                )
                .await;
            assert_eq!(stored, [[Some(status.to_string())]]);
        })
        .await;
    }

    // The daemon too: a row answered 5xx is sent once and never claimed again.
    on_a_fresh_database(async {
        let api = ScriptedCharge::start(500, r#"{"errorCode":"INTERNAL_ERROR"}"#).await;
        let s = setup(&api.base_url);
        let db = s.db().await;
        let daemon = Spawn::new(&s.config).spawn();
        db.exec("INSERT INTO charge_requests (amount) VALUES (6000)", &[])
            .await;
        eventually("the request to be unknown", || async {
            requests(&db).await[0].2 == "unknown"
        })
        .await;
        // A later request is refused because of it: by then the daemon has
        // finished with the first one for good.
        db.exec("INSERT INTO charge_requests (amount) VALUES (7000)", &[])
            .await;
        eventually("the later request to come to an outcome", || {
            all_finished(&db, 2)
        })
        .await;
        assert_eq!(
            requests(&db).await[1].4.as_deref(),
            Some("LOCAL_CHARGE_UNKNOWN")
        );
        assert_eq!(api.posts(), 1, "exactly one POST");
        assert_eq!(requests(&db).await[0].2, "unknown");
        daemon.stop().await;
    })
    .await;
}

/// A poll's READY answer for `claimed`, written as the scheduler writes it.
fn ready_poll(claimed: Claimed) -> PollRecord {
    let now = Utc::now();
    PollRecord {
        claimed,
        now,
        kind: RecordKind::Observed {
            observation: Observation {
                status: Status::Ready,
                amount: Some(10_000),
                created_at: None,
                modified_at: None,
                vbank: None,
                warnings: Vec::new(),
            },
            decision: Decision::PollAt(now),
            flags: Vec::new(),
        },
    }
}

async fn cancel_takes_the_lease_so_a_poll_in_flight_writes_nothing() {
    let sim = charge_sim().await;
    let id = sim.seed(1).remove(0);
    sim.force(&id, "READY").unwrap();
    let s = setup(&sim.base_url());
    // The daemon's side, driven step by step: its store, its claims, its writes.
    let daemon =
        Store::open_migrated(&common::settings(&sim.base_url(), s.dir.path(), &[]).database)
            .await
            .unwrap();
    daemon.add_ids(std::slice::from_ref(&id)).await.unwrap();
    let claim = || async {
        let now = Utc::now() + chrono::Duration::milliseconds(1);
        let mut claimed = daemon
            .claim_due(now, now + chrono::Duration::minutes(1), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        claimed.remove(0)
    };
    let first = claim().await;
    daemon.record(&[ready_poll(first)]).await.unwrap();
    // The next poll is in flight: leased, its READY answer not written yet.
    let in_flight = claim().await;
    assert_eq!(in_flight.status.as_deref(), Some("READY"));

    let out = run(&s.config, &["cancel", &id, "--yes"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("CANCELLED") && !stdout.contains("already recorded"),
        "the cancel recorded its answer itself: {stdout}"
    );
    let db = s.db().await;
    let cancelled = [row(None, "READY"), row(Some("READY"), "CANCELLED")];
    assert_eq!(transitions(&db, &id).await, cancelled);

    // The poll's answer, older than the cancel, arrives: its lease is gone.
    let recorded = daemon.record(&[ready_poll(in_flight)]).await.unwrap();
    assert!(recorded.transitions.is_empty(), "{recorded:?}");
    assert_eq!(transitions(&db, &id).await, cancelled);
    let stored = db
        .rows("SELECT status, watch FROM issuances WHERE id = $1", &[&id])
        .await;
    assert_eq!(
        stored,
        [[Some("CANCELLED".to_owned()), Some("settled".to_owned())]]
    );
    daemon.close().await;
}

async fn a_charge_under_an_id_stored_as_settled_is_not_merged_into_it() {
    // A simulator restarted without its state, its ids pinned: it hands out
    // the first id again.
    let pinned = |config: &mut bunjang_sim::SimConfig| config.id_base = Some(ID_BASE);
    let first = charge_sim_with(pinned).await;
    let s = setup(&first.base_url());
    let out = run(&s.config, &["charge", "10000"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let db = s.db().await;
    let id = requests(&db).await[0].3.clone().unwrap();
    first.force(&id, "DONE").unwrap();
    let daemon = Spawn::new(&s.config).spawn();
    eventually("the charge to be DONE here", || async {
        transitions(&db, &id).await.last().map(|t| t.1.as_str()) == Some("DONE")
    })
    .await;
    daemon.stop().await;
    first.shutdown().await;
    let settled = transitions(&db, &id).await;

    let second = charge_sim_with(pinned).await;
    let config = config_file(&second.base_url(), s.dir.path(), |_| {});
    let out = run(&config, &["charge", "20000"]).await;
    assert!(!out.status.success());
    assert_says(
        &text(&out.stderr),
        &["UNKNOWN", "ISSUANCE_ID_REUSED", &id, "DONE"],
    );
    assert_eq!(posts(&second), 1);
    assert_eq!(
        second.issuance(&id).unwrap().amount,
        20_000,
        "precondition: the API reused the id"
    );
    assert_eq!(transitions(&db, &id).await, settled, "not merged");
    let stored = db
        .rows(
            "SELECT status, CAST(amount AS TEXT) FROM issuances WHERE id = $1",
            &[&id],
        )
        .await;
    assert_eq!(
        stored,
        [[Some("DONE".to_owned()), Some("10000".to_owned())]]
    );
    let rows = requests(&db).await;
    assert_eq!(
        (
            rows[1].2.as_str(),
            rows[1].3.as_deref(),
            rows[1].4.as_deref()
        ),
        ("unknown", None, Some("ISSUANCE_ID_REUSED"))
    );
    // A person must look before the next charge.
    let next = run(&config, &["charge", "5000"]).await;
    assert_says(&text(&next.stderr), &["LOCAL_CHARGE_UNKNOWN"]);
    assert_eq!(posts(&second), 1);
}

on_both_engines!(
    an_unknown_charge_blocks_every_new_one_until_a_person_resolves_it(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    requests_are_served_first_come_first_served(flavor = "multi_thread", worker_threads = 2),
    a_charge_answered_5xx_is_sent_once_and_stays_unknown(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    cancel_takes_the_lease_so_a_poll_in_flight_writes_nothing(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_charge_under_an_id_stored_as_settled_is_not_merged_into_it(
        flavor = "multi_thread",
        worker_threads = 2
    ),
);
