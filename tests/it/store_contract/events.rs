//! The outbox and a sink worker's deliveries: events read after a cursor, by
//! issuance and counted; a sink admitting only its types, from its cursor,
//! once (two daemons at once included); each issuance's deliveries in order;
//! attempts failing, retried, delivered and given up; a failing sink's
//! backlog due at once when it answers again.
//!
//! Events are made as production makes them: the triggers on `transitions`,
//! `flags` and `issuances.watch`, and a `balance.low` inserted into `events`
//! (what the daemon's `record_balance` does), written as plain SQL.

use chrono::{DateTime, Utc};
use issuance_watcher::domain::timefmt::from_db;
use issuance_watcher::store::{Access, AttemptRow, SinkVerdict, Store};

use super::Engine;

pub(super) const STATUS: &str = "issuance.status_changed";

pub(super) fn at(text: &str) -> DateTime<Utc> {
    from_db(text).expect("an instant")
}

/// Issuances a and b; a WAITED then READY, b WAITED then OVERDUE: events
/// 1 (a), 2 (a), 3 (b) status_changed and 4 (b) overdue.
pub(super) async fn two_issuances(e: &Engine) {
    e.exec(
        "INSERT INTO issuances (id) VALUES ('a');
         INSERT INTO issuances (id) VALUES ('b');
         INSERT INTO transitions (issuance_id, to_status, observed_at) VALUES ('a', 'WAITED', '2026-12-02T00:00:00.000Z');
         INSERT INTO transitions (issuance_id, from_status, to_status, observed_at) VALUES ('a', 'WAITED', 'READY', '2026-12-02T00:01:00.000Z');
         INSERT INTO transitions (issuance_id, to_status, observed_at) VALUES ('b', 'WAITED', '2026-12-02T00:02:00.000Z');
         INSERT INTO flags (issuance_id, kind, raised_at) VALUES ('b', 'OVERDUE', '2026-12-02T00:03:00.000Z')",
    )
    .await;
}

/// A balance.low event (about no issuance), as the daemon writes one.
pub(super) async fn balance_low(e: &Engine) {
    e.exec(
        "INSERT INTO events (type, issuance_id, occurred_at, data)
         VALUES ('balance.low', NULL, '2026-12-05T09:00:00.000Z', '{\"balance\":300,\"threshold\":500}')",
    )
    .await;
}

/// One attempt at `seq` at `t`: delivered (`status` 2xx), retried at `next`,
/// or given up (`next` None and not 2xx).
pub(super) fn attempt(seq: i64, t: &str, status: u16, next: Option<&str>) -> AttemptRow {
    let ok = (200..300).contains(&status);
    AttemptRow {
        seq,
        attempted_at: t.into(),
        status: Some(status),
        error: (!ok).then(|| format!("HTTP {status}")),
        next_attempt_at: next.map(Into::into),
        delivered_at: ok.then(|| t.into()),
        failed_at: (!ok && next.is_none()).then(|| t.into()),
        duration_ms: 25,
        response: Some(format!("answer to {seq}")),
    }
}

pub(super) async fn due(store: &Store, sink: &str, now: &str) -> Vec<(String, i64)> {
    store
        .due_deliveries(sink, at(now), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.issuance_id, d.seq))
        .collect()
}

/// What `events_after`, `events_of`, `last_event_seq` and
/// `event_counts_after` read, and the events' ids, times and data.
pub async fn events_are_read_after_a_cursor_by_issuance_and_counted(e: Engine) {
    let n = e.name;
    assert_eq!(e.store.last_event_seq().await.unwrap(), 0, "{n}");
    two_issuances(&e).await;
    balance_low(&e).await;
    let all = e.store.events_after(0, 100).await.unwrap();
    let seen: Vec<(i64, Option<&str>, &str)> = all
        .iter()
        .map(|ev| (ev.seq, ev.issuance_id.as_deref(), ev.event_type.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, Some("a"), STATUS),
            (2, Some("a"), STATUS),
            (3, Some("b"), STATUS),
            (4, Some("b"), "issuance.overdue"),
            (5, None, "balance.low"),
        ],
        "{n}"
    );
    let second = &all[1];
    assert_eq!(second.occurred_at, "2026-12-02T00:01:00.000Z", "{n}");
    assert_eq!(
        (
            &second.data["from_status"],
            &second.data["to_status"],
            &second.data["observed_at"]
        ),
        (
            &serde_json::json!("WAITED"),
            &serde_json::json!("READY"),
            &serde_json::json!("2026-12-02T00:01:00.000Z")
        ),
        "{n}"
    );
    assert_eq!(
        all[4].data,
        serde_json::json!({"balance": 300, "threshold": 500}),
        "{n}"
    );
    assert!(
        all.iter()
            .all(|ev| ev.id.starts_with("evt_") && ev.id.len() == 36),
        "{n}: {all:?}"
    );
    let page: Vec<i64> = e
        .store
        .events_after(2, 2)
        .await
        .unwrap()
        .iter()
        .map(|ev| ev.seq)
        .collect();
    assert_eq!(page, [3, 4], "{n}: after the cursor, at most the limit");
    let of_b: Vec<i64> = e
        .store
        .events_of("b")
        .await
        .unwrap()
        .iter()
        .map(|ev| ev.seq)
        .collect();
    assert_eq!(of_b, [3, 4], "{n}");
    assert_eq!(e.store.last_event_seq().await.unwrap(), 5, "{n}");
    assert_eq!(
        e.store.event_counts_after(1).await.unwrap(),
        [
            ("balance.low".to_owned(), 1, 5),
            ("issuance.overdue".to_owned(), 1, 4),
            (STATUS.to_owned(), 2, 3),
        ],
        "{n}"
    );
}

