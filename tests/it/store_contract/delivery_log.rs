//! The delivery log, pruning, range replays and `disable_after`: each
//! attempt logged with its outcome (its answer at most 1 KiB, sanitised) and
//! read per sink; old attempts and old delivered deliveries pruned, never an
//! undelivered one; events selected by time and type; a sink failing for its
//! `disable_after` disabled once, with its `sink.disabled` event.

use std::time::Duration;

use issuance_watcher::store::{AttemptRow, EventRange, SinkVerdict};

use super::Engine;
use super::events::{STATUS, at, attempt, balance_low, two_issuances};

const T0: &str = "2026-12-05T10:00:00.000Z";
const LATER: &str = "2026-12-05T11:00:00.000Z";

/// Sinks `names` registered before `two_issuances`, each admitting its
/// status changes (seqs 1, 2, 3) at `T0`.
async fn admitted(e: &Engine, names: &[&str]) {
    for name in names {
        e.store.register_sink(name).await.unwrap();
    }
    two_issuances(e).await;
    for name in names {
        e.store
            .admit_events(name, &[STATUS], at(T0), 100)
            .await
            .unwrap();
    }
}

pub async fn each_attempt_is_logged_with_its_outcome_and_read_per_sink(e: Engine) {
    let n = e.name;
    admitted(&e, &["shop", "erp"]).await;
    let mut hostile = attempt(1, T0, 500, Some(LATER));
    // What a careless caller might pass: the store keeps 1 KiB, sanitised.
    let mut body = "bad\u{0}\u{1b}[2J\r\n".to_owned();
    body.push_str(&"가".repeat(2000));
    hostile.response = Some(body);
    e.store
        .record_attempts("shop", &[hostile], None, None)
        .await
        .unwrap();
    e.store
        .record_attempts("shop", &[attempt(1, LATER, 204, None)], None, None)
        .await
        .unwrap();
    let no_answer = AttemptRow {
        seq: 1,
        attempted_at: T0.into(),
        error: Some("timed out".into()),
        next_attempt_at: Some(LATER.into()),
        duration_ms: 15000,
        ..AttemptRow::default()
    };
    e.store
        .record_attempts("erp", &[no_answer], None, None)
        .await
        .unwrap();
    // An attempt at a delivery that does not exist is not logged (nor an error).
    e.store
        .record_attempts("shop", &[attempt(99, T0, 204, None)], None, None)
        .await
        .unwrap();
    let log = e.store.attempts_of(1).await.unwrap();
    type Seen<'a> = (&'a str, &'a str, i64, Option<i64>, Option<&'a str>);
    let seen: Vec<Seen<'_>> = log
        .iter()
        .map(|a| {
            (
                a.sink.as_str(),
                a.attempted_at.as_str(),
                a.duration_ms,
                a.http_status,
                a.error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("erp", T0, 15000, None, Some("timed out")),
            ("shop", T0, 25, Some(500), Some("HTTP 500")),
            ("shop", LATER, 25, Some(204), None),
        ],
        "{n}: by sink, then time"
    );
    assert_eq!(log[0].response, None, "{n}: no answer, no body");
    let kept = log[1].response.as_deref().unwrap();
    assert!(kept.len() <= 1024, "{n}: {} bytes kept", kept.len());
    assert!(
        kept.starts_with("bad\u{FFFD}\u{FFFD}[2J\u{FFFD}\n가"),
        "{n}: {kept:?}"
    );
    assert_eq!(log[2].response.as_deref(), Some("answer to 1"), "{n}");
    assert!(e.store.attempts_of(2).await.unwrap().is_empty(), "{n}");
    let event = e.store.event(1).await.unwrap().expect("event 1");
    assert_eq!((event.seq, event.event_type.as_str()), (1, STATUS), "{n}");
    assert!(e.store.event(99).await.unwrap().is_none(), "{n}");
}

pub async fn pruning_removes_old_attempts_and_delivered_deliveries_never_undelivered_ones(
    e: Engine,
) {
    let n = e.name;
    admitted(&e, &["shop", "erp"]).await;
    let old = "2026-11-01T00:00:00.000Z";
    let recent = "2026-12-05T09:00:00.000Z";
    // shop: 1 delivered long ago; 2 failing since long ago (still retried);
    // 3 given up long ago; erp: 1 delivered long ago (another sink).
    for (sink, rows) in [
        (
            "shop",
            vec![
                attempt(1, old, 204, None),
                attempt(2, old, 503, Some(LATER)),
                attempt(3, old, 503, None),
            ],
        ),
        ("erp", vec![attempt(1, old, 204, None)]),
    ] {
        e.store
            .record_attempts(sink, &rows, None, None)
            .await
            .unwrap();
    }
    e.store
        .record_attempts("shop", &[attempt(2, recent, 503, Some(LATER))], None, None)
        .await
        .unwrap();
    let pruned = e
        .store
        .prune_delivery_log("shop", at("2026-11-28T10:00:00.000Z"))
        .await
        .unwrap();
    assert_eq!(
        (pruned.attempts, pruned.deliveries),
        (3, 1),
        "{n}: the three old attempts, the old delivered delivery"
    );
    assert_eq!(
        e.rows("SELECT sink, CAST(seq AS TEXT) FROM deliveries ORDER BY sink, seq")
            .await,
        [
            [Some("erp".to_owned()), Some("1".to_owned())],
            [Some("erp".to_owned()), Some("2".to_owned())],
            [Some("erp".to_owned()), Some("3".to_owned())],
            [Some("shop".to_owned()), Some("2".to_owned())],
            [Some("shop".to_owned()), Some("3".to_owned())],
        ],
        "{n}: undelivered ones (open, given up) and the other sink's kept"
    );
    let shop: Vec<(String, String)> = e
        .store
        .attempts_of(2)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.sink, a.attempted_at))
        .collect();
    assert_eq!(shop, [("shop".to_owned(), recent.to_owned())], "{n}");
    assert_eq!(e.store.attempts_of(1).await.unwrap().len(), 1, "{n}: erp's");
    let again = e
        .store
        .prune_delivery_log("shop", at("2026-11-28T10:00:00.000Z"))
        .await
        .unwrap();
    assert_eq!((again.attempts, again.deliveries), (0, 0), "{n}");
}

