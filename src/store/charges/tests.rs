//! Unit tests of `charges.rs`.

use super::super::testing::{assert_plan, temp_store};
use super::resolve::Resolution;
use super::*;

#[tokio::test]
async fn a_pending_request_is_claimed_once_and_never_pending_again() {
    let (store, _dir) = temp_store().await;
    sqlx::query("INSERT INTO charge_requests (amount) VALUES (50000), (7000)")
        .execute(store.pool())
        .await
        .unwrap();
    let now = Utc::now();
    let first = store.claim_charge_request(now).await.unwrap().unwrap();
    assert_eq!((first.amount, first.force), (50_000, false));
    let second = store.claim_charge_request(now).await.unwrap().unwrap();
    assert_eq!(second.amount, 7000);
    assert_eq!(store.claim_charge_request(now).await.unwrap(), None);
    let written = store
        .finish_charge_request(
            first.id,
            ChargeResult::Refused {
                http_status: 400,
                code: "BAD_REQUEST",
                reason: "no",
            },
            now,
            now,
        )
        .await
        .unwrap()
        .written;
    assert!(written);
    let row = store.charge_request(first.id).await.unwrap().unwrap();
    assert_eq!(
        (row.state.as_str(), row.error_code.as_deref()),
        ("refused", Some("BAD_REQUEST"))
    );
    // Another handle cannot write this handle's request.
    let other = Store::open(&crate::settings::DatabaseSettings {
        path: store.path().to_owned(),
        busy_timeout: std::time::Duration::from_secs(5),
        wal_warn_bytes: 0,
    })
    .await
    .unwrap();
    let written = other
        .finish_charge_request(
            second.id,
            ChargeResult::Rejected {
                code: "X",
                message: "y",
            },
            now,
            now,
        )
        .await
        .unwrap()
        .written;
    assert!(!written);
}

#[tokio::test]
async fn hostile_amounts_cannot_be_inserted() {
    let (store, _dir) = temp_store().await;
    for amount in ["0", "-1", "'abc'", "1.5", "NULL"] {
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO charge_requests (amount) VALUES ({amount})"
        ));
        assert!(
            sqlx::query(sql).execute(store.pool()).await.is_err(),
            "{amount}"
        );
    }
}

#[tokio::test]
async fn a_created_charge_is_watched_with_its_first_transition() {
    let (store, _dir) = temp_store().await;
    let now = Utc::now();
    let id = store
        .start_charge_request(50_000, false, now)
        .await
        .unwrap();
    let observation = Observation {
        status: crate::domain::Status::Ready,
        amount: Some(50_000),
        created_at: None,
        modified_at: None,
        vbank: None,
        warnings: Vec::new(),
    };
    let Finished {
        written, recorded, ..
    } = store
        .finish_charge_request(
            id,
            ChargeResult::Created {
                issuance_id: "1000001",
                observation: Some(&observation),
                decision: Decision::PollAt(now),
                problem: None,
            },
            now,
            now,
        )
        .await
        .unwrap();
    assert!(written);
    assert_eq!(recorded.transitions.len(), 1);
    let watch: (String, String) =
        sqlx::query_as("SELECT status, watch FROM issuances WHERE id = '1000001'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(watch, ("READY".to_owned(), "active".to_owned()));
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE type = 'issuance.status_changed' AND issuance_id = '1000001'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(events, 1);
    assert_eq!(
        store.open_charge(id + 1, 10_000_000).await.unwrap(),
        Some(OpenCharge::Issuance {
            id: "1000001".into(),
            status: "READY".into()
        })
    );
    // The same answer again (a poll saw it first, say) adds no transition.
    let again = store
        .record_answer("1000001", &observation, Decision::PollAt(now), now)
        .await
        .unwrap();
    assert!(again.transitions.is_empty());
}

#[tokio::test]
async fn balance_low_events_belong_to_no_issuance_and_reach_sinks() {
    let (store, _dir) = temp_store().await;
    let now = Utc::now();
    store.record_balance(now, 900, 10, None).await.unwrap();
    store.record_balance(now, 400, 10, Some(500)).await.unwrap();
    assert_eq!(store.last_balance().await.unwrap(), Some(400));
    let events = store.events_after(0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].event_type,
        crate::domain::EventType::BalanceLow.as_str()
    );
    assert_eq!(events[0].issuance_id, None, "JSON null, not \"\"");
    assert_eq!(events[0].data["balance"], 400);
    assert_eq!(events[0].data["threshold"], 500);
    // Delivered like any event (deliveries key it by the empty issuance).
    store.register_sink("s").await.unwrap();
    store.record_balance(now, 900, 10, None).await.unwrap();
    store.record_balance(now, 300, 10, Some(500)).await.unwrap();
    store
        .admit_events("s", &["balance.low"], now, 100)
        .await
        .unwrap();
    let due = store.due_deliveries("s", now, 10).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(
        (due[0].event_type.as_str(), due[0].issuance_id.as_str()),
        ("balance.low", "")
    );
}

