//! The recording path's behaviour, observed in the database: rows written,
//! transitions recorded once, flags raised and cleared, the plans of its statements.

use chrono::Utc;

use super::{PollRecord, RecordKind};
use crate::domain::status::Status;
use crate::domain::{Decision, Flag, Observation, Vbank};
use crate::store::testing::{query_plan, temp_store};
use crate::store::{Claimed, Lease, Store, sql};

fn observed(status: Status, claimed_status: Option<&str>, flags: Vec<Flag>) -> PollRecord {
    let now = Utc::now();
    PollRecord {
        claimed: Claimed {
            raw_id: b"42".to_vec(),
            status: claimed_status.map(str::to_owned),
            due_at: None,
            attempts: 0,
            not_found_since: None,
        },
        now,
        kind: RecordKind::Observed {
            observation: Observation {
                status,
                amount: Some(1000),
                created_at: None,
                modified_at: None,
                vbank: Some(Vbank {
                    due_at: Some(now),
                    ..Vbank::default()
                }),
                warnings: vec![],
            },
            decision: if status.is_terminal() {
                Decision::Settled
            } else {
                Decision::PollAt(now)
            },
            flags,
        },
    }
}

async fn transitions(store: &Store) -> Vec<(Option<String>, String, Option<String>)> {
    sqlx::query_as("SELECT from_status, to_status, anomaly FROM transitions ORDER BY seq")
        .fetch_all(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_and_the_claim_for_its_freed_slots_commit_together() {
    let (store, _dir) = temp_store().await;
    sqlx::query("INSERT INTO issuances (id, status) VALUES ('42', 'WAITED'), ('43', NULL)")
        .execute(store.pool())
        .await
        .unwrap();
    let mut done = observed(Status::Ready, Some("WAITED"), vec![]);
    let later = done.now + chrono::Duration::minutes(5);
    if let RecordKind::Observed { decision, .. } = &mut done.kind {
        *decision = Decision::PollAt(later);
    }
    let lease = Lease {
        now: done.now + chrono::Duration::seconds(1),
        until: done.now + chrono::Duration::minutes(2),
        limit: 10,
    };
    let (recorded, claimed) = store.record_and_claim(&[done], lease).await.unwrap();
    assert_eq!(recorded.transitions.len(), 1);
    let claimed: Vec<Vec<u8>> = claimed.unwrap().into_iter().map(|c| c.raw_id).collect();
    // 42 was just written with its next poll in 5 minutes: only 43 is due.
    assert_eq!(claimed, [b"43".to_vec()]);
    assert_eq!(
        transitions(&store).await,
        [(Some("WAITED".into()), "READY".into(), None)]
    );
}

#[tokio::test]
async fn a_steady_observation_of_a_row_no_longer_watched_still_takes_effect() {
    // Another program ended the watch while the poll was in flight: the
    // narrow statement for unchanged observations skips the row, and the
    // one-by-one path writes it as it always has.
    let (store, _dir) = temp_store().await;
    sqlx::query("INSERT INTO issuances (id, status, watch) VALUES ('42', 'READY', 'rejected')")
        .execute(store.pool())
        .await
        .unwrap();
    let ready = observed(Status::Ready, Some("READY"), vec![]);
    store.record(&[ready]).await.unwrap();
    let (watch, polls): (String, i64) =
        sqlx::query_as("SELECT watch, polls FROM issuances WHERE id = '42'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!((watch.as_str(), polls), ("active", 1));
    assert!(transitions(&store).await.is_empty());
}

#[tokio::test]
async fn the_same_observation_recorded_twice_is_one_transition() {
    let (store, _dir) = temp_store().await;
    sqlx::query("INSERT INTO issuances (id) VALUES ('42')")
        .execute(store.pool())
        .await
        .unwrap();
    // A replay of the same claim (e.g. a retried batch) must not double-record.
    store
        .record(&[observed(Status::Waited, None, vec![])])
        .await
        .unwrap();
    store
        .record(&[observed(Status::Waited, None, vec![])])
        .await
        .unwrap();
    assert_eq!(transitions(&store).await, [(None, "WAITED".into(), None)]);
}

#[tokio::test]
async fn a_backward_move_is_recorded_as_an_anomaly() {
    let (store, _dir) = temp_store().await;
    sqlx::query("INSERT INTO issuances (id, status) VALUES ('42', 'DONE')")
        .execute(store.pool())
        .await
        .unwrap();
    let recorded = store
        .record(&[observed(Status::Ready, Some("DONE"), vec![])])
        .await
        .unwrap();
    assert_eq!(
        recorded.transitions[0].anomaly.as_deref(),
        Some("unexpected move DONE -> READY")
    );
    assert_eq!(
        transitions(&store).await[0].2.as_deref(),
        Some("unexpected move DONE -> READY")
    );
}

#[tokio::test]
async fn flags_are_raised_once_and_cleared_when_ready_ends() {
    let (store, _dir) = temp_store().await;
    sqlx::query("INSERT INTO issuances (id, status) VALUES ('42', 'READY')")
        .execute(store.pool())
        .await
        .unwrap();
    let first = store
        .record(&[observed(
            Status::Ready,
            Some("READY"),
            vec![Flag::due_soon(std::time::Duration::from_secs(3600))],
        )])
        .await
        .unwrap();
    let again = store
        .record(&[observed(
            Status::Ready,
            Some("READY"),
            vec![Flag::due_soon(std::time::Duration::from_secs(3600))],
        )])
        .await
        .unwrap();
    assert_eq!((first.flags_raised.len(), again.flags_raised.len()), (1, 0));
    let done = store
        .record(&[observed(Status::Done, Some("READY"), vec![])])
        .await
        .unwrap();
    assert_eq!(done.flags_cleared, 1);
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM flags WHERE cleared_at IS NULL")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(open, 0);
    let watch: String = sqlx::query_scalar("SELECT watch FROM issuances")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(watch, "settled");
}

#[tokio::test]
async fn a_status_changed_by_another_writer_is_the_from_of_the_transition() {
    let (store, _dir) = temp_store().await;
    sqlx::query("INSERT INTO issuances (id, status) VALUES ('42', 'READY')")
        .execute(store.pool())
        .await
        .unwrap();
    // Claimed as WAITED, but the row says READY by the time the result is written.
    store
        .record(&[observed(Status::Done, Some("WAITED"), vec![])])
        .await
        .unwrap();
    assert_eq!(
        transitions(&store).await,
        [(Some("READY".into()), "DONE".into(), None)]
    );
}

#[tokio::test]
async fn a_non_utf8_id_is_rejected_by_its_bytes() {
    let (store, _dir) = temp_store().await;
    sqlx::query("INSERT INTO issuances (id) VALUES (CAST(x'ff41' AS TEXT))")
        .execute(store.pool())
        .await
        .unwrap();
    let now = Utc::now() + chrono::Duration::seconds(1);
    let claimed = store.claim_due(now, now, 5).await.unwrap();
    assert_eq!(claimed[0].raw_id, vec![0xff, 0x41]);
    let record = PollRecord {
        claimed: claimed[0].clone(),
        now,
        kind: RecordKind::Rejected {
            reason: "not UTF-8".into(),
        },
    };
    store.record(&[record]).await.unwrap();
    let (watch, error): (String, String) =
        sqlx::query_as("SELECT watch, last_error FROM issuances")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!((watch.as_str(), error.as_str()), ("rejected", "not UTF-8"));
}

fn observed_id(id: &str, status: Status, claimed_status: Option<&str>) -> PollRecord {
    let mut record = observed(status, claimed_status, vec![]);
    record.claimed.raw_id = id.as_bytes().to_vec();
    record
}

#[tokio::test]
async fn a_batch_records_each_change_once_and_raced_rows_by_their_current_status() {
    let (store, _dir) = temp_store().await;
    sqlx::query("INSERT INTO issuances (id, status) VALUES ('a', NULL), ('b', 'WAITED'), ('c', 'READY'), ('d', 'READY')")
        .execute(store.pool())
        .await
        .unwrap();
    let batch = [
        observed_id("a", Status::Waited, None),
        observed_id("b", Status::Waited, Some("WAITED")),
        // Claimed as WAITED, but another writer set READY meanwhile.
        observed_id("c", Status::Done, Some("WAITED")),
        observed_id("d", Status::Done, Some("READY")),
    ];
    let recorded = store.record(&batch).await.unwrap();
    assert_eq!(recorded.transitions.len(), 3);
    store.record(&batch).await.unwrap();
    let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT issuance_id, from_status, to_status FROM transitions ORDER BY issuance_id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let expected = [
        ("a", None, "WAITED"),
        ("c", Some("READY"), "DONE"),
        ("d", Some("READY"), "DONE"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(i, f, t)| (i.to_string(), f.map(str::to_owned), t.to_string()))
        .collect();
    assert_eq!(rows, expected);
    let polls: i64 = sqlx::query_scalar("SELECT polls FROM issuances WHERE id = 'b'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(polls, 2, "unchanged observations are still counted");
}

#[tokio::test]
async fn the_bulk_update_finds_rows_by_primary_key() {
    let (store, _dir) = temp_store().await;
    for statement in [sql::WRITE_OBSERVATIONS, sql::WRITE_STEADY_OBSERVATIONS] {
        let details = query_plan(&store, statement).await;
        assert!(
            details
                .iter()
                .any(|d| d.contains("SEARCH issuances USING INDEX sqlite_autoindex_issuances_1")),
            "{details:?}"
        );
        assert!(
            !details.iter().any(|d| d.starts_with("SCAN issuances")),
            "{details:?}"
        );
    }
}

#[tokio::test]
async fn the_per_record_statements_find_their_rows_by_key() {
    let (store, _dir) = temp_store().await;
    for statement in [sql::STATUS_OF, sql::RECORD_FAILED, sql::RECORD_REJECTED] {
        let details = query_plan(&store, statement).await;
        assert!(
            details
                .iter()
                .any(|d| d.starts_with("SEARCH issuances USING INDEX sqlite_autoindex_issuances_1")),
            "{statement}: {details:?}"
        );
        assert!(
            !details.iter().any(|d| d.starts_with("SCAN issuances")),
            "{statement}: {details:?}"
        );
    }
    let details = query_plan(&store, sql::CLEAR_FLAGS).await;
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("SEARCH flags USING INDEX sqlite_autoindex_flags_1")),
        "{details:?}"
    );
    assert!(
        !details.iter().any(|d| d.starts_with("SCAN flags")),
        "{details:?}"
    );
}

#[tokio::test]
async fn transitions_cannot_be_rewritten() {
    let (store, _dir) = temp_store().await;
    sqlx::query("INSERT INTO issuances (id) VALUES ('42')")
        .execute(store.pool())
        .await
        .unwrap();
    store
        .record(&[observed(Status::Waited, None, vec![])])
        .await
        .unwrap();
    assert!(
        sqlx::query("UPDATE transitions SET to_status = 'DONE'")
            .execute(store.pool())
            .await
            .is_err()
    );
}
