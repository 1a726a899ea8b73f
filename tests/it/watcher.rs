//! The watcher end to end, against a scripted API over real HTTP on loopback.

use crate::common;

use std::time::Duration;

use chrono::Duration as Span;
use common::db::Db;
use common::engine::on_both_engines;
use common::running::number;
use common::{Reply, Running, ScriptedApi, eventually, row, settings};

async fn setup(overrides: &[(&str, &str)]) -> (ScriptedApi, Running, tempfile::TempDir) {
    let api = ScriptedApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(settings(&api.base_url(), dir.path(), overrides)).await;
    (api, running, dir)
}

async fn a_waited_ready_done_lifecycle_is_recorded_exactly_and_polling_stops() {
    let (api, w, _dir) = setup(&[]).await;
    let far = Span::hours(30);
    api.script(
        "1001",
        vec![
            Reply::issuance("1001", "WAITED"),
            Reply::issuance("1001", "WAITED"),
            Reply::ready_due_in("1001", "READY", far),
            Reply::ready_due_in("1001", "READY", far),
            Reply::ready_due_in("1001", "DONE", far),
        ],
    );
    w.insert(&["1001"]).await;
    w.wait_watch("1001", "settled").await;
    assert_eq!(
        w.transitions("1001").await,
        [
            row(None, "WAITED"),
            row(Some("WAITED"), "READY"),
            row(Some("READY"), "DONE")
        ]
    );
    let polls = api.requests_for("1001");
    assert_eq!(polls, 5, "one poll per scripted answer, none after DONE");
    // A window in which nothing may happen (no poll after DONE): time let pass on purpose.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        api.requests_for("1001"),
        polls,
        "a terminal issuance is never polled again"
    );
    assert!(
        api.requests().iter().all(|r| r.authorized),
        "every request carries a bearer JWT"
    );
    w.stop().await;
}

async fn cancelled_and_failed_lifecycles_end_their_watch() {
    let (api, w, _dir) = setup(&[]).await;
    api.script(
        "2001",
        vec![
            Reply::issuance("2001", "WAITED"),
            Reply::issuance("2001", "FAIL"),
        ],
    );
    api.script(
        "2002",
        vec![
            Reply::ready_due_in("2002", "READY", Span::hours(30)),
            Reply::ready_due_in("2002", "CANCELLED", Span::hours(30)),
        ],
    );
    w.insert(&["2001", "2002"]).await;
    w.wait_watch("2001", "settled").await;
    w.wait_watch("2002", "settled").await;
    assert_eq!(
        w.transitions("2001").await,
        [row(None, "WAITED"), row(Some("WAITED"), "FAIL")]
    );
    assert_eq!(
        w.transitions("2002").await,
        [row(None, "READY"), row(Some("READY"), "CANCELLED")]
    );
    w.stop().await;
}

async fn due_soon_and_overdue_are_raised_once_and_cleared_when_ready_ends() {
    let (api, w, _dir) = setup(&[("ISSUANCE_WATCHER__FLAGS__DUE_SOON_LEAD", "2s")]).await;
    // Due in 4 s (to the second, as the API writes it); DUE_SOON applies from 2 s before.
    api.set_ready("3001", Span::seconds(4));
    w.insert(&["3001"]).await;
    eventually("READY", || async {
        w.column("3001", "status").await.as_deref() == Some("READY")
    })
    .await;
    assert!(
        w.flags("3001").await.is_empty(),
        "not flagged while the deadline is far"
    );
    eventually("DUE_SOON", || async { !w.flags("3001").await.is_empty() }).await;
    assert_eq!(w.flags("3001").await, [("DUE_SOON".to_owned(), false)]);
    eventually("OVERDUE", || async { w.flags("3001").await.len() == 2 }).await;
    // A window in which nothing may happen (no flag raised twice or cleared
    // while READY): time let pass on purpose.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.flags("3001").await,
        [
            ("DUE_SOON".to_owned(), false),
            ("OVERDUE".to_owned(), false)
        ]
    );
    let polls_while_overdue = api.requests_for("3001");
    api.set(
        "3001",
        Reply::ready_due_in("3001", "DONE", Span::seconds(-1)),
    );
    w.wait_watch("3001", "settled").await;
    assert!(
        api.requests_for("3001") > polls_while_overdue,
        "still READY after the deadline is still polled"
    );
    assert_eq!(
        w.flags("3001").await,
        [("DUE_SOON".to_owned(), true), ("OVERDUE".to_owned(), true)]
    );
    w.stop().await;
}