/// Migration 5 rebuilds `events` and `deliveries`: what they held survives,
/// foreign keys still cascade, and the event cursor never goes back.
#[tokio::test]
async fn upgrading_keeps_events_deliveries_and_the_event_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&crate::settings::DatabaseSettings {
        path: dir.path().join("old.db"),
        busy_timeout: std::time::Duration::from_secs(5),
        wal_warn_bytes: 0,
    })
    .await
    .unwrap();
    {
        let mut conn = store.pool().acquire().await.unwrap();
        super::super::MIGRATOR
            .run_to(20261202000004, &mut *conn)
            .await
            .unwrap();
    }
    for statement in [
        "INSERT INTO issuances (id) VALUES ('a'), ('b')",
        "INSERT INTO transitions (issuance_id, to_status, observed_at) VALUES ('a', 'READY', '2026-01-01T00:00:00.000Z'), ('b', 'READY', '2026-01-01T00:00:00.000Z')",
        "INSERT INTO sinks (name, admitted_seq) VALUES ('s', 0)",
        "INSERT INTO deliveries (sink, seq, issuance_id, created_at, next_attempt_at) SELECT 's', seq, issuance_id, 't', 't' FROM events",
        // The newest event goes with its issuance: the cursor is 2, the max seq 1.
        "DELETE FROM issuances WHERE id = 'b'",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(store.pool())
            .await
            .unwrap();
    }
    store.migrate().await.unwrap();
    let deliveries: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT sink, seq, issuance_id FROM deliveries")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(deliveries, [("s".to_owned(), 1, "a".to_owned())]);
    store
        .record_balance(Utc::now(), 1, 0, Some(5))
        .await
        .unwrap();
    let seqs: Vec<(i64, String)> = sqlx::query_as("SELECT seq, type FROM events ORDER BY seq")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(
        seqs,
        [
            (1, "issuance.status_changed".to_owned()),
            (3, "balance.low".to_owned())
        ],
        "seq 2 is never reused"
    );
    let broken: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(broken.is_empty(), "{broken:?}");
    sqlx::query("DELETE FROM issuances WHERE id = 'a'")
        .execute(store.pool())
        .await
        .unwrap();
    let left: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM events WHERE issuance_id IS NOT NULL), (SELECT count(*) FROM deliveries)",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(
        left,
        (0, 0),
        "events and deliveries still cascade from issuances"
    );
}

#[tokio::test]
async fn the_daemons_charge_statements_use_their_indexes() {
    let (store, _dir) = temp_store().await;
    let pending = "charge_requests_pending";
    for statement in [sql::CLAIM_CHARGE_REQUEST, sql::ANY_PENDING_CHARGE_REQUEST] {
        assert_plan(&store, statement, "charge_requests", &[pending]).await;
    }
    let sending = "charge_requests_sending";
    assert_plan(
        &store,
        sql::CHARGE_PERFORMERS,
        "charge_requests",
        &[sending],
    )
    .await;
    assert_plan(
        &store,
        sql::OPEN_CHARGE,
        "issuances",
        &["SEARCH issuances USING"],
    )
    .await;
}

#[test]
fn only_an_id_stored_as_settled_is_refused_adoption() {
    for settled in ["DONE", "CANCELLED", "FAIL"] {
        assert_eq!(
            adoption_refused(Some(settled)).as_deref(),
            Some(settled),
            "{settled}"
        );
    }
    for open in [None, Some("WAITED"), Some("READY"), Some("WEIRD"), Some("")] {
        assert_eq!(adoption_refused(open), None, "{open:?}");
    }
}

/// A `charge_requests` row as read, in `state`, for the pure checks.
fn row_in(state: &str) -> ChargeRequestRow {
    ChargeRequestRow {
        id: 7,
        amount: 70_000,
        requested_at: "2026-12-05T00:00:00.000Z".into(),
        state: state.into(),
        force: 0,
        performed_by: None,
        sent_at: None,
        finished_at: None,
        issuance_id: None,
        http_status: None,
        error_code: None,
        error_message: None,
        resolution: None,
        resolved_at: None,
        resolved_by: None,
        forced_past: None,
    }
}

