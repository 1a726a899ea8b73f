//! Sinks and deliveries as operators see and change them: what each
//! undelivered delivery waits for, discarding and redelivering, disabling
//! and enabling a sink, and its backlog and activity.

use issuance_watcher::domain::DeliveryState;
use issuance_watcher::store::SinkVerdict;

use super::Engine;
use super::events::{STATUS, at, attempt, balance_low, due, two_issuances};

const T0: &str = "2026-12-05T10:00:00.000Z";
const LATER: &str = "2026-12-05T10:00:05.000Z";

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| (*s).to_owned()).collect()
}

/// Two balance.low events (seq 1, 2), admitted for each of `sinks`.
async fn two_events_for(e: &Engine, sinks: &[&str]) {
    for name in sinks {
        e.store.register_sink(name).await.unwrap();
    }
    balance_low(e).await;
    balance_low(e).await;
    for name in sinks {
        e.store
            .admit_events(name, &["balance.low"], at(T0), 100)
            .await
            .unwrap();
    }
}

pub async fn each_undelivered_delivery_says_what_it_waits_for(e: Engine) {
    let n = e.name;
    two_events_for(&e, &["shop", "off", "old"]).await;
    e.store
        .record_attempts(
            "shop",
            &[attempt(1, T0, 503, None), attempt(2, T0, 503, Some(LATER))],
            None,
            None,
        )
        .await
        .unwrap();
    e.store
        .record_attempts("off", &[attempt(1, T0, 503, Some(LATER))], None, None)
        .await
        .unwrap();
    e.store
        .disable_sink("off", at(T0), "the receiver answered 410 Gone")
        .await
        .unwrap();
    // `old` is no longer configured; its deliveries were never attempted.
    let configured = names(&["shop", "off"]);
    let failed = e.store.failed_deliveries(&configured, 100).await.unwrap();
    let states: Vec<(&str, i64, DeliveryState, Option<&str>)> = failed
        .iter()
        .map(|f| {
            (
                f.sink.as_str(),
                f.seq,
                f.state,
                f.next_attempt_at.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("off", 1, DeliveryState::SinkDisabled, None),
            ("old", 1, DeliveryState::SinkRemoved, None),
            ("shop", 1, DeliveryState::GivenUp, None),
            ("old", 2, DeliveryState::SinkRemoved, None),
            ("shop", 2, DeliveryState::Retrying, Some(LATER)),
        ],
        "{n}"
    );
    let given_up = &failed[2];
    assert_eq!(
        (
            given_up.issuance_id.as_deref(),
            given_up.event_type.as_str(),
            given_up.attempts,
            given_up.last_status,
            given_up.last_error.as_deref(),
            given_up.last_attempt_at.as_deref(),
            given_up.failed_at.as_deref(),
            given_up.occurred_at.as_str(),
        ),
        (
            None,
            "balance.low",
            1,
            Some(503),
            Some("HTTP 503"),
            Some(T0),
            Some(T0),
            "2026-12-05T09:00:00.000Z"
        ),
        "{n}"
    );
    assert_eq!(failed[0].sink_disabled_at.as_deref(), Some(T0), "{n}");
    assert_eq!(
        e.store
            .failed_deliveries(&configured, 2)
            .await
            .unwrap()
            .len(),
        2,
        "{n}: the limit"
    );
    let backlogs = e.store.sink_backlogs(&configured).await.unwrap();
    let summary: Vec<(&str, i64, i64)> = backlogs
        .iter()
        .map(|b| (b.sink.name.as_str(), b.backlog.pending, b.given_up))
        .collect();
    assert_eq!(
        summary,
        [("off", 2, 0), ("old", 2, 0), ("shop", 1, 1)],
        "{n}"
    );
}

pub async fn a_removed_sinks_deliveries_are_discarded_for_good_but_can_be_redelivered(e: Engine) {
    let n = e.name;
    two_events_for(&e, &["shop", "old"]).await;
    let configured = names(&["shop"]);
    let now = at(T0);
    assert_eq!(
        e.store.discard("old", Some(&[2]), now).await.unwrap(),
        1,
        "{n}"
    );
    assert_eq!(e.store.discard("old", None, now).await.unwrap(), 1, "{n}");
    assert_eq!(
        e.store.discard("old", None, now).await.unwrap(),
        0,
        "{n}: once"
    );
    let failed = e.store.failed_deliveries(&configured, 100).await.unwrap();
    assert!(failed.is_empty(), "{n}: {failed:?}");
    assert_eq!(
        e.rows(
            "SELECT CAST(seq AS TEXT),
                    CASE WHEN discarded_at IS NULL THEN 'open' ELSE 'discarded' END,
                    CASE WHEN failed_at IS NULL THEN 'open' ELSE 'closed' END
             FROM deliveries WHERE sink = 'old' ORDER BY seq"
        )
        .await,
        [
            ["1", "discarded", "closed"].map(|s| Some(s.to_owned())),
            ["2", "discarded", "closed"].map(|s| Some(s.to_owned())),
        ],
        "{n}: kept, closed"
    );
    let backlogs = e.store.sink_backlogs(&configured).await.unwrap();
    assert_eq!(backlogs[0].sink.name, "old", "{n}");
    assert_eq!(
        (backlogs[0].backlog.pending, backlogs[0].given_up),
        (0, 0),
        "{n}"
    );
    assert_eq!(
        due(&e.store, "shop", T0).await.len(),
        1,
        "{n}: the configured sink's deliveries were not touched"
    );
    assert!(
        e.store.redeliver(&names(&["old"]), 1, now).await.unwrap(),
        "{n}"
    );
    assert_eq!(
        due(&e.store, "old", T0).await,
        [(String::new(), 1)],
        "{n}: open again"
    );
}

pub async fn any_event_is_redelivered_as_new_in_its_issuances_order(e: Engine) {
    let n = e.name;
    two_events_for(&e, &["shop"]).await;
    e.store
        .record_attempts(
            "shop",
            &[attempt(1, T0, 204, None)],
            Some(SinkVerdict::Answered),
            None,
        )
        .await
        .unwrap();
    assert_eq!(due(&e.store, "shop", T0).await, [(String::new(), 2)], "{n}");
    let now = at(LATER);
    let shop = names(&["shop"]);
    assert!(e.store.redeliver(&shop, 1, now).await.unwrap(), "{n}");
    assert!(
        !e.store.redeliver(&shop, 999, now).await.unwrap(),
        "{n}: no such event"
    );
    // Ordered among the events about no issuance: 1 again before 2.
    assert_eq!(
        due(&e.store, "shop", LATER).await,
        [(String::new(), 1)],
        "{n}"
    );
    let d = &e.store.due_deliveries("shop", now, 10).await.unwrap()[0];
    assert_eq!(
        (d.attempts, d.created_at.as_str()),
        (0, LATER),
        "{n}: as new"
    );
    // To a sink that never had it, registered on the way.
    assert!(
        e.store.redeliver(&names(&["erp"]), 2, now).await.unwrap(),
        "{n}"
    );
    assert!(e.store.sink("erp").await.unwrap().is_some(), "{n}");
    assert_eq!(
        due(&e.store, "erp", LATER).await,
        [(String::new(), 2)],
        "{n}"
    );
}

pub async fn a_sink_is_disabled_and_enabled_with_its_backlog_due_at_once(e: Engine) {
    let n = e.name;
    // By hand, before any daemon registered it: registered after the newest event.
    balance_low(&e).await;
    let before = e
        .store
        .disable_sink_by_hand("erp", at(T0), "by hand")
        .await
        .unwrap();
    assert_eq!((before.admitted_seq, before.disabled_at), (1, None), "{n}");
    let again = e
        .store
        .disable_sink_by_hand("erp", at(LATER), "again")
        .await
        .unwrap();
    assert_eq!(
        (
            again.disabled_at.as_deref(),
            again.disabled_reason.as_deref()
        ),
        (Some(T0), Some("by hand")),
        "{n}: keeps its time and reason"
    );
    assert_eq!(e.store.sink("erp").await.unwrap().unwrap(), again, "{n}");
    assert!(
        e.store
            .enable_sink("nobody", at(T0))
            .await
            .unwrap()
            .is_none(),
        "{n}"
    );
    // A 410 while deliveries wait; enabling makes them due at once.
    e.store.register_sink("shop").await.unwrap();
    two_issuances(&e).await;
    e.store
        .admit_events("shop", &[STATUS], at(T0), 100)
        .await
        .unwrap();
    let far = "2026-12-06T00:00:00.000Z";
    e.store
        .record_attempts("shop", &[attempt(2, T0, 410, Some(far))], None, None)
        .await
        .unwrap();
    e.store
        .disable_sink("shop", at(T0), "410 Gone")
        .await
        .unwrap();
    let row = e.store.sink("shop").await.unwrap().unwrap();
    assert_eq!(
        (row.disabled_at.as_deref(), row.disabled_reason.as_deref()),
        (Some(T0), Some("410 Gone")),
        "{n}"
    );
    let before = e
        .store
        .enable_sink("shop", at(LATER))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before, row, "{n}: the row as it was");
    let row = e.store.sink("shop").await.unwrap().unwrap();
    assert_eq!(
        (&row.disabled_at, &row.disabled_reason),
        (&None, &None),
        "{n}"
    );
    assert_eq!(
        due(&e.store, "shop", LATER).await,
        [("b".to_owned(), 4), ("a".to_owned(), 2)],
        "{n}: a's retry due now, after b's (due since admitted)"
    );
    // Enabling a sink that is not disabled leaves it, and its deliveries, alone.
    e.store
        .record_attempts("shop", &[attempt(2, LATER, 503, Some(far))], None, None)
        .await
        .unwrap();
    let same = e
        .store
        .enable_sink("shop", at(LATER))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same, row, "{n}");
    assert_eq!(
        due(&e.store, "shop", LATER).await,
        [("b".to_owned(), 4)],
        "{n}: still retrying later"
    );
}