/// A 429 for one issuance pauses every poll until the time its `Retry-After`
/// names, given as delay-seconds or as an HTTP date (IMF-fixdate), then
/// polling resumes.
async fn retry_after_pauses_all_polling(retry_after: impl Fn() -> String) {
    let (api, w, _dir) = setup(&[]).await;
    for id in ["4001", "4002", "4003"] {
        api.set(id, Reply::issuance(id, "WAITED"));
    }
    w.insert(&["4001", "4002", "4003"]).await;
    eventually("polling", || async { api.requests().len() >= 6 }).await;
    api.script(
        "4001",
        vec![
            Reply::error(429, "TOO_MANY_REQUESTS").with_header("retry-after", &retry_after()),
            Reply::issuance("4001", "WAITED"),
        ],
    );
    let limited_at = crate::common::running::wait_for(
        "the 429 to be answered and recorded",
        Duration::from_secs(15),
        || async {
            let answered = api.requests().into_iter().find(|r| r.answered == 429);
            match answered {
                Some(r) if w.column("4001", "last_error").await.is_some() => Ok(r),
                seen => Err(format!("429 answered: {seen:?}")),
            }
        },
    )
    .await;
    assert_eq!(limited_at.id, "4001");
    let limited_at = limited_at.at;
    // Past the Retry-After window, in which nothing may be sent: time let pass on purpose.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let inside: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| {
            r.at > limited_at + Duration::from_millis(100)
                && r.at < limited_at + Duration::from_millis(1900)
        })
        .collect();
    assert!(
        inside.is_empty(),
        "{} requests inside the Retry-After window",
        inside.len()
    );
    eventually("polling to resume", || async {
        api.requests()
            .iter()
            .any(|r| r.at > limited_at + Duration::from_secs(2))
    })
    .await;
    w.stop().await;
}

async fn retry_after_in_seconds_pauses_all_polling_until_the_time_it_names() {
    retry_after_pauses_all_polling(|| "2".to_owned()).await;
}

async fn retry_after_as_an_http_date_pauses_all_polling_until_the_time_it_names() {
    // An HTTP date has whole seconds: 3 s ahead is at least 2 s ahead.
    retry_after_pauses_all_polling(|| {
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3))
    })
    .await;
}

async fn a_401_pauses_all_polling_and_polling_resumes_when_auth_works() {
    let (api, w, _dir) = setup(&[]).await;
    for id in ["5001", "5002", "5003", "5004"] {
        api.set(id, Reply::issuance(id, "WAITED"));
    }
    api.answer_everyone(Some(Reply::error(401, "EXPIRED_AUTH_TOKEN")));
    w.insert(&["5001", "5002", "5003"]).await;
    eventually("the first 401", || async { !api.requests().is_empty() }).await;
    let refused_at = api.requests()[0].at;
    // A newcomer has no failed poll of its own to wait for: only the global
    // pause (at least `auth_pause`, 1 s, from the first refusal) holds it back.
    w.insert(&["5004"]).await;
    let inserted_at = std::time::Instant::now();
    assert!(
        inserted_at < refused_at + Duration::from_millis(700),
        "the test needs the newcomer inserted well inside the pause"
    );
    // A window of refusals in which only a handful of requests may be sent:
    // time let pass on purpose.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let during = api.requests().len();
    // Unpaused, 4 issuances at 50 ms would send ~200 requests in 2.5 s; paused 1 s then 2 s: a handful.
    assert!(
        during <= 9,
        "{during} requests while credentials were refused"
    );
    let error = w.column("5001", "last_error").await.unwrap_or_default();
    assert!(error.contains("EXPIRED_AUTH_TOKEN"), "{error}");
    assert!(w.transitions("5001").await.is_empty());
    api.answer_everyone(None);
    // While refusals go on, each pause lets one probe through, not necessarily
    // the newcomer's: its first poll may come only after recovery.
    eventually("recovery", || async {
        w.transitions("5003").await == [row(None, "WAITED")]
            && w.transitions("5004").await == [row(None, "WAITED")]
    })
    .await;
    let newcomer = api
        .requests()
        .into_iter()
        .find(|r| r.id == "5004")
        .map(|r| r.at)
        .unwrap();
    assert!(
        newcomer >= refused_at + Duration::from_secs(1),
        "the newcomer was polled {:?} after the first refusal, inside the pause",
        newcomer - refused_at
    );
    w.stop().await;
}

