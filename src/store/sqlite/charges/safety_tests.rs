//! Unit tests of the money guarantees in `charges.rs`: an unknown request
//! blocks every new charge until resolved, first come first served, and a
//! settled id is never adopted by a new charge.

use super::super::testing::{assert_plan, temp_store};
use super::*;
use crate::domain::{Decision, Observation};
use crate::store::{Resolution, Store, resolution_refused};

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
        source: "cli".into(),
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