#[test]
fn only_an_unresolved_unknown_request_can_be_resolved() {
    assert_eq!(resolution_refused(7, Some(&row_in("unknown"))), None);
    let missing = resolution_refused(7, None).unwrap();
    assert!(missing.contains("no charge request 7"), "{missing}");
    for state in ["pending", "sending", "created", "refused", "rejected"] {
        let refused = resolution_refused(7, Some(&row_in(state))).unwrap();
        assert!(
            refused.contains(&format!("is {state}, not unknown")),
            "{refused}"
        );
    }
    let mut resolved = row_in("unknown");
    resolved.resolution = Some("issuance".into());
    resolved.issuance_id = Some("1000001".into());
    resolved.resolved_at = Some("2026-12-05T01:00:00.000Z".into());
    resolved.resolved_by = Some("cli:ops@host".into());
    let twice = resolution_refused(7, Some(&resolved)).unwrap();
    for said in [
        "resolved already",
        "2026-12-05T01:00:00.000Z",
        "cli:ops@host",
        "issuance 1000001",
    ] {
        assert!(twice.contains(said), "{said:?} not in {twice}");
    }
}

async fn exec_ok(store: &Store, statement: &'static str) {
    sqlx::query(statement).execute(store.pool()).await.unwrap();
}

/// Request `id` written `unknown` by its performer, as a 5xx would leave it.
async fn make_unknown(store: &Store, id: i64) {
    let now = Utc::now();
    let finished = store
        .finish_charge_request(
            id,
            ChargeResult::Unknown {
                http_status: Some(500),
                code: "SERVER_ERROR",
                detail: "HTTP 500",
            },
            now,
            now,
        )
        .await
        .unwrap();
    assert!(finished.written);
}

#[tokio::test]
async fn an_unknown_request_blocks_every_new_charge_until_a_person_resolves_it() {
    let (store, _dir) = temp_store().await;
    let now = Utc::now();
    let unknown = store
        .start_charge_request(70_000, false, now)
        .await
        .unwrap();
    make_unknown(&store, unknown).await;
    // A later request, whoever makes it, finds the unknown one in its way.
    let later = store
        .start_charge_request(10_000, false, now)
        .await
        .unwrap();
    match store.open_charge(later, 10_000_000).await.unwrap() {
        Some(OpenCharge::Unknown { id, amount, .. }) => {
            assert_eq!((id, amount), (unknown, 70_000));
        }
        other => panic!("{other:?}"),
    }
    // Resolving what is not unknown, or nothing, is refused and writes nothing.
    for (id, says) in [(later, "not unknown"), (999, "no charge request 999")] {
        let refused = store
            .resolve_charge_request(id, Resolution::None, "cli:t@h", now)
            .await
            .unwrap()
            .unwrap_err();
        assert!(refused.contains(says), "{refused}");
    }
    let resolved = store
        .resolve_charge_request(unknown, Resolution::Issuance("1000077"), "cli:t@h", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            resolved.state.as_str(),
            resolved.resolution.as_deref(),
            resolved.issuance_id.as_deref(),
            resolved.resolved_by.as_deref()
        ),
        (
            "unknown",
            Some("issuance"),
            Some("1000077"),
            Some("cli:t@h")
        )
    );
    assert!(resolved.resolved_at.is_some());
    let watched: Option<String> =
        sqlx::query_scalar("SELECT watch FROM issuances WHERE id = '1000077'")
            .fetch_optional(store.pool())
            .await
            .unwrap();
    assert_eq!(
        watched.as_deref(),
        Some("active"),
        "the charge found is watched"
    );
    assert_eq!(store.open_charge(later, 10_000_000).await.unwrap(), None);
    // Twice: refused, and the first resolution stands.
    let again = store
        .resolve_charge_request(unknown, Resolution::None, "cli:other@h", now)
        .await
        .unwrap()
        .unwrap_err();
    assert!(again.contains("resolved already"), "{again}");
    // Other programs cannot re-resolve it by SQL either.
    let by_sql = sqlx::query("UPDATE charge_requests SET resolution = 'none' WHERE id = ?")
        .bind(unknown)
        .execute(store.pool())
        .await;
    assert!(by_sql.is_err(), "the trigger refuses a second resolution");
    let row = store.charge_request(unknown).await.unwrap().unwrap();
    assert_eq!(
        (row.resolution.as_deref(), row.resolved_by.as_deref()),
        (Some("issuance"), Some("cli:t@h"))
    );
    // One issuance is never the charge of two requests.
    let second = store.start_charge_request(5_000, true, now).await.unwrap();
    make_unknown(&store, second).await;
    let taken = store
        .resolve_charge_request(second, Resolution::Issuance("1000077"), "cli:t@h", now)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        taken.contains(&format!("charge of charge request {unknown}")),
        "{taken}"
    );
    // A late answer of its performer never overwrites a resolution.
    store
        .resolve_charge_request(second, Resolution::None, "cli:t@h", now)
        .await
        .unwrap()
        .unwrap();
    let late = store
        .finish_charge_request(
            second,
            ChargeResult::Refused {
                http_status: 400,
                code: "BAD_REQUEST",
                reason: "late",
            },
            now,
            now,
        )
        .await
        .unwrap();
    assert!(!late.written);
}