async fn garbage_and_server_errors_leave_no_transition_and_are_recorded_as_errors() {
    let (api, w, _dir) = setup(&[]).await;
    api.script(
        "6001",
        vec![
            Reply::issuance("6001", "WAITED"),
            Reply::error(500, "UNKWOWN_ERROR"),
            Reply::json(502, "<html>bad gateway</html>"),
            Reply::json(200, "<html>not json</html>"),
            Reply::json(200, r#"{"data":{"id":"6001","status":"WEIRD"}}"#),
            Reply::json(200, r#"{"data":null}"#),
            Reply::json(
                200,
                &format!(
                    r#"{{"data":{{"id":"6001","status":"WAITED","pad":"{}"}}}}"#,
                    "x".repeat(2_000_000)
                ),
            ),
            Reply::issuance("6001", "WAITED"),
        ],
    );
    w.insert(&["6001"]).await;
    eventually("all scripted answers", || async {
        api.requests_for("6001") >= 9
    })
    .await;
    assert_eq!(w.transitions("6001").await, [row(None, "WAITED")]);
    assert_eq!(w.column("6001", "status").await.as_deref(), Some("WAITED"));
    assert_eq!(w.column("6001", "watch").await.as_deref(), Some("active"));
    w.stop().await;
}

async fn an_unknown_status_is_kept_as_the_last_error() {
    let (api, w, _dir) = setup(&[]).await;
    api.set(
        "6101",
        Reply::json(200, r#"{"data":{"id":"6101","status":"WEIRD"}}"#),
    );
    w.insert(&["6101"]).await;
    eventually("the anomaly", || async {
        w.column("6101", "last_error")
            .await
            .is_some_and(|e| e.contains("WEIRD"))
    })
    .await;
    assert!(w.transitions("6101").await.is_empty());
    w.stop().await;
}

async fn an_id_inserted_by_plain_sql_while_running_is_watched() {
    let api = ScriptedApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&api.base_url(), dir.path(), &[]);
    let w = Running::start(settings.clone()).await;
    api.set("7001", Reply::issuance("7001", "DONE"));
    w.turning().await;
    // Another program: its own connection, a plain INSERT.
    let other = Db::connect(&settings.database).await;
    other
        .exec("INSERT INTO issuances (id) VALUES ('7001')", &[])
        .await;
    w.wait_watch("7001", "settled").await;
    assert_eq!(w.transitions("7001").await, [row(None, "DONE")]);
    other.close().await;
    w.stop().await;
}

async fn a_restart_records_nothing_twice() {
    let api = ScriptedApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    api.set_ready("8001", Span::hours(30));
    let first = Running::start(settings(&api.base_url(), dir.path(), &[])).await;
    first.insert(&["8001"]).await;
    eventually("READY", || async {
        first.column("8001", "status").await.as_deref() == Some("READY")
    })
    .await;
    first.stop().await;
    let polls_before = api.requests_for("8001");
    let second = Running::start(settings(&api.base_url(), dir.path(), &[])).await;
    eventually("polls after restart", || async {
        api.requests_for("8001") >= polls_before + 3
    })
    .await;
    api.set("8001", Reply::ready_due_in("8001", "DONE", Span::hours(30)));
    second.wait_watch("8001", "settled").await;
    assert_eq!(
        second.transitions("8001").await,
        [row(None, "READY"), row(Some("READY"), "DONE")]
    );
    second.stop().await;
}

async fn not_found_is_retried_for_the_grace_period_then_the_watch_ends() {
    let (api, w, _dir) = setup(&[]).await;
    w.insert(&["9001"]).await;
    w.wait_watch("9001", "not_found").await;
    assert!(api.requests_for("9001") >= 2, "retried before giving up");
    let asked: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.id == "9001")
        .map(|r| r.at)
        .collect();
    let retried_for = *asked.last().unwrap() - asked[0];
    // `not_found_grace` is 1 s in the test settings. The grace is measured between
    // the answers' arrivals, the requests are logged a few milliseconds earlier.
    assert!(
        retried_for >= Duration::from_millis(950),
        "gave up {retried_for:?} after the first 404, before the grace ended"
    );
    let error = w.column("9001", "last_error").await.unwrap();
    assert!(error.contains("NOT_FOUND_PAY_INBOUND"), "{error}");
    w.stop().await;
}

async fn hostile_ids_never_leave_their_path_segment_and_unusable_ones_are_rejected() {
    let (api, w, _dir) = setup(&[]).await;
    let hostile = [
        "../balance",
        "a/b?c=d#e",
        "%2F",
        "x y",
        "'; DROP TABLE issuances; --",
    ];
    for id in hostile {
        api.set(id, Reply::issuance(id, "DONE"));
    }
    w.insert(&hostile).await;
    w.insert(&["", "   "]).await;
    w.db()
        .exec(
            "INSERT INTO issuances (id) VALUES ($1)",
            &[&"9".repeat(10_000)],
        )
        .await;
    for id in hostile {
        w.wait_watch(id, "settled").await;
        assert_eq!(w.transitions(id).await, [row(None, "DONE")], "{id}");
    }
    w.wait_watch("", "rejected").await;
    w.wait_watch("   ", "rejected").await;
    w.wait_watch(&"9".repeat(10_000), "rejected").await;
    let seen: Vec<String> = api.requests().into_iter().map(|r| r.id).collect();
    assert!(
        seen.iter().all(|id| hostile.contains(&id.as_str())),
        "unexpected request paths: {seen:?}"
    );
    w.stop().await;
}

async fn issuances_claimed_ahead_but_never_polled_are_handed_back_at_shutdown() {
    // Slow enough that claimed issuances queue for a slot when the stop comes,
    // fast enough that the two polls in flight finish within the shutdown drain.
    let (api, w, _dir) = setup(&[
        ("ISSUANCE_WATCHER__API__REQUESTS_PER_SECOND", "10"),
        ("ISSUANCE_WATCHER__API__CONCURRENCY", "2"),
    ])
    .await;
    let database = w.database.clone();
    let ids: Vec<String> = (9101..9121).map(|n| n.to_string()).collect();
    for id in &ids {
        api.set(id, Reply::ready_due_in(id, "READY", Span::hours(30)));
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    w.insert(&ids).await;
    eventually("the first polls", || async { api.requests().len() >= 2 }).await;
    w.stop().await;
    let db = Db::connect(&database).await;
    // A lease is handed back by clearing its owner and making the row due:
    // an unpolled issuance still holding one would wait out the 5 s lease.
    let held = number(
        &db,
        "SELECT count(*) FROM issuances WHERE polls = 0 AND lease_owner IS NOT NULL",
    )
    .await;
    let unpolled = number(&db, "SELECT count(*) FROM issuances WHERE polls = 0").await;
    assert!(
        unpolled > 0,
        "the test needs issuances left unpolled at the stop"
    );
    assert_eq!(held, 0, "unpolled issuances keep no lease after shutdown");
    db.close().await;
}

on_both_engines!(
    a_waited_ready_done_lifecycle_is_recorded_exactly_and_polling_stops,
    cancelled_and_failed_lifecycles_end_their_watch,
    due_soon_and_overdue_are_raised_once_and_cleared_when_ready_ends,
    retry_after_in_seconds_pauses_all_polling_until_the_time_it_names,
    retry_after_as_an_http_date_pauses_all_polling_until_the_time_it_names,
    a_401_pauses_all_polling_and_polling_resumes_when_auth_works,
    garbage_and_server_errors_leave_no_transition_and_are_recorded_as_errors,
    an_unknown_status_is_kept_as_the_last_error,
    an_id_inserted_by_plain_sql_while_running_is_watched,
    a_restart_records_nothing_twice,
    not_found_is_retried_for_the_grace_period_then_the_watch_ends,
    hostile_ids_never_leave_their_path_segment_and_unusable_ones_are_rejected,
    issuances_claimed_ahead_but_never_polled_are_handed_back_at_shutdown,
);
