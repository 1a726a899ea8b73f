//! Charges over real HTTP: `charge` against the simulator (created, watched,
//! DONE; refused; ambiguous), requests inserted by SQL (performed once, also
//! across a kill -9), hostile amounts and answers, and `cancel` racing the
//! daemon's poll.

use crate::common;

use std::time::Duration;

use bunjang_sim::{FaultConfig, FaultRule};
use common::charging::{
    ScriptedCharge, charge_sim, config_file, issuance_count, pool, posts, requests, run, setup,
    text,
};
use common::daemon::Spawn;
use common::engine::{on_a_fresh_database, on_both_engines};
use common::running::transitions;
use common::{eventually, row};

async fn a_charge_prints_the_account_is_watched_and_settles_done() {
    let sim = charge_sim().await;
    let s = setup(&sim.base_url());
    let before = sim.balance().0;
    let out = run(&s.config, &["charge", "50000"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let db = s.db().await;
    let rows = requests(&db).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (_, amount, state, issuance, _) = &rows[0];
    assert_eq!((*amount, state.as_str()), (50_000, "created"));
    let id = issuance.clone().unwrap();
    let view = sim.issuance(&id).unwrap();
    let vbank = view.prepared_vbank_info.expect("READY with an account");
    for shown in [
        vbank.vbank_account_number.as_str(),
        vbank.bank_name.as_str(),
        vbank.vbank_holder_name.as_str(),
        "50000 KRW",
        "KST",
        "UTC",
    ] {
        assert!(stdout.contains(shown), "{shown:?} not in {stdout}");
    }
    // The daemon watches it from there on: paid, it settles DONE.
    let daemon = Spawn::new(&s.config).spawn();
    sim.force(&id, "DONE").unwrap();
    eventually("the charge to be DONE in the database", || async {
        transitions(&db, &id).await.last().map(|t| t.1.as_str()) == Some("DONE")
    })
    .await;
    assert_eq!(
        transitions(&db, &id).await,
        [
            row(None, "WAITED"),
            row(Some("WAITED"), "READY"),
            row(Some("READY"), "DONE")
        ]
    );
    let events = db
        .rows(
            "SELECT CAST(count(*) AS TEXT) FROM events
             WHERE type = 'issuance.status_changed' AND issuance_id = $1",
            &[&id],
        )
        .await;
    assert_eq!(events, [[Some("3".to_owned())]]);
    assert_eq!(
        sim.balance().0,
        before + 50_000,
        "the simulator credits a DONE charge"
    );
    assert_eq!(posts(&sim), 1);
    daemon.stop().await;
}

async fn a_second_charge_is_refused_here_and_by_the_api_and_nothing_is_stored() {
    let sim = charge_sim().await;
    let s = setup(&sim.base_url());
    let first = run(&s.config, &["charge", "10000"]).await;
    assert!(first.status.success(), "{}", text(&first.stderr));
    let db = s.db().await;
    let open = requests(&db).await[0].3.clone().unwrap();

    let local = run(&s.config, &["charge", "20000"]).await;
    let stderr = text(&local.stderr);
    assert!(!local.status.success());
    assert!(
        stderr.contains(&open) && stderr.contains("READY"),
        "{stderr}"
    );
    assert_eq!(posts(&sim), 1, "refused here: nothing sent");

    let forced = run(&s.config, &["charge", "20000", "--force"]).await;
    let stderr = text(&forced.stderr);
    assert!(!forced.status.success());
    assert!(
        stderr.contains("refused") && stderr.contains("BAD_REQUEST"),
        "{stderr}"
    );
    assert_eq!(posts(&sim), 2);
    assert_eq!(
        issuance_count(&db).await,
        1,
        "no issuance for a refused charge"
    );
    let states: Vec<String> = requests(&db).await.into_iter().map(|r| r.2).collect();
    assert_eq!(states, ["created", "rejected", "refused"]);
}

async fn an_ambiguous_post_is_recorded_unknown_never_retried_and_fails_the_command() {
    let sim = charge_sim().await;
    sim.set_faults(FaultConfig {
        created_then_drop: FaultRule::always(),
        ..FaultConfig::default()
    });
    let s = setup(&sim.base_url());
    let out = run(&s.config, &["charge", "30000"]).await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("UNKNOWN") && stderr.contains("MAY have been created"),
        "{stderr}"
    );
    assert!(stderr.contains("partner console"), "{stderr}");
    assert_eq!(
        sim.charges_created(),
        1,
        "the fault was hit: the charge exists"
    );
    assert_eq!(posts(&sim), 1, "exactly one POST: no retry");
    let db = s.db().await;
    let rows = requests(&db).await;
    assert_eq!(rows[0].2, "unknown", "{rows:?}");
    assert_eq!(issuance_count(&db).await, 0);
    // A daemon started afterwards does not send it again either.
    let mut daemon = Spawn::new(&s.config).spawn();
    daemon.started(Duration::from_secs(10)).await;
    // A window in which nothing may be sent: time let pass on purpose.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(posts(&sim), 1);
    assert_eq!(requests(&db).await[0].2, "unknown");
    daemon.stop().await;
}

async fn hostile_amounts_are_refused_before_anything_is_sent() {
    let sim = charge_sim().await;
    let s = setup(&sim.base_url());
    for (amount, says) in [
        ("0", "positive"),
        ("-1", "whole number"),
        ("1e9", "whole number"),
        ("abc", "whole number"),
        ("10000001", "charge.max_amount"),
        ("99999999999999999999", "charge.max_amount"),
        ("", "whole number"),
    ] {
        let out = run(&s.config, &["charge", amount]).await;
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{amount}");
        assert!(stderr.contains(says), "{amount}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_eq!(posts(&sim), 0);
    assert!(requests(&s.db().await).await.is_empty());
}

async fn an_answer_without_a_usable_id_is_unknown_not_created() {
    for body in [
        r#"{"data":{"amount":5000,"status":"READY"}}"#,
        r#"{"data":{"id":"..","status":"READY"}}"#,
        r#"{"data":{"id":"1\u0000","status":"READY"}}"#,
        r#"{"data":{"id":"","status":"READY"}}"#,
        r#"{"data":{"id":{"n":1},"status":"READY"}}"#,
        "<html>ok</html>",
    ] {
        on_a_fresh_database(async {
            let api = ScriptedCharge::start(200, body).await;
            let s = setup(&api.base_url);
            let out = run(&s.config, &["charge", "5000"]).await;
            let stderr = text(&out.stderr);
            assert!(!out.status.success(), "{body}");
            assert!(
                stderr.contains("UNKNOWN") && stderr.contains("MALFORMED"),
                "{body}: {stderr}"
            );
            assert_eq!(api.posts(), 1);
            let db = s.db().await;
            assert_eq!(requests(&db).await[0].2, "unknown");
            assert_eq!(issuance_count(&db).await, 0, "{body}");
        })
        .await;
    }
}

async fn a_request_inserted_by_sql_is_performed_once_and_watched() {
    let sim = charge_sim().await;
    let s = setup(&sim.base_url());
    common::daemon::migrate(&s.config);
    let db = s.db().await;
    let daemon = Spawn::new(&s.config).spawn();
    db.exec("INSERT INTO charge_requests (amount) VALUES (50000)", &[])
        .await;
    eventually("the request to be created", || async {
        requests(&db).await[0].2 == "created"
    })
    .await;
    let id = requests(&db).await[0].3.clone().unwrap();
    eventually("the charge to be READY", || async {
        transitions(&db, &id).await.last().map(|t| t.1.as_str()) == Some("READY")
    })
    .await;
    // A second one while the first is READY is refused here, not sent.
    db.exec("INSERT INTO charge_requests (amount) VALUES (60000)", &[])
        .await;
    eventually("the second request to be rejected", || async {
        requests(&db).await[1].2 == "rejected"
    })
    .await;
    assert_eq!(
        requests(&db).await[1].4.as_deref(),
        Some("LOCAL_CHARGE_OPEN")
    );
    assert_eq!(posts(&sim), 1);
    daemon.stop().await;
}

async fn a_kill_between_the_post_and_its_recording_leaves_the_request_unknown_never_resent() {
    let sim = charge_sim().await;
    sim.set_faults(FaultConfig {
        created_then_hang: FaultRule::always(),
        hang_for: Duration::from_secs(30),
        ..FaultConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    // A long API timeout, so the daemon is surely still waiting when killed.
    let config = config_file(&sim.base_url(), dir.path(), |s| {
        s.api.timeout = Duration::from_secs(20);
        s.poll.lease = Duration::from_secs(30);
    });
    common::daemon::migrate(&config);
    let db = common::charging::db(&config).await;
    // Waiting before the daemon starts: it must not send it before it holds
    // its ownership (a lock file beside SQLite's, a registered advisory lock
    // on PostgreSQL), which is what lets the next daemon see at once that it
    // died mid-request.
    db.exec("INSERT INTO charge_requests (amount) VALUES (40000)", &[])
        .await;
    let mut daemon = Spawn::new(&config).spawn();
    eventually("the charge to exist while its answer hangs", || async {
        sim.charges_created() == 1 && requests(&db).await[0].2 == "sending"
    })
    .await;
    daemon.kill9();
    assert_eq!(
        requests(&db).await[0].2,
        "sending",
        "precondition: killed mid-request"
    );
    sim.set_faults(FaultConfig::default());
    let restarted = Spawn::new(&config).spawn();
    eventually("the request to become unknown", || async {
        requests(&db).await[0].2 == "unknown"
    })
    .await;
    assert_eq!(requests(&db).await[0].4.as_deref(), Some("PERFORMER_DIED"));
    // A window in which nothing may be sent: time let pass on purpose.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sim.charges_created(), 1, "never sent a second time");
    assert_eq!(requests(&db).await[0].2, "unknown");
    restarted.stop().await;
}

async fn cancel_racing_the_daemons_poll_records_one_transition() {
    let sim = charge_sim().await;
    let s = setup(&sim.base_url());
    common::daemon::migrate(&s.config);
    let db = s.db().await;
    let ids = sim.seed(5);
    for id in &ids {
        sim.force(id, "READY").unwrap();
        db.insert_ids(&[id]).await;
    }
    // Polling every 50 ms, so each cancel lands among polls of the same id.
    let daemon = Spawn::new(&s.config).spawn();
    for id in &ids {
        eventually("READY to be seen", || async {
            transitions(&db, id).await.last().map(|t| t.1.as_str()) == Some("READY")
        })
        .await;
    }
    for id in &ids {
        let out = run(&s.config, &["cancel", id, "--yes"]).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("CANCELLED"));
    }
    // A window for the polls in flight to land (and record nothing more):
    // time let pass on purpose.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &ids {
        assert_eq!(
            transitions(&db, id).await,
            [row(None, "READY"), row(Some("READY"), "CANCELLED")],
            "{id}"
        );
    }
    // Cancelled already: refused here, with the status.
    let again = run(&s.config, &["cancel", &ids[0], "--yes"]).await;
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("only a READY charge can be cancelled"));
    daemon.stop().await;
}

async fn cancel_refuses_hostile_and_unknown_ids_and_needs_confirmation() {
    let sim = charge_sim().await;
    let s = setup(&sim.base_url());
    common::daemon::migrate(&s.config);
    let long = "9".repeat(300);
    for (id, says) in [
        ("", "empty"),
        ("..", "relative path"),
        ("a\nb", "control"),
        (long.as_str(), "longer than 256"),
        ("-1", "not in the database"),
        ("../balance", "not in the database"),
    ] {
        let out = run(&s.config, &["cancel", id, "--yes"]).await;
        assert!(!out.status.success(), "{id}");
        assert!(
            text(&out.stderr).contains(says),
            "{id}: {}",
            text(&out.stderr)
        );
    }
    let ids = sim.seed(1);
    sim.force(&ids[0], "READY").unwrap();
    let db = s.db().await;
    db.exec(
        "INSERT INTO issuances (id, status) VALUES ($1, 'READY')",
        &[&ids[0]],
    )
    .await;
    // stdin is not a terminal: no silent yes.
    let out = run(&s.config, &["cancel", &ids[0]]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--yes"));
    assert_eq!(sim.issuance(&ids[0]).unwrap().status.to_string(), "READY");
    let cancels = sim
        .request_log()
        .iter()
        .filter(|r| r.path.ends_with("/cancel"))
        .count();
    assert_eq!(cancels, 0, "nothing was sent");
}

// SQLite's: the demo makes and runs on a SQLite file of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_creates_its_charges_through_the_charge_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let args = issuance_watcher::tools::demo::DemoArgs {
        count: 8,
        speed: 14_400.0,
        database: db.clone(),
        seed: 3,
        timeout: Duration::from_secs(60),
    };
    let mut out = Vec::new();
    issuance_watcher::tools::demo::run_to(args, &mut out, std::future::pending())
        .await
        .expect("demo passes its own check");
    let pool = pool(&db).await;
    let rows = requests(&pool).await;
    assert_eq!(rows.len(), 8);
    assert!(
        rows.iter().all(|r| r.2 == "created" && r.3.is_some()),
        "{rows:?}"
    );
    let text = text(&out);
    assert!(
        text.contains("point balance now:") && text.contains("-- charges"),
        "{text}"
    );
}

/// The window the ownership closes, held open on purpose: while the daemon
/// cannot register its ownership on PostgreSQL (another transaction holds the
/// `daemons` table), a charge request waiting at its start is not sent. A
/// sender not yet known alive could die after its POST, and the next daemon
/// would then not see it dead: the request would wait out the stale bound
/// instead of becoming `unknown` at once. (SQLite takes its lock file too
/// quickly to hold the window open from outside.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_charge_is_sent_before_the_daemon_holds_its_ownership() {
    common::engine::on_postgres(async {
        let sim = charge_sim().await;
        let dir = tempfile::tempdir().unwrap();
        let config = config_file(&sim.base_url(), dir.path(), |_| {});
        common::daemon::migrate(&config);
        let db = common::charging::db(&config).await;
        let common::db::Db::Postgres(pg) = &db else {
            panic!("runs on PostgreSQL");
        };
        let mut blocker = pg.begin().await.unwrap();
        sqlx::query("LOCK TABLE daemons IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *blocker)
            .await
            .unwrap();
        db.exec("INSERT INTO charge_requests (amount) VALUES (40000)", &[])
            .await;
        let daemon = Spawn::new(&config).spawn();
        // A window in which nothing may be sent: time let pass on purpose.
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert_eq!(sim.charges_created(), 0, "sent before its ownership");
        assert_eq!(requests(&db).await[0].2, "pending");
        blocker.rollback().await.unwrap();
        eventually("the charge once the ownership is held", || async {
            requests(&db).await[0].2 == "created"
        })
        .await;
        assert_eq!(sim.charges_created(), 1);
        daemon.stop().await;
    })
    .await;
}

on_both_engines!(
    a_charge_prints_the_account_is_watched_and_settles_done(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_second_charge_is_refused_here_and_by_the_api_and_nothing_is_stored(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    an_ambiguous_post_is_recorded_unknown_never_retried_and_fails_the_command(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    hostile_amounts_are_refused_before_anything_is_sent(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    an_answer_without_a_usable_id_is_unknown_not_created(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_request_inserted_by_sql_is_performed_once_and_watched(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    a_kill_between_the_post_and_its_recording_leaves_the_request_unknown_never_resent(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    cancel_racing_the_daemons_poll_records_one_transition(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    cancel_refuses_hostile_and_unknown_ids_and_needs_confirmation(
        flavor = "multi_thread",
        worker_threads = 2
    ),
);