#[tokio::test]
async fn first_come_first_served_and_rejected_amounts_hold_nobody_up() {
    let (store, _dir) = temp_store().await;
    exec_ok(
        &store,
        "INSERT INTO charge_requests (amount) VALUES (100), (200)",
    )
    .await;
    let (older, newer) = (1, 2);
    assert_eq!(
        store.open_charge(older, 1_000).await.unwrap(),
        None,
        "a newer pending request does not stand before an older one"
    );
    assert_eq!(
        store.open_charge(newer, 1_000).await.unwrap(),
        Some(OpenCharge::Request {
            id: older,
            state: "pending".into()
        }),
        "an older pending request goes first"
    );
    assert_eq!(
        store.open_charge(newer, 99).await.unwrap(),
        None,
        "one above charge.max_amount will be rejected: it holds nobody up"
    );
    // In flight, whoever performs it, it stands before any other request.
    let sending = store
        .start_charge_request(300, false, Utc::now())
        .await
        .unwrap();
    assert_eq!(
        store.open_charge(older, 1_000).await.unwrap(),
        Some(OpenCharge::Request {
            id: sending,
            state: "sending".into()
        })
    );
    assert_eq!(
        store
            .open_charge(sending, 1_000)
            .await
            .unwrap()
            .map(|o| matches!(o, OpenCharge::Request { id, .. } if id == older)),
        Some(true)
    );
}

#[tokio::test]
async fn a_created_charge_under_an_id_stored_as_settled_is_not_merged() {
    let (store, _dir) = temp_store_with_done().await;
    let now = Utc::now();
    let id = store
        .start_charge_request(70_000, false, now)
        .await
        .unwrap();
    let observation = Observation {
        status: crate::domain::Status::Waited,
        amount: Some(70_000),
        created_at: None,
        modified_at: None,
        vbank: None,
        warnings: Vec::new(),
    };
    let finished = store
        .finish_charge_request(
            id,
            ChargeResult::Created {
                issuance_id: "1000001",
                observation: Some(&observation),
                decision: Decision::PollAt(now),
                problem: None,
            },
            now,
            now,
        )
        .await
        .unwrap();
    assert!(finished.written);
    assert!(finished.recorded.transitions.is_empty());
    let reused = finished.reused.unwrap();
    assert!(
        reused.contains("1000001") && reused.contains("DONE"),
        "{reused}"
    );
    let row = store.charge_request(id).await.unwrap().unwrap();
    assert_eq!(
        (
            row.state.as_str(),
            row.error_code.as_deref(),
            row.issuance_id
        ),
        ("unknown", Some(ID_REUSED), None)
    );
    let stored: (String, String, i64) = sqlx::query_as(
        "SELECT status, watch, (SELECT count(*) FROM transitions WHERE issuance_id = '1000001') FROM issuances WHERE id = '1000001'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(
        stored,
        ("DONE".to_owned(), "settled".to_owned(), 1),
        "the settled record is left as it was"
    );
    assert!(matches!(
        store.open_charge(id + 1, 10_000_000).await.unwrap(),
        Some(OpenCharge::Unknown { .. })
    ));
}

/// A database holding issuance 1000001 as DONE (settled), with its transition.
async fn temp_store_with_done() -> (Store, tempfile::TempDir) {
    let (store, dir) = temp_store().await;
    exec_ok(
        &store,
        "INSERT INTO issuances (id, status, watch) VALUES ('1000001', 'DONE', 'settled')",
    )
    .await;
    exec_ok(
        &store,
        "INSERT INTO transitions (issuance_id, to_status, observed_at) VALUES ('1000001', 'DONE', '2026-01-01T00:00:00.000Z')",
    )
    .await;
    (store, dir)
}

#[tokio::test]
async fn the_open_charge_checks_use_their_indexes() {
    let (store, _dir) = temp_store().await;
    assert_plan(
        &store,
        sql::UNRESOLVED_UNKNOWN,
        "charge_requests",
        &["charge_requests_unresolved"],
    )
    .await;
    assert_plan(
        &store,
        sql::REQUEST_AHEAD,
        "charge_requests",
        &["charge_requests_sending", "charge_requests_pending"],
    )
    .await;
}