/// A new sink starts after the newest event, admits only the types it
/// takes, up to the limit, and each event once.
pub async fn a_sink_admits_only_its_types_from_its_cursor_once(e: Engine) {
    let n = e.name;
    e.exec(
        "INSERT INTO issuances (id) VALUES ('old');
         INSERT INTO transitions (issuance_id, to_status, observed_at) VALUES ('old', 'WAITED', '2026-12-01T00:00:00.000Z')",
    )
    .await;
    let row = e.store.register_sink("shop").await.unwrap();
    assert_eq!(row.admitted_seq, 1, "{n}: starts after the newest event");
    assert_eq!(
        e.store.register_sink("shop").await.unwrap(),
        row,
        "{n}: registering again changes nothing"
    );
    two_issuances(&e).await;
    let now = at("2026-12-05T10:00:00.000Z");
    let looked = e
        .store
        .admit_events("shop", &[STATUS], now, 2)
        .await
        .unwrap();
    assert_eq!(looked, 2, "{n}: the limit");
    assert_eq!(
        e.store.sink("shop").await.unwrap().unwrap().admitted_seq,
        3,
        "{n}"
    );
    let looked = e
        .store
        .admit_events("shop", &[STATUS], now, 100)
        .await
        .unwrap();
    assert_eq!(looked, 2, "{n}");
    assert_eq!(
        e.store
            .admit_events("shop", &[STATUS], now, 100)
            .await
            .unwrap(),
        0,
        "{n}: caught up"
    );
    assert_eq!(
        e.rows(
            "SELECT CAST(seq AS TEXT), issuance_id FROM deliveries WHERE sink = 'shop' ORDER BY seq"
        )
        .await,
        [
            [Some("2".to_owned()), Some("a".to_owned())],
            [Some("3".to_owned()), Some("a".to_owned())],
            [Some("4".to_owned()), Some("b".to_owned())],
        ],
        "{n}: the overdue (5) is not for this sink, the old event (1) before it"
    );
    assert_eq!(
        e.store.sink("shop").await.unwrap().unwrap().admitted_seq,
        5,
        "{n}"
    );
    assert!(e.store.sink("nobody").await.unwrap().is_none(), "{n}");
    let names: Vec<String> = e
        .store
        .sinks()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["shop"], "{n}");
}

/// Two daemons admitting for one sink at once look at each event once: the
/// events they say they looked at add up to the events there are.
pub async fn two_daemons_admitting_at_once_admit_each_event_once(e: Engine) {
    let n = e.name;
    let other = e.another(Access::Write).await;
    e.store.register_sink("shop").await.unwrap();
    let mut sql = String::new();
    for i in 0..60 {
        sql += &format!(
            "INSERT INTO issuances (id) VALUES ('i{i}');
             INSERT INTO transitions (issuance_id, to_status, observed_at) VALUES ('i{i}', 'WAITED', '2026-12-02T00:00:00.000Z');"
        );
    }
    e.exec(Box::leak(sql.into_boxed_str())).await;
    let now = at("2026-12-05T10:00:00.000Z");
    let admit = async |store: &Store| {
        let mut looked = 0;
        // Every round admits at least one of the 60 events or ends the drain.
        for _ in 0..=60 {
            let more = store.admit_events("shop", &[STATUS], now, 3).await.unwrap();
            if more == 0 {
                return looked;
            }
            looked += more;
        }
        panic!("events still admitted after 60 rounds")
    };
    let (a, b) = tokio::join!(admit(&e.store), admit(&other));
    assert_eq!(a + b, 60, "{n}: each event looked at once ({a} + {b})");
    assert_eq!(
        e.rows("SELECT CAST(count(*) AS TEXT), CAST(count(DISTINCT seq) AS TEXT) FROM deliveries")
            .await,
        [[Some("60".to_owned()), Some("60".to_owned())]],
        "{n}"
    );
    other.close().await;
}

