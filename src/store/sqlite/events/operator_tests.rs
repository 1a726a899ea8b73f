//! What operators see of deliveries and do with them: what each undelivered
//! one waits for (retrying, given up, sink disabled, sink removed), since when
//! a sink fails, discarding a removed sink's deliveries, and redelivering any
//! event, those about no issuance (`balance.low`) included.

use chrono::Utc;

use crate::domain::DeliveryState;
use crate::store::sqlite::sql;
use crate::store::testing::{assert_plan, temp_store};
use crate::store::{AttemptRow, SinkVerdict, Store};

/// A failed attempt at `seq` (given up if `given_up`).
fn failed(seq: i64, given_up: bool) -> AttemptRow {
    AttemptRow {
        seq,
        attempted_at: "2026-12-05T10:00:00.000Z".into(),
        status: Some(503),
        error: Some("HTTP 503".into()),
        next_attempt_at: (!given_up).then(|| "2026-12-05T10:00:05.000Z".into()),
        delivered_at: None,
        failed_at: given_up.then(|| "2026-12-05T10:00:00.000Z".into()),
        ..AttemptRow::default()
    }
}

/// Two balance.low events (seq 1, 2), admitted for each of `sinks`.
async fn two_events_for(store: &Store, sinks: &[&str]) {
    for name in sinks {
        store.register_sink(name).await.unwrap();
    }
    let now = Utc::now();
    for balance in [300, 200] {
        store.record_balance(now, 900, 0, None).await.unwrap();
        store
            .record_balance(now, balance, 0, Some(500))
            .await
            .unwrap();
    }
    for name in sinks {
        store
            .admit_events(name, &["balance.low"], now, 100)
            .await
            .unwrap();
    }
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn an_event_about_no_issuance_is_redelivered_like_any_other() {
    let (store, _dir) = temp_store().await;
    two_events_for(&store, &["shop"]).await;
    let delivered = AttemptRow {
        delivered_at: Some("2026-12-05T10:00:00.000Z".into()),
        status: Some(204),
        error: None,
        next_attempt_at: None,
        failed_at: None,
        ..failed(1, false)
    };
    store
        .record_attempts("shop", &[delivered], Some(SinkVerdict::Answered), None)
        .await
        .unwrap();
    let now = Utc::now();
    let shop = names(&["shop"]);
    assert!(store.redeliver(&shop, 1, now).await.unwrap());
    let due: Vec<(i64, String)> = store
        .due_deliveries("shop", now, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.seq, d.issuance_id))
        .collect();
    // Ordered among the events about no issuance: 1 again before 2.
    assert_eq!(due, [(1, String::new())]);
    // To a sink that never had it, too (a new delivery row).
    assert!(store.redeliver(&names(&["erp"]), 2, now).await.unwrap());
    assert_eq!(store.due_deliveries("erp", now, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn each_undelivered_delivery_says_what_it_waits_for() {
    let (store, _dir) = temp_store().await;
    two_events_for(&store, &["shop", "off", "old"]).await;
    store
        .record_attempts("shop", &[failed(1, true), failed(2, false)], None, None)
        .await
        .unwrap();
    store
        .record_attempts("off", &[failed(1, false)], None, None)
        .await
        .unwrap();
    store
        .disable_sink("off", Utc::now(), "the receiver answered 410 Gone")
        .await
        .unwrap();
    // `old` is no longer configured; its deliveries were never attempted.
    let configured = names(&["shop", "off"]);
    let failed = store.failed_deliveries(&configured, 100).await.unwrap();
    let states: Vec<(&str, i64, DeliveryState, bool)> = failed
        .iter()
        .map(|f| (f.sink.as_str(), f.seq, f.state, f.next_attempt_at.is_some()))
        .collect();
    assert_eq!(
        states,
        [
            ("off", 1, DeliveryState::SinkDisabled, false),
            ("old", 1, DeliveryState::SinkRemoved, false),
            ("shop", 1, DeliveryState::GivenUp, false),
            ("old", 2, DeliveryState::SinkRemoved, false),
            ("shop", 2, DeliveryState::Retrying, true),
        ]
    );
    assert!(failed.iter().all(|f| f.issuance_id.is_none()));
    let backlogs = store.sink_backlogs(&configured).await.unwrap();
    let summary: Vec<(&str, i64, i64)> = backlogs
        .iter()
        .map(|b| (b.sink.name.as_str(), b.backlog.pending, b.given_up))
        .collect();
    assert_eq!(summary, [("off", 2, 0), ("old", 2, 0), ("shop", 1, 1)]);
}

#[tokio::test]
async fn a_removed_sinks_deliveries_are_discarded_for_good_but_can_be_redelivered() {
    let (store, _dir) = temp_store().await;
    two_events_for(&store, &["shop", "old"]).await;
    let configured = names(&["shop"]);
    let now = Utc::now();
    assert_eq!(store.discard("old", Some(&[2]), now).await.unwrap(), 1);
    assert_eq!(store.discard("old", None, now).await.unwrap(), 1);
    assert_eq!(store.discard("old", None, now).await.unwrap(), 0, "once");
    let failed = store.failed_deliveries(&configured, 100).await.unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    let rows: Vec<(i64, bool, bool)> = sqlx::query_as(
        "SELECT seq, discarded_at IS NOT NULL, failed_at IS NOT NULL FROM deliveries WHERE sink = 'old' ORDER BY seq",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(rows, [(1, true, true), (2, true, true)], "kept, closed");
    let backlogs = store.sink_backlogs(&configured).await.unwrap();
    assert_eq!(backlogs[0].sink.name, "old");
    assert_eq!((backlogs[0].backlog.pending, backlogs[0].given_up), (0, 0));
    // The configured sink's deliveries were not touched.
    assert_eq!(
        store.due_deliveries("shop", now, 10).await.unwrap().len(),
        1
    );
    // A discarded delivery opens again when its event is redelivered.
    assert!(store.redeliver(&names(&["old"]), 1, now).await.unwrap());
    assert_eq!(store.due_deliveries("old", now, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_sink_fails_from_its_first_failed_attempt_after_a_2xx_until_the_next_2xx() {
    let (store, _dir) = temp_store().await;
    store.register_sink("shop").await.unwrap();
    let at = |s: &str| crate::domain::timefmt::from_db(s).unwrap();
    let failing = |t, problem| Some(SinkVerdict::Failing { at: t, problem });
    for (t, problem) in [
        ("2026-12-05T10:00:00.000Z", "HTTP 503"),
        ("2026-12-05T10:05:00.000Z", "cannot connect"),
    ] {
        store
            .record_attempts("shop", &[], failing(at(t), problem), None)
            .await
            .unwrap();
    }
    let row = store.sink("shop").await.unwrap().unwrap();
    assert_eq!(
        (row.failing_since.as_deref(), row.last_problem.as_deref()),
        (Some("2026-12-05T10:00:00.000Z"), Some("cannot connect"))
    );
    store
        .record_attempts("shop", &[], Some(SinkVerdict::Answered), None)
        .await
        .unwrap();
    let row = store.sink("shop").await.unwrap().unwrap();
    assert_eq!((row.failing_since, row.last_problem), (None, None));
}

#[tokio::test]
async fn the_operator_reads_and_writes_use_indexes() {
    let (store, _dir) = temp_store().await;
    assert_plan(
        &store,
        sql::SINK_GIVEN_UP,
        "deliveries",
        &["deliveries_failed"],
    )
    .await;
    assert_plan(
        &store,
        sql::DISCARD,
        "deliveries",
        &["sqlite_autoindex_deliveries_1"],
    )
    .await;
}