pub async fn a_sinks_backlog_counts_open_deliveries_and_events_not_admitted(e: Engine) {
    let n = e.name;
    e.store.register_sink("shop").await.unwrap();
    e.store.register_sink("old").await.unwrap();
    two_issuances(&e).await;
    e.store
        .admit_events("shop", &[STATUS], at(T0), 2)
        .await
        .unwrap();
    let backlog = e.store.sink_backlog("shop").await.unwrap();
    assert_eq!(
        (backlog.pending, backlog.oldest),
        (4, Some(at("2026-12-02T00:00:00.000Z"))),
        "{n}: 2 open, 2 not admitted"
    );
    e.store
        .admit_events("shop", &[STATUS], at(T0), 100)
        .await
        .unwrap();
    e.store
        .record_attempts(
            "shop",
            &[attempt(1, T0, 204, None), attempt(3, T0, 503, None)],
            None,
            None,
        )
        .await
        .unwrap();
    let backlog = e.store.sink_backlog("shop").await.unwrap();
    assert_eq!(
        (backlog.pending, backlog.oldest),
        (1, Some(at("2026-12-02T00:01:00.000Z"))),
        "{n}: 2 is open"
    );
    let activity = e.store.sink_activity("shop").await.unwrap();
    assert_eq!(
        (
            activity.last_delivered_at.as_deref(),
            activity.open_attempts
        ),
        (Some(T0), 0),
        "{n}"
    );
    let backlogs = e
        .store
        .sink_backlogs(&names(&["shop", "old"]))
        .await
        .unwrap();
    let summary: Vec<(&str, i64, i64, Option<_>)> = backlogs
        .iter()
        .map(|b| {
            (
                b.sink.name.as_str(),
                b.backlog.pending,
                b.given_up,
                b.backlog.oldest,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("old", 4, 0, Some(at("2026-12-02T00:00:00.000Z"))),
            ("shop", 1, 1, Some(at("2026-12-02T00:01:00.000Z"))),
        ],
        "{n}: a configured sink's unadmitted events are its backlog"
    );
    let backlogs = e.store.sink_backlogs(&names(&["shop"])).await.unwrap();
    assert_eq!(
        (backlogs[0].backlog.pending, backlogs[0].backlog.oldest),
        (0, None),
        "{n}: a sink no worker runs for admits nothing"
    );
    assert_eq!(
        e.store.sink_backlog("nobody").await.unwrap().pending,
        0,
        "{n}"
    );
}