/// A later event of an issuance waits for the earlier one to be delivered
/// or given up; a failed attempt is due again at its next attempt; the
/// receiver back makes every open delivery due at once.
pub async fn each_issuances_deliveries_go_out_in_order(e: Engine) {
    let n = e.name;
    e.store.register_sink("shop").await.unwrap();
    two_issuances(&e).await;
    let t0 = "2026-12-05T10:00:00.000Z";
    e.store
        .admit_events("shop", &[STATUS], at(t0), 100)
        .await
        .unwrap();
    let a = || "a".to_owned();
    let b = || "b".to_owned();
    assert_eq!(
        due(&e.store, "shop", t0).await,
        [(a(), 1), (b(), 3)],
        "{n}: a's READY (2) waits for its WAITED (1)"
    );
    assert_eq!(
        due(&e.store, "shop", "2026-12-05T09:59:59.999Z").await,
        [],
        "{n}: not due before it was admitted"
    );
    let retry_at = "2026-12-05T10:05:00.000Z";
    e.store
        .record_attempts(
            "shop",
            &[
                attempt(1, t0, 503, Some(retry_at)),
                attempt(3, t0, 204, None),
            ],
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        due(&e.store, "shop", t0).await,
        [],
        "{n}: 1 retries later, 2 still waits for it"
    );
    assert_eq!(
        e.store.next_delivery_due("shop").await.unwrap(),
        Some(at(t0)),
        "{n}: the earliest open delivery, one that waits for its issuance's included"
    );
    assert_eq!(due(&e.store, "shop", retry_at).await, [(a(), 1)], "{n}");
    // Given up: the next event of the issuance goes out.
    e.store
        .record_attempts("shop", &[attempt(1, retry_at, 500, None)], None, None)
        .await
        .unwrap();
    assert_eq!(due(&e.store, "shop", retry_at).await, [(a(), 2)], "{n}");
    let d = &e
        .store
        .due_deliveries("shop", at(retry_at), 10)
        .await
        .unwrap()[0];
    assert_eq!(
        (
            d.event_type.as_str(),
            d.occurred_at.as_str(),
            d.attempts,
            d.created_at.as_str()
        ),
        (STATUS, "2026-12-02T00:01:00.000Z", 0, t0),
        "{n}"
    );
    let data: serde_json::Value = serde_json::from_str(&d.data).unwrap();
    assert_eq!(data["to_status"], "READY", "{n}");
    assert!(
        !d.data.contains(": "),
        "{n}: compact, as stored: {}",
        d.data
    );
    // Recorded once only: a late second record of an attempt changes nothing.
    e.store
        .record_attempts("shop", &[attempt(1, retry_at, 204, None)], None, None)
        .await
        .unwrap();
    assert_eq!(
        e.rows("SELECT CAST(attempts AS TEXT) FROM deliveries WHERE seq = 1")
            .await[0][0]
            .as_deref(),
        Some("2"),
        "{n}: a closed delivery is not written again"
    );
}

/// A failing sink keeps the time of its first failure after a 2xx and its
/// latest problem; when it answers again, `due_now` makes its backlog due.
pub async fn a_failing_sink_answering_again_makes_its_backlog_due_at_once(e: Engine) {
    let n = e.name;
    e.store.register_sink("shop").await.unwrap();
    two_issuances(&e).await;
    let t0 = "2026-12-05T10:00:00.000Z";
    e.store
        .admit_events("shop", &[STATUS], at(t0), 100)
        .await
        .unwrap();
    let later = "2026-12-05T11:00:00.000Z";
    let failing =
        |t: &'static str, problem: &'static str| Some(SinkVerdict::Failing { at: at(t), problem });
    e.store
        .record_attempts(
            "shop",
            &[
                attempt(1, t0, 503, Some(later)),
                attempt(3, t0, 503, Some(later)),
            ],
            failing(t0, "HTTP 503"),
            None,
        )
        .await
        .unwrap();
    e.store
        .record_attempts(
            "shop",
            &[],
            failing("2026-12-05T10:05:00.000Z", "cannot connect"),
            None,
        )
        .await
        .unwrap();
    let row = e.store.sink("shop").await.unwrap().unwrap();
    assert_eq!(
        (row.failing_since.as_deref(), row.last_problem.as_deref()),
        (Some(t0), Some("cannot connect")),
        "{n}"
    );
    let activity = e.store.sink_activity("shop").await.unwrap();
    assert_eq!(
        (activity.last_delivered_at, activity.open_attempts),
        (None, 2),
        "{n}"
    );
    let t1 = "2026-12-05T10:06:00.000Z";
    assert_eq!(due(&e.store, "shop", t1).await, [], "{n}");
    e.store
        .record_attempts("shop", &[], Some(SinkVerdict::Answered), Some(at(t1)))
        .await
        .unwrap();
    let row = e.store.sink("shop").await.unwrap().unwrap();
    assert_eq!((row.failing_since, row.last_problem), (None, None), "{n}");
    assert_eq!(
        due(&e.store, "shop", t1).await,
        [("a".to_owned(), 1), ("b".to_owned(), 3)],
        "{n}: due at once"
    );
    assert_eq!(
        e.store.next_delivery_due("shop").await.unwrap(),
        Some(at(t0)),
        "{n}: 2 was due all along (waiting for 1), not moved"
    );
    e.store
        .record_attempts(
            "shop",
            &[attempt(1, t1, 200, None)],
            Some(SinkVerdict::Answered),
            None,
        )
        .await
        .unwrap();
    let activity = e.store.sink_activity("shop").await.unwrap();
    assert_eq!(
        (
            activity.last_delivered_at.as_deref(),
            activity.open_attempts
        ),
        (Some(t1), 1),
        "{n}"
    );
}
