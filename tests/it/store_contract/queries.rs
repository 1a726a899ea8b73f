//! The reads for people and scripts (`list`, `show`, `flags`, counts,
//! `status`): the same rows, in the same order, with instants in the same
//! text, on both engines for the same data written by another program.
//! Orders include ids that a locale would sort differently from SQLite's
//! byte order (`B` < `b` < `é`) and NULLs, which SQLite sorts first.

use chrono::{DateTime, Utc};
use issuance_watcher::store::{ErrorCount, FlagRow, IssuanceRow, StatusCount, TransitionRow};

use super::Engine;

fn ids(rows: &[IssuanceRow]) -> Vec<&str> {
    rows.iter().map(|r| r.id.as_str()).collect()
}

type Flag = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn flags(rows: Vec<FlagRow>) -> Vec<Flag> {
    rows.into_iter()
        .map(|f| {
            (
                f.issuance_id,
                f.kind,
                f.raised_at,
                f.cleared_at,
                f.vbank_due_at,
                f.status,
            )
        })
        .collect()
}

fn flag(
    id: &str,
    kind: &str,
    raised: &str,
    cleared: Option<&str>,
    due: Option<&str>,
    status: &str,
) -> Flag {
    (
        id.into(),
        kind.into(),
        raised.into(),
        cleared.map(Into::into),
        due.map(Into::into),
        Some(status.into()),
    )
}

