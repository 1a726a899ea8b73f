//! Unit tests of `charges.rs`.

use super::super::testing::{assert_plan, temp_store};
use super::*;
use crate::domain::{Decision, Observation};
use crate::store::Store;

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
    let other = Store::open(&crate::settings::DatabaseSettings::sqlite(
        store.path().unwrap().to_owned(),
    ))
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
    let store = Store::open(&crate::settings::DatabaseSettings::sqlite(
        dir.path().join("old.db"),
    ))
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
