//! The recording path's behaviour, observed in the database: rows written,
//! transitions recorded once, flags raised and cleared, the plans of its statements.

use chrono::Utc;

// Every record here is written under a real claim (`claim`): writes check the
// lease's owner and fence, so a made-up claim would write nothing.

use crate::domain::status::Status;
use crate::domain::{Decision, Flag};
use crate::store::sqlite::sql;
use crate::store::testing::{
    BY_ID, assert_plan, claim, claim_all, exec, observed, of, poll_once, second_store, temp_store,
    temp_store_with,
};
use crate::store::{Claimed, Lease, Store};
use crate::store::{PollRecord, RecordKind};

fn failed(claimed: Claimed) -> PollRecord {
    let now = Utc::now();
    PollRecord {
        claimed,
        now,
        kind: RecordKind::Failed {
            error: "HTTP 503".into(),
            attempts: 1,
            not_found_since: None,
            decision: Decision::PollAt(now + chrono::Duration::seconds(5)),
            flags: vec![Flag::due_soon(std::time::Duration::from_secs(3600))],
        },
    }
}

async fn transitions(store: &Store) -> Vec<(Option<String>, String, Option<String>)> {
    sqlx::query_as("SELECT from_status, to_status, anomaly FROM transitions ORDER BY seq")
        .fetch_all(store.pool())
        .await
        .unwrap()
}