pub async fn list_show_flags_and_counts_read_the_same_rows(e: Engine) {
    e.exec(
        "INSERT INTO issuances (id, status, amount, vbank_due_at, added_at, next_poll_at) VALUES
           ('b', 'READY', 1000, '2026-12-07T00:00:00.000Z', '2026-12-01T00:00:00.000Z', '2026-12-06T09:00:00.000Z'),
           ('B', 'READY', 2000, '2026-12-06T12:00:00.000Z', '2026-12-01T00:00:00.000Z', '2026-12-06T09:00:00.000Z'),
           ('é', NULL, NULL, NULL, '2026-12-01T00:00:00.000Z', '2026-12-06T09:00:00.000Z'),
           ('a', 'WAITED', 3000, NULL, '2026-12-02T00:00:00.000Z', '2026-12-06T09:00:00.000Z'),
           ('z', 'DONE', 4000, NULL, '2026-11-30T00:00:00.000Z', '2026-12-06T09:00:00.000Z');
         INSERT INTO transitions (issuance_id, from_status, to_status, observed_at, modified_at) VALUES
           ('b', NULL, 'WAITED', '2026-12-02T01:00:00.000Z', NULL),
           ('b', 'WAITED', 'READY', '2026-12-02T02:00:00.000Z', '2026-12-02T01:59:00.000Z');
         INSERT INTO flags (issuance_id, kind, raised_at, cleared_at, lead_ms) VALUES
           ('b', 'DUE_SOON', '2026-12-06T00:00:00.000Z', NULL, 86400000),
           ('B', 'DUE_SOON', '2026-12-06T00:00:00.000Z', NULL, 86400000),
           ('B', 'OVERDUE', '2026-12-06T12:00:00.000Z', NULL, 0),
           ('a', 'DUE_SOON', '2026-12-05T00:00:00.000Z', '2026-12-05T01:00:00.000Z', 3600000);",
    )
    .await;
    let s = &e.store;

    let all = s.list(None, 10).await.unwrap();
    assert_eq!(ids(&all), ["z", "B", "b", "é", "a"], "{}", e.name);
    let b = &all[2];
    assert_eq!(
        (
            b.status.as_deref(),
            b.amount,
            b.vbank_due_at.as_deref(),
            b.watch.as_str(),
            b.next_poll_at.as_str(),
            b.added_at.as_str(),
            b.polls,
            b.last_polled_at.as_deref(),
        ),
        (
            Some("READY"),
            Some(1000),
            Some("2026-12-07T00:00:00.000Z"),
            "active",
            "2026-12-06T09:00:00.000Z",
            "2026-12-01T00:00:00.000Z",
            0,
            None
        ),
        "{}",
        e.name
    );
    assert_eq!(all[0].watch, "settled", "{}", e.name);
    assert_eq!(
        ids(&s.list(None, 2).await.unwrap()),
        ["z", "B"],
        "{}",
        e.name
    );
    let ready = s.list(Some("READY"), 10).await.unwrap();
    assert_eq!(ids(&ready), ["B", "b"], "{}", e.name);
    let unseen = s.list(Some("UNSEEN"), 10).await.unwrap();
    assert_eq!(ids(&unseen), ["é"], "{}", e.name);
    assert!(
        s.list(Some("FAIL"), 10).await.unwrap().is_empty(),
        "{}",
        e.name
    );

    let transitions: Vec<TransitionRow> = s.transitions_of("b").await.unwrap();
    assert!(transitions[0].seq < transitions[1].seq, "{}", e.name);
    let shown: Vec<_> = transitions
        .iter()
        .map(|t| {
            (
                t.issuance_id.as_str(),
                t.from_status.as_deref(),
                t.to_status.as_str(),
                t.observed_at.as_str(),
                t.modified_at.as_deref(),
                t.anomaly.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("b", None, "WAITED", "2026-12-02T01:00:00.000Z", None, None),
            (
                "b",
                Some("WAITED"),
                "READY",
                "2026-12-02T02:00:00.000Z",
                Some("2026-12-02T01:59:00.000Z"),
                None
            ),
        ],
        "{}",
        e.name
    );
    assert!(
        s.transitions_of("a").await.unwrap().is_empty(),
        "{}",
        e.name
    );

    // Open flags, soonest due first; one issuance's flags, cleared ones too.
    let noon = Some("2026-12-06T12:00:00.000Z");
    assert_eq!(
        flags(s.flags(None).await.unwrap()),
        [
            flag(
                "B",
                "DUE_SOON",
                "2026-12-06T00:00:00.000Z",
                None,
                noon,
                "READY"
            ),
            flag(
                "B",
                "OVERDUE",
                "2026-12-06T12:00:00.000Z",
                None,
                noon,
                "READY"
            ),
            flag(
                "b",
                "DUE_SOON",
                "2026-12-06T00:00:00.000Z",
                None,
                Some("2026-12-07T00:00:00.000Z"),
                "READY"
            ),
        ],
        "{}",
        e.name
    );
    assert_eq!(
        flags(s.flags(Some("a")).await.unwrap()),
        [flag(
            "a",
            "DUE_SOON",
            "2026-12-05T00:00:00.000Z",
            Some("2026-12-05T01:00:00.000Z"),
            None,
            "WAITED"
        )],
        "{}",
        e.name
    );

    let counts: Vec<(String, Option<String>, i64)> = s
        .counts()
        .await
        .unwrap()
        .into_iter()
        .map(
            |StatusCount {
                 watch,
                 status,
                 count,
             }| (watch, status, count),
        )
        .collect();
    let count =
        |watch: &str, status: Option<&str>, n| (watch.to_owned(), status.map(Into::into), n);
    assert_eq!(
        counts,
        [
            count("active", None, 1),
            count("active", Some("READY"), 2),
            count("active", Some("WAITED"), 1),
            count("settled", Some("DONE"), 1),
        ],
        "{}",
        e.name
    );
    assert_eq!(
        s.active_counts().await.unwrap(),
        [
            (None, 1),
            (Some("READY".into()), 2),
            (Some("WAITED".into()), 1)
        ],
        "{}",
        e.name
    );
    assert_eq!(s.open_due_soon().await.unwrap(), 2, "{}", e.name);
    assert_eq!(s.open_overdue().await.unwrap(), 1, "{}", e.name);
}

pub async fn status_facts_read_the_same_facts(e: Engine) {
    e.exec(
        "INSERT INTO issuances (id, status, last_seen_at, last_polled_at, last_error) VALUES
           ('a', 'READY', '2026-12-02T10:00:00.000Z', '2026-12-02T11:30:00.000Z', 'HTTP 503'),
           ('b', 'READY', '2026-12-02T11:00:00.000Z', '2026-12-02T11:40:00.000Z', 'HTTP 503'),
           ('c', 'WAITED', '2026-12-02T09:00:00.000Z', '2026-12-02T09:00:00.000Z', 'timeout'),
           ('d', NULL, NULL, NULL, NULL);
         INSERT INTO issuances (id, status, watch, last_error, last_polled_at)
           VALUES ('e', 'DONE', 'settled', 'old', '2026-12-02T11:50:00.000Z');
         INSERT INTO transitions (issuance_id, from_status, to_status, observed_at)
           VALUES ('e', 'READY', 'DONE', '2026-12-02T11:45:00.000Z');
         INSERT INTO charge_requests (amount, state, error_code) VALUES
           (1000, 'unknown', 'TIMEOUT'), (2000, 'created', NULL),
           (3000, 'unknown', 'PERFORMER_DIED'), (4000, 'pending', NULL);",
    )
    .await;
    let since: DateTime<Utc> = "2026-12-02T11:00:00.000Z".parse().unwrap();
    let facts = e.store.status_facts(since).await.unwrap();
    assert_eq!(
        facts.active_by_status,
        [
            (None, 1),
            (Some("READY".to_owned()), 2),
            (Some("WAITED".to_owned()), 1)
        ],
        "{}",
        e.name
    );
    // The settled row's transition is newer than any active row's last answer.
    assert_eq!(
        facts.last_success.as_deref(),
        Some("2026-12-02T11:45:00.000Z"),
        "{}",
        e.name
    );
    assert_eq!(
        facts.errors,
        [ErrorCount {
            error: "HTTP 503".into(),
            issuances: 2,
            last_at: "2026-12-02T11:40:00.000Z".into()
        }],
        "{}",
        e.name
    );
    assert!(facts.daemons.live.is_empty(), "{}", e.name);
    let unknown = &facts.unknown_charges;
    assert_eq!(unknown.total, 2, "{}", e.name);
    let newest: Vec<_> = unknown
        .newest
        .iter()
        .map(|c| (c.amount, c.error_code.as_deref()))
        .collect();
    assert_eq!(
        newest,
        [(3000, Some("PERFORMER_DIED")), (1000, Some("TIMEOUT"))],
        "{}",
        e.name
    );
    assert_eq!(
        e.store.unknown_charges().await.unwrap(),
        *unknown,
        "{}",
        e.name
    );

    // Nothing seen yet anywhere: no last success.
    e.exec("DELETE FROM transitions; DELETE FROM issuances;")
        .await;
    let facts = e.store.status_facts(since).await.unwrap();
    assert_eq!(facts.last_success, None, "{}", e.name);
}
