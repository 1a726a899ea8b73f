//! The outbox observed in the database: an event for every fact, in the same
//! transaction, in order; deliveries admitted, ordered per issuance, recorded
//! and scheduled again.

use std::time::Duration;

use chrono::Utc;

use crate::domain::Flag;
use crate::domain::status::Status;
use crate::store::sqlite::sql;
use crate::store::testing::{self, assert_plan, exec, observed, temp_store};
use crate::store::{AttemptRow, PollRecord, Store};

async fn claim_all(store: &Store) -> Vec<crate::store::Claimed> {
    testing::claim_all(store, Utc::now() + chrono::Duration::days(1)).await
}

async fn insert(store: &Store, ids: &[&str]) {
    for id in ids {
        sqlx::query("INSERT INTO issuances (id) VALUES (?)")
            .bind(id)
            .execute(store.pool())
            .await
            .unwrap();
    }
}

fn types(events: &[crate::store::EventRow]) -> Vec<(&str, &str)> {
    events
        .iter()
        .map(|e| {
            (
                e.issuance_id.as_deref().unwrap_or(""),
                e.event_type.as_str(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_transition_and_flag_writes_its_event_in_the_order_of_the_facts() {
    let (store, _dir) = temp_store().await;
    insert(&store, &["a", "b"]).await;
    let lead = Duration::from_secs(3 * 3600);
    let batch: Vec<PollRecord> = claim_all(&store)
        .await
        .into_iter()
        .map(|c| {
            let flags = if c.raw_id == b"a" {
                vec![Flag::due_soon(lead)]
            } else {
                vec![]
            };
            observed(Status::Ready, c, flags)
        })
        .collect();
    store.record(&batch).await.unwrap();
    let events = store.events_after(0, 100).await.unwrap();
    let of_a: Vec<&str> = types(&events)
        .into_iter()
        .filter(|(id, _)| *id == "a")
        .map(|(_, t)| t)
        .collect();
    assert_eq!(of_a, ["issuance.status_changed", "issuance.due_soon"]);
    assert_eq!(events.len(), 3, "{events:?}");
    let changed = &events
        .iter()
        .find(|e| e.issuance_id.as_deref() == Some("a"))
        .unwrap()
        .data;
    assert_eq!(changed["from_status"], serde_json::Value::Null);
    assert_eq!(changed["to_status"], "READY");
    assert_eq!(changed["amount"], 10_000);
    assert_eq!(changed["vbank"]["account_number"], "451235741265");
    let due_soon = events
        .iter()
        .find(|e| e.event_type == "issuance.due_soon")
        .unwrap();
    assert_eq!(
        (
            due_soon.data["lead"].as_str(),
            due_soon.data["lead_seconds"].as_i64()
        ),
        (Some("3h"), Some(10_800))
    );
    // The same flag again raises nothing and announces nothing.
    exec(
        &store,
        "UPDATE issuances SET next_poll_at = '2000-01-01T00:00:00.000Z'",
    )
    .await;
    let mut claimed = claim_all(&store).await;
    claimed.retain(|c| c.raw_id == b"a");
    let again = observed(Status::Ready, claimed.remove(0), vec![Flag::due_soon(lead)]);
    store.record(&[again]).await.unwrap();
    assert_eq!(store.events_after(0, 100).await.unwrap().len(), 3);
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(
        events
            .iter()
            .all(|e| e.id.starts_with("evt_") && !e.id.contains('.'))
    );
}

#[tokio::test]
async fn an_event_exists_if_and_only_if_its_fact_does() {
    let (store, _dir) = temp_store().await;
    insert(&store, &["x"]).await;
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query("INSERT INTO transitions (issuance_id, to_status, observed_at) VALUES ('x', 'WAITED', '2026-12-02T00:00:00.000Z')")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO flags (issuance_id, kind, raised_at) VALUES ('x', 'OVERDUE', '2026-12-02T00:00:00.000Z')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(store.events_after(0, 10).await.unwrap().is_empty());
    // Written by another program, outside the watcher: announced all the same.
    exec(&store, "INSERT INTO transitions (issuance_id, to_status, observed_at) VALUES ('x', 'WAITED', '2026-12-02T00:00:00.000Z')").await;
    exec(
        &store,
        "UPDATE issuances SET watch = 'not_found', last_error = '404 for 10m' WHERE id = 'x'",
    )
    .await;
    let events = store.events_after(0, 10).await.unwrap();
    assert_eq!(
        types(&events),
        [
            ("x", "issuance.status_changed"),
            ("x", "issuance.watch_ended")
        ]
    );
    assert_eq!(events[1].data["reason"], "not_found");
    assert_eq!(events[1].data["detail"], "404 for 10m");
    let update = sqlx::query("UPDATE events SET type = 'x'")
        .execute(store.pool())
        .await;
    assert!(update.is_err(), "events are append-only");
    exec(&store, "DELETE FROM issuances WHERE id = 'x'").await;
    assert!(store.events_after(0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_sink_starts_after_the_newest_event_and_gets_each_issuances_events_in_order() {
    let (store, _dir) = temp_store().await;
    insert(&store, &["old", "a", "b"]).await;
    let transition = async |id: &str, to: &str| {
        sqlx::query(
            "INSERT INTO transitions (issuance_id, to_status, observed_at) VALUES (?, ?, '2026-12-02T00:00:00.000Z')",
        )
        .bind(id)
        .bind(to)
        .execute(store.pool())
        .await
        .unwrap();
    };
    transition("old", "WAITED").await;
    let sink = store.register_sink("shop").await.unwrap();
    assert_eq!(sink.admitted_seq, 1);
    transition("a", "WAITED").await;
    transition("a", "READY").await;
    transition("b", "WAITED").await;
    exec(
        &store,
        "INSERT INTO flags (issuance_id, kind, raised_at) VALUES ('b', 'OVERDUE', 'x')",
    )
    .await;
    let now = Utc::now();
    let looked = store
        .admit_events("shop", &["issuance.status_changed"], now, 1000)
        .await
        .unwrap();
    assert_eq!(looked, 4);
    assert_eq!(
        store
            .admit_events("shop", &["issuance.status_changed"], now, 1000)
            .await
            .unwrap(),
        0
    );
    let due = store.due_deliveries("shop", now, 10).await.unwrap();
    let due: Vec<(String, i64)> = due.into_iter().map(|d| (d.issuance_id, d.seq)).collect();
    // a's READY (seq 3) waits for its WAITED (seq 2); the OVERDUE is not for this sink.
    assert_eq!(due, [("a".to_owned(), 2), ("b".to_owned(), 4)]);
    let delivered = AttemptRow {
        seq: 2,
        attempted_at: "t".into(),
        status: Some(204),
        error: None,
        next_attempt_at: None,
        delivered_at: Some("t".into()),
        failed_at: None,
        ..AttemptRow::default()
    };
    let retry = AttemptRow {
        seq: 4,
        status: Some(503),
        error: Some("HTTP 503".into()),
        next_attempt_at: Some("2999-01-01T00:00:00.000Z".into()),
        delivered_at: None,
        ..delivered.clone()
    };
    store
        .record_attempts("shop", &[delivered, retry], None, None)
        .await
        .unwrap();
    let due = due_seqs(&store, now).await;
    assert_eq!(due, [3]);
    let configured = ["shop".to_owned()];
    let failed = store.failed_deliveries(&configured, 10).await.unwrap();
    assert_eq!(
        (failed.len(), failed[0].seq, failed[0].last_status),
        (1, 4, Some(503))
    );
    assert_eq!(failed[0].state, crate::domain::DeliveryState::Retrying);
    let backlog = store.sink_backlog("shop").await.unwrap();
    assert_eq!(backlog.pending, 2);
    // The receiver is back: every open delivery is due at once.
    store
        .record_attempts("shop", &[], None, Some(now))
        .await
        .unwrap();
    assert_eq!(
        store.due_deliveries("shop", now, 10).await.unwrap().len(),
        2
    );
    // Redelivery: a delivered event is scheduled again, as new.
    let shop = ["shop".to_owned()];
    assert!(store.redeliver(&shop, 2, now).await.unwrap());
    assert!(
        !store.redeliver(&shop, 999, now).await.unwrap(),
        "no such event"
    );
    let due = due_seqs(&store, now).await;
    assert_eq!(due, [2, 4]);
}

#[tokio::test]
async fn the_delivery_reads_use_their_partial_indexes() {
    let (store, _dir) = temp_store().await;
    let by_issuance = "USING INDEX deliveries_open_by_issuance";
    let plan = assert_plan(&store, sql::DUE_DELIVERIES, "deliveries", &[by_issuance]).await;
    assert!(
        plan.iter().any(|d| d.contains("deliveries_open ")
            || d.contains("deliveries_open (")
            || d.ends_with("deliveries_open")),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|d| d.starts_with("SCAN")), "{plan:?}");
}

/// The seqs of the deliveries due to `shop` at `now`, in delivery order.
async fn due_seqs(store: &Store, now: chrono::DateTime<Utc>) -> Vec<i64> {
    store
        .due_deliveries("shop", now, 10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.seq)
        .collect()
}