async fn row(store: &Store, id: &str) -> (Option<String>, String, i64, Option<String>) {
    sqlx::query_as("SELECT status, watch, polls, lease_owner FROM issuances WHERE id = ?1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_and_the_claim_for_its_freed_slots_commit_together() {
    let (store, _dir) =
        temp_store_with("INSERT INTO issuances (id, status) VALUES ('42', 'WAITED')").await;
    let mut done = observed(Status::Ready, claim(&store, "42").await, vec![]);
    exec(&store, "INSERT INTO issuances (id) VALUES ('43')").await;
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
    assert_eq!(row(&store, "42").await.3, None, "the write ended the lease");
}

#[tokio::test]
async fn an_external_edit_of_the_watch_or_status_during_a_poll_wins() {
    // Another program ended the watch, or the operator cancelled the issuance
    // by SQL, while its poll was in flight: the edit ended the lease, so the
    // poll's result is dropped, not written over it (no CANCELLED -> READY),
    // and the row stays as the edit left it (a terminal status written by
    // another program also ends the watch).
    for (add, edit, left) in [
        (
            "INSERT INTO issuances (id, status) VALUES ('42', 'READY')",
            "UPDATE issuances SET watch = 'settled' WHERE id = '42'",
            "READY",
        ),
        (
            "INSERT INTO issuances (id, status) VALUES ('42', 'WAITED')",
            "UPDATE issuances SET status = 'CANCELLED' WHERE id = '42'",
            "CANCELLED",
        ),
    ] {
        let (store, _dir) = temp_store().await;
        exec(&store, add).await;
        let ready = observed(Status::Ready, claim(&store, "42").await, vec![]);
        exec(&store, edit).await;
        let recorded = store.record(&[ready]).await.unwrap();
        assert_eq!(
            (recorded.stale, recorded.transitions.len()),
            (1, 0),
            "{edit}"
        );
        assert_eq!(
            row(&store, "42").await,
            (Some(left.into()), "settled".into(), 0, None),
            "{edit}"
        );
        assert!(transitions(&store).await.is_empty(), "{edit}");
    }
}

#[tokio::test]
async fn the_same_observation_recorded_twice_is_one_transition() {
    let (store, _dir) = temp_store_with("INSERT INTO issuances (id) VALUES ('42')").await;
    // A replay of the same claim (e.g. a retried batch) must not double-record:
    // the first write ended the lease, the replay is stale.
    let waited = observed(Status::Waited, claim(&store, "42").await, vec![]);
    store.record(std::slice::from_ref(&waited)).await.unwrap();
    let replay = store.record(&[waited]).await.unwrap();
    assert_eq!(replay.stale, 1);
    assert_eq!(transitions(&store).await, [(None, "WAITED".into(), None)]);
}

#[tokio::test]
async fn a_result_polled_under_an_expired_and_reclaimed_lease_is_dropped() {
    // Daemon A claims, is paused past its lease; daemon B claims the row
    // again and records DONE; A resumes and writes its old READY (observed,
    // failed and rejected alike): nothing of it is recorded.
    let (a, dir) = temp_store().await;
    let b = second_store(&dir).await;
    exec(
        &a,
        "INSERT INTO issuances (id, status) VALUES ('1', 'READY'), ('2', 'READY'), ('3', 'READY')",
    )
    .await;
    let now = Utc::now();
    let old: Vec<Claimed> = a.claim_due(now, now, 10).await.unwrap();
    assert_eq!(old.len(), 3);
    // A's lease (until `now`) has run out: B claims the rows.
    let later = now + chrono::Duration::milliseconds(1);
    let new = claim_all(&b, later).await;
    b.record(&[observed(Status::Done, of(&new, "1"), vec![])])
        .await
        .unwrap();
    let stale = a
        .record(&[
            observed(
                Status::Ready,
                of(&old, "1"),
                vec![Flag::due_soon(std::time::Duration::from_secs(3600))],
            ),
            failed(of(&old, "2")),
            PollRecord {
                claimed: of(&old, "3"),
                now,
                kind: RecordKind::Rejected {
                    reason: "late".into(),
                },
            },
        ])
        .await
        .unwrap();
    assert_eq!((stale.stale, stale.transitions.len()), (3, 0));
    assert!(stale.flags_raised.is_empty());
    assert_eq!(
        transitions(&a).await,
        [(Some("READY".into()), "DONE".into(), None)]
    );
    assert_eq!(
        row(&a, "1").await.1,
        "settled",
        "no settled row re-activated"
    );
    for id in ["2", "3"] {
        let (status, watch, polls, owner) = row(&a, id).await;
        assert_eq!(
            (status.as_deref(), watch.as_str(), polls),
            (Some("READY"), "active", 0)
        );
        assert_eq!(
            owner.as_deref(),
            Some(b.owner()),
            "B's lease on {id} stands"
        );
    }
    let flags: i64 = sqlx::query_scalar("SELECT count(*) FROM flags")
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert_eq!(flags, 0);
    // B's own results for 2 and 3 are still written.
    let fresh = b
        .record(&[failed(of(&new, "2")), failed(of(&new, "3"))])
        .await
        .unwrap();
    assert_eq!(fresh.stale, 0);
    assert_eq!(row(&a, "2").await.2, 1);
}

#[tokio::test]
async fn the_one_by_one_fallback_is_fenced_too() {
    let (store, _dir) = temp_store_with("INSERT INTO issuances (id, status) VALUES ('poison', 'WAITED'), ('stale', 'WAITED'), ('fine', 'WAITED')").await;
    let now = Utc::now();
    let first = store.claim_due(now, now, 10).await.unwrap();
    let stale = of(&first, "stale");
    let second = claim_all(&store, now + chrono::Duration::milliseconds(1)).await;
    let current = |id: &str| of(&second, id);
    // A row whose write always fails makes the batch fail as a whole.
    exec(&store, "CREATE TRIGGER poison BEFORE UPDATE OF status ON issuances WHEN NEW.id = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END").await;
    let recorded = store
        .record(&[
            observed(Status::Ready, current("poison"), vec![]),
            observed(Status::Ready, stale, vec![]),
            observed(Status::Ready, current("fine"), vec![]),
        ])
        .await
        .unwrap();
    assert_eq!((recorded.transitions.len(), recorded.stale), (1, 1));
    assert_eq!(row(&store, "stale").await.0.as_deref(), Some("WAITED"));
    assert_eq!(row(&store, "fine").await.0.as_deref(), Some("READY"));
}

#[tokio::test]
async fn a_backward_move_is_recorded_as_an_anomaly() {
    let (store, _dir) = temp_store().await;
    // Inserted as DONE it is settled; watching it again is setting it active.
    exec(&store, "INSERT INTO issuances (id, status) VALUES ('42', 'DONE'); UPDATE issuances SET watch = 'active' WHERE id = '42'").await;
    let recorded = poll_once(&store, "42", Status::Ready, vec![]).await;
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
    let (store, _dir) =
        temp_store_with("INSERT INTO issuances (id, status) VALUES ('42', 'READY')").await;
    let due_soon = || vec![Flag::due_soon(std::time::Duration::from_secs(3600))];
    let first = poll_once(&store, "42", Status::Ready, due_soon()).await;
    let again = poll_once(&store, "42", Status::Ready, due_soon()).await;
    assert_eq!((first.flags_raised.len(), again.flags_raised.len()), (1, 0));
    let done = poll_once(&store, "42", Status::Done, vec![]).await;
    assert_eq!(done.flags_cleared, 1);
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM flags WHERE cleared_at IS NULL")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(open, 0);
    assert_eq!(row(&store, "42").await.1, "settled");
}

#[tokio::test]
async fn a_terminal_status_written_by_another_program_settles_the_row() {
    let (store, _dir) = temp_store().await;
    // An import of history, and a status set by hand on a watched row.
    exec(&store, "INSERT INTO issuances (id, status) VALUES ('imported', 'DONE'), ('watched', 'READY'), ('new', NULL); UPDATE issuances SET status = 'FAIL' WHERE id = 'watched'").await;
    for id in ["imported", "watched"] {
        assert_eq!(row(&store, id).await.1, "settled", "{id}");
    }
    let now = Utc::now() + chrono::Duration::seconds(1);
    let claimed: Vec<Vec<u8>> = store
        .claim_due(now, now, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.raw_id)
        .collect();
    assert_eq!(claimed, [b"new".to_vec()], "terminal rows are never polled");
    // Watching one again (watch only) is still possible: it is polled once more.
    exec(
        &store,
        "UPDATE issuances SET watch = 'active' WHERE id = 'imported'",
    )
    .await;
    assert_eq!(row(&store, "imported").await.1, "active");
}

#[tokio::test]
async fn a_non_utf8_id_is_rejected_by_its_bytes() {
    let (store, _dir) =
        temp_store_with("INSERT INTO issuances (id) VALUES (CAST(x'ff41' AS TEXT))").await;
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

#[tokio::test]
async fn a_batch_records_each_change_once() {
    let (store, _dir) = temp_store_with("INSERT INTO issuances (id, status) VALUES ('a', NULL), ('b', 'WAITED'), ('c', 'READY'), ('d', 'READY')").await;
    let claims = claim_all(&store, Utc::now() + chrono::Duration::seconds(1)).await;
    let batch = [
        observed(Status::Waited, of(&claims, "a"), vec![]),
        observed(Status::Waited, of(&claims, "b"), vec![]),
        observed(Status::Done, of(&claims, "c"), vec![]),
        observed(Status::Done, of(&claims, "d"), vec![]),
    ];
    let recorded = store.record(&batch).await.unwrap();
    assert_eq!((recorded.transitions.len(), recorded.stale), (3, 0));
    let replay = store.record(&batch).await.unwrap();
    assert_eq!((replay.transitions.len(), replay.stale), (0, 4));
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
    assert_eq!(
        row(&store, "b").await.2,
        1,
        "unchanged observations are still counted"
    );
}

#[tokio::test]
async fn the_fenced_writes_find_their_rows_by_key() {
    let (store, _dir) = temp_store().await;
    for statement in [
        sql::WRITE_OBSERVATION,
        sql::STATUS_UNDER_LEASE,
        sql::RECORD_FAILED,
        sql::RECORD_REJECTED,
    ] {
        // By the primary key, not through the index of leased rows.
        let plan = assert_plan(&store, statement, "issuances", &[BY_ID]).await;
        assert!(
            !plan.iter().any(|d| d.contains("issuances_leased")),
            "{statement}: {plan:?}"
        );
    }
}

#[tokio::test]
async fn the_per_record_statements_find_their_rows_by_key() {
    let (store, _dir) = temp_store().await;
    let flag_by_key = "SEARCH flags USING INDEX sqlite_autoindex_flags_1";
    assert_plan(&store, sql::CLEAR_FLAGS, "flags", &[flag_by_key]).await;
    assert_plan(&store, sql::RAISE_FLAG, "flags", &[]).await;
}

#[tokio::test]
async fn transitions_cannot_be_rewritten() {
    let (store, _dir) = temp_store_with("INSERT INTO issuances (id) VALUES ('42')").await;
    poll_once(&store, "42", Status::Waited, vec![]).await;
    assert!(
        sqlx::query("UPDATE transitions SET to_status = 'DONE'")
            .execute(store.pool())
            .await
            .is_err()
    );
}