pub async fn events_are_selected_by_time_and_type_for_a_range_replay(e: Engine) {
    let n = e.name;
    two_issuances(&e).await; // 1..4 at 2026-12-02T00:00..00:03
    balance_low(&e).await; // 5 at 2026-12-05T09:00
    let range = |since: &str, until: Option<&str>, t: Option<&str>| EventRange {
        since: at(since),
        until: until.map(at),
        event_type: t.map(str::to_owned),
    };
    let seqs = async |r: EventRange| -> Vec<i64> {
        let found = e.store.events_in_range(&r).await.unwrap();
        found.into_iter().map(|(seq, _)| seq).collect()
    };
    assert_eq!(
        seqs(range(
            "2026-12-02T00:01:00.000Z",
            Some("2026-12-02T00:03:00.000Z"),
            None
        ))
        .await,
        [2, 3],
        "{n}: since inclusive, until exclusive"
    );
    assert_eq!(
        seqs(range("2026-12-02T00:01:00.000Z", None, None)).await,
        [2, 3, 4, 5],
        "{n}: no end"
    );
    assert_eq!(
        seqs(range(
            "2026-12-01T00:00:00.000Z",
            None,
            Some("issuance.overdue")
        ))
        .await,
        [4],
        "{n}: of a type"
    );
    let found = e
        .store
        .events_in_range(&range("2026-12-05T00:00:00.000Z", None, None))
        .await
        .unwrap();
    assert_eq!(found, [(5, "balance.low".to_owned())], "{n}");
    assert!(
        seqs(range("2027-01-01T00:00:00.000Z", None, None))
            .await
            .is_empty(),
        "{n}"
    );
}

pub async fn a_sink_failing_for_disable_after_is_disabled_once_with_its_event(e: Engine) {
    let n = e.name;
    admitted(&e, &["shop", "erp"]).await;
    let five_days = Duration::from_secs(5 * 86400);
    let failing = |t: &'static str| {
        Some(SinkVerdict::Failing {
            at: at(t),
            problem: "HTTP 503",
        })
    };
    e.store
        .record_attempts(
            "shop",
            &[attempt(1, T0, 503, Some(LATER))],
            failing(T0),
            None,
        )
        .await
        .unwrap();
    let before = e.store.last_event_seq().await.unwrap();
    assert_eq!(
        e.store
            .disable_if_failing("shop", five_days, at("2026-12-10T09:59:59.999Z"))
            .await
            .unwrap(),
        None,
        "{n}: not yet"
    );
    let deadline = at("2026-12-10T10:00:00.000Z");
    let row = e
        .store
        .disable_if_failing("shop", five_days, deadline)
        .await
        .unwrap()
        .expect("disabled at the deadline");
    assert_eq!(
        row.disabled_at.as_deref(),
        Some("2026-12-10T10:00:00.000Z"),
        "{n}"
    );
    let reason = row.disabled_reason.unwrap();
    assert!(
        reason.contains(T0) && reason.contains("disable_after (5days)"),
        "{n}: {reason}"
    );
    let events = e.store.events_after(before, 10).await.unwrap();
    assert_eq!(events.len(), 1, "{n}: one event");
    let ev = &events[0];
    assert_eq!(
        (ev.event_type.as_str(), ev.issuance_id.as_deref()),
        ("sink.disabled", None),
        "{n}"
    );
    assert_eq!(ev.data["sink"], "shop", "{n}");
    assert_eq!(ev.data["failing_since"], T0, "{n}");
    assert_eq!(ev.data["disable_after"], "5days", "{n}");
    assert_eq!(ev.data["reason"], reason.as_str(), "{n}");
    assert_eq!(ev.occurred_at, "2026-12-10T10:00:00.000Z", "{n}");
    // Once: later checks (another daemon, a restart) change nothing.
    let much_later = at("2026-12-20T00:00:00.000Z");
    assert_eq!(
        e.store
            .disable_if_failing("shop", five_days, much_later)
            .await
            .unwrap(),
        None,
        "{n}"
    );
    assert_eq!(e.store.last_event_seq().await.unwrap(), before + 1, "{n}");
    // A sink that answered (not failing) or is unknown is never disabled.
    e.store
        .record_attempts(
            "erp",
            &[attempt(1, T0, 503, Some(LATER))],
            failing(T0),
            None,
        )
        .await
        .unwrap();
    e.store
        .record_attempts(
            "erp",
            &[attempt(1, LATER, 204, None)],
            Some(SinkVerdict::Answered),
            None,
        )
        .await
        .unwrap();
    for name in ["erp", "nobody"] {
        assert_eq!(
            e.store
                .disable_if_failing(name, five_days, much_later)
                .await
                .unwrap(),
            None,
            "{n}: {name}"
        );
    }
    assert!(
        e.store
            .sink("erp")
            .await
            .unwrap()
            .unwrap()
            .disabled_at
            .is_none(),
        "{n}"
    );
}
