//! The balance history and its `balance.low` event, and what becomes of the
//! requests in flight of a performer that is gone.

use chrono::{Duration, Utc};
use issuance_watcher::store::{Access, OpenCharge};

use super::{Engine, at, refused};

/// Each balance answer is a row of `balance_history`; a `balance.low` event,
/// about no issuance, goes with it only when the caller says it crossed
/// (watcher/balance.rs decides when), in the same transaction.
pub async fn a_balance_is_recorded_and_low_only_when_said(e: Engine) {
    assert_eq!(e.store.last_balance().await.unwrap(), None, "{}", e.name);
    let first = at("2026-12-05T01:00:00.000Z");
    let crossed = at("2026-12-05T02:03:04.567Z");
    e.store.record_balance(first, 900, 10, None).await.unwrap();
    e.store
        .record_balance(crossed, 400, 20, Some(500))
        .await
        .unwrap();
    assert_eq!(
        e.store.last_balance().await.unwrap(),
        Some(400),
        "{}",
        e.name
    );
    assert_eq!(
        e.rows(
            "SELECT CAST(balance AS TEXT), CAST(expiring_30d AS TEXT) FROM balance_history ORDER BY seq"
        )
        .await,
        [["900", "10"], ["400", "20"]].map(|r| r.map(|s| Some(s.to_owned()))),
        "{}",
        e.name
    );
    let events = e
        .rows("SELECT type, issuance_id, CAST(data AS TEXT) FROM events")
        .await;
    assert_eq!(
        events.len(),
        1,
        "{}: one event, for the crossing: {events:?}",
        e.name
    );
    assert_eq!(
        (events[0][0].as_deref(), events[0][1].as_deref()),
        (Some("balance.low"), None),
        "{}",
        e.name
    );
    let data: serde_json::Value = serde_json::from_str(events[0][2].as_deref().unwrap()).unwrap();
    assert_eq!(
        data,
        serde_json::json!({
            "balance": 400, "threshold": 500, "expiring_30d": 20,
            "observed_at": "2026-12-05T02:03:04.567Z"
        }),
        "{}: the same data on both engines",
        e.name
    );
    // Still low: no new crossing, no new event.
    e.store
        .record_balance(crossed, 300, 20, None)
        .await
        .unwrap();
    assert_eq!(
        e.store.last_balance().await.unwrap(),
        Some(300),
        "{}",
        e.name
    );
    assert_eq!(
        super::one(&e, "SELECT CAST(count(*) AS TEXT) FROM events")
            .await
            .as_deref(),
        Some("1"),
        "{}",
        e.name
    );
}

/// A performer that is gone (its store closed; it never held an ownership,
/// so its liveness is dead or undecided, and its requests were sent before
/// `stale_before`) leaves its requests in flight `unknown`, never pending:
/// nobody sends them again, and they block new charges. Its settled requests
/// and the sweeper's own are left alone.
pub async fn a_gone_performers_requests_in_flight_become_unknown(e: Engine) {
    let now = Utc::now();
    let gone = e.another(Access::Write).await;
    let in_flight = gone.start_charge_request(5000, false, now).await.unwrap();
    let done = gone.start_charge_request(6000, false, now).await.unwrap();
    gone.finish_charge_request(done, refused(), now, now)
        .await
        .unwrap();
    gone.close().await;
    let mine = e
        .store
        .start_charge_request(7000, false, now)
        .await
        .unwrap();
    let swept = e
        .store
        .sweep_charge_requests(now, now + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(swept, 1, "{}", e.name);
    let state = async |id| {
        let row = e.store.charge_request(id).await.unwrap().unwrap();
        (row.state, row.error_code)
    };
    assert_eq!(
        state(in_flight).await,
        ("unknown".to_owned(), Some("PERFORMER_DIED".to_owned())),
        "{}",
        e.name
    );
    assert_eq!(state(done).await.0, "refused", "{}", e.name);
    assert_eq!(state(mine).await.0, "sending", "{}", e.name);
    assert!(
        e.store
            .charge_request(in_flight)
            .await
            .unwrap()
            .unwrap()
            .finished_at
            .is_some(),
        "{}",
        e.name
    );
    assert!(
        matches!(
            e.store.open_charge(mine, 10_000_000).await.unwrap(),
            Some(OpenCharge::Unknown { id, .. }) if id == in_flight
        ),
        "{}",
        e.name
    );
    assert_eq!(
        e.store.claim_charge_request(now).await.unwrap(),
        None,
        "{}",
        e.name
    );
}

/// A live performer's requests in flight are left alone, however old.
pub async fn a_live_performers_requests_are_left_alone(e: Engine) {
    let now = Utc::now();
    let live = e.another(Access::Write).await;
    let ownership = live.hold_ownership().await;
    assert!(ownership.is_held(), "{}", e.name);
    let id = live
        .start_charge_request(5000, false, now - Duration::hours(1))
        .await
        .unwrap();
    let swept = e
        .store
        .sweep_charge_requests(now, now + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(swept, 0, "{}", e.name);
    let row = e.store.charge_request(id).await.unwrap().unwrap();
    assert_eq!(row.state, "sending", "{}", e.name);
    ownership.retire().await;
}
