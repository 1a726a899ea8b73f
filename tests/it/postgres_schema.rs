//! The PostgreSQL schema (`migrations/postgres/`) on a real server, against
//! the SQLite one (`migrations/sqlite/`): the public interface must mean the
//! same on both. Each test makes a fresh PostgreSQL database and a fresh
//! SQLite file, migrates both, and runs what another program would run, as
//! plain SQL, on both side by side: the same statements, the same outcome.
//!
//! The server is `ISSUANCE_WATCHER_TEST_PG` (`postgres://USER@HOST:PORT/DB`, a
//! user who may create databases). `.ci/run` starts a throwaway one
//! (`.ci/pg-cluster`); without it these tests fail under CI and say SKIPPED
//! elsewhere. The store's own contract on both engines is `store_contract`.

mod engines;

use engines::{Event, strings, with_engines};

use std::time::Duration;

use serde_json::{Value, json};

#[tokio::test]
async fn inserting_just_an_id_watches_it() {
    with_engines(async |e| {
        e.both("INSERT INTO issuances (id) VALUES ('w1')").await;
        let rows = e
            .rows(
                "SELECT id, watch, coalesce(status, 'NULL'), CAST(attempts AS TEXT), CAST(polls AS TEXT),
                        CAST(lease_fence AS TEXT), coalesce(lease_owner, 'NULL'),
                        CASE WHEN next_poll_at IS NOT NULL AND added_at IS NOT NULL THEN 'set' END
                 FROM issuances",
            )
            .await;
        assert_eq!(
            rows,
            strings(&[&["w1", "active", "NULL", "0", "0", "0", "NULL", "set"]])
        );
        // Due at once, and among the active ones.
        let due = e
            .rows_each(
                "SELECT id FROM active_issuances WHERE next_poll_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                "SELECT id FROM active_issuances WHERE next_poll_at <= now()",
            )
            .await;
        assert_eq!(due, strings(&[&["w1"]]));
        // An id is text, whatever the program binds.
        e.both("INSERT INTO issuances (id) VALUES (456)").await;
        let ids = e.rows("SELECT id FROM issuances WHERE id = '456'").await;
        assert_eq!(ids, strings(&[&["456"]]));
        e.refused(
            "INSERT INTO issuances (id) VALUES ('w1')",
            "unique constraint",
        )
        .await;
        e.refused(
            "INSERT INTO issuances (id, watch) VALUES ('x', 'paused')",
            "check constraint",
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn writing_a_terminal_status_settles_and_an_edit_ends_the_lease() {
    with_engines(async |e| {
        e.both(
            "INSERT INTO issuances (id, status) VALUES ('imported', 'DONE');
             INSERT INTO issuances (id) VALUES ('cancelled'), ('stopped'), ('own'), ('unleased');
             -- The daemon's claim: its owner id and a new fence.
             UPDATE issuances SET lease_owner = 'daemon-1', lease_fence = lease_fence + 1
                 WHERE id IN ('cancelled', 'stopped', 'own');
             -- Other programs: a terminal status, a stop.
             UPDATE issuances SET status = 'CANCELLED' WHERE id = 'cancelled';
             UPDATE issuances SET watch = 'settled' WHERE id = 'stopped';
             UPDATE issuances SET status = 'FAIL' WHERE id = 'unleased';
             -- The daemon's own write under its lease keeps it (it bumps the fence).
             UPDATE issuances SET status = 'READY', lease_fence = lease_fence + 1 WHERE id = 'own';",
        )
        .await;
        let rows = e
            .rows(
                "SELECT id, watch, coalesce(status, 'NULL'), coalesce(lease_owner, 'NULL'),
                        CAST(lease_fence AS TEXT)
                 FROM issuances ORDER BY id",
            )
            .await;
        assert_eq!(
            rows,
            strings(&[
                &["cancelled", "settled", "CANCELLED", "NULL", "1"],
                &["imported", "settled", "DONE", "NULL", "0"],
                &["own", "active", "READY", "daemon-1", "2"],
                &["stopped", "settled", "NULL", "NULL", "1"],
                &["unleased", "settled", "FAIL", "NULL", "0"],
            ])
        );
        // Setting only `watch` watches a settled row again; its status settles
        // it again only when written.
        e.both("UPDATE issuances SET watch = 'active' WHERE id = 'imported'")
            .await;
        e.rows("SELECT watch FROM issuances WHERE id = 'imported' AND watch = 'active'")
            .await;
        e.both("UPDATE issuances SET status = 'DONE', watch = 'active' WHERE id = 'imported'")
            .await;
        let watch = e
            .rows("SELECT watch FROM issuances WHERE id = 'imported'")
            .await;
        assert_eq!(watch, strings(&[&["settled"]]));
        // Settling by hand announces nothing (no watch_ended for 'settled').
        assert_eq!(e.events().await, []);
    })
    .await;
}

#[tokio::test]
async fn a_transition_row_yields_exactly_one_status_changed_event() {
    with_engines(async |e| {
        e.both(
            "INSERT INTO issuances (id, amount, vbank_due_at, vbank_account_number, bank_name, vbank_holder_name)
                 VALUES ('t1', 50000, '2026-12-06T14:59:59.000Z', '123-456', 'KB', 'HONG');
             INSERT INTO issuances (id) VALUES ('t2');
             INSERT INTO transitions (issuance_id, from_status, to_status, observed_at, modified_at)
                 VALUES ('t1', NULL, 'READY', '2026-12-05T01:02:03.456Z', '2026-12-05T01:00:00.000Z');
             INSERT INTO transitions (issuance_id, from_status, to_status, observed_at, anomaly)
                 VALUES ('t2', 'DONE', 'READY', '2026-12-05T01:02:04.000Z', 'DONE -> READY');",
        )
        .await;
        let events = e.events().await;
        assert_eq!(events.len(), 2, "{events:#?}");
        assert_eq!(
            events[0],
            Event {
                seq: 1,
                event_type: "issuance.status_changed".into(),
                issuance_id: Some("t1".into()),
                occurred_at: "2026-12-05T01:02:03.456Z".into(),
                data: json!({
                    "id": "t1", "from_status": null, "to_status": "READY", "amount": 50000,
                    "observed_at": "2026-12-05T01:02:03.456Z",
                    "modified_at": "2026-12-05T01:00:00.000Z",
                    "anomaly": null, "transition_seq": 1,
                    "vbank": {"due_at": "2026-12-06T14:59:59.000Z", "account_number": "123-456",
                              "bank_name": "KB", "holder_name": "HONG"},
                }),
            }
        );
        assert_eq!(
            events[1].data,
            json!({
                "id": "t2", "from_status": "DONE", "to_status": "READY", "amount": null,
                "observed_at": "2026-12-05T01:02:04.000Z", "modified_at": null,
                "anomaly": "DONE -> READY", "transition_seq": 2, "vbank": null,
            })
        );
        // History and the outbox are append-only on both.
        e.refused(
            "UPDATE transitions SET anomaly = 'x'",
            "transitions is append-only",
        )
        .await;
        e.refused("UPDATE events SET type = 'x'", "events is append-only")
            .await;
        // An event goes with its fact, and its number is never reused.
        e.both(
            "DELETE FROM issuances WHERE id = 't2';
             INSERT INTO transitions (issuance_id, from_status, to_status, observed_at)
                 VALUES ('t1', 'READY', 'DONE', '2026-12-05T02:00:00.000Z');",
        )
        .await;
        let seqs: Vec<i64> = e.events().await.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 3]);
    })
    .await;
}

#[tokio::test]
async fn flags_and_ended_watches_yield_their_events() {
    with_engines(async |e| {
        e.both(
            "INSERT INTO issuances (id, status, amount, vbank_due_at)
                 VALUES ('f1', 'READY', 7000, '2026-12-06T00:00:00.000Z'), ('gone', NULL, NULL, NULL);
             INSERT INTO flags (issuance_id, kind, raised_at, lead_ms)
                 VALUES ('f1', 'DUE_SOON', '2026-12-05T21:00:00.000Z', 10800000);
             INSERT INTO flags (issuance_id, kind, raised_at, lead_ms)
                 VALUES ('f1', 'DUE_SOON', '2026-12-05T23:59:58.500Z', 1500);
             INSERT INTO flags (issuance_id, kind, raised_at)
                 VALUES ('f1', 'OVERDUE', '2026-12-06T00:00:01.000Z');
             UPDATE issuances SET watch = 'not_found', last_error = '404 for 1 day',
                                  last_polled_at = '2026-12-05T03:00:00.000Z' WHERE id = 'gone';
             -- Already ended: no second event.
             UPDATE issuances SET watch = 'not_found' WHERE id = 'gone';",
        )
        .await;
        let vbank = json!({"due_at": "2026-12-06T00:00:00.000Z", "account_number": null,
                           "bank_name": null, "holder_name": null});
        let base = |raised_at: &str| {
            json!({"id": "f1", "status": "READY", "amount": 7000,
                   "due_at": "2026-12-06T00:00:00.000Z", "raised_at": raised_at, "vbank": vbank})
        };
        let with = |mut v: Value, extra: Value| {
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v
        };
        let events = e.events().await;
        let got: Vec<(&str, &Value)> = events
            .iter()
            .map(|e| (e.event_type.as_str(), &e.data))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "issuance.due_soon",
                    &with(
                        base("2026-12-05T21:00:00.000Z"),
                        json!({"lead": "3h", "lead_seconds": 10800})
                    )
                ),
                (
                    "issuance.due_soon",
                    &with(
                        base("2026-12-05T23:59:58.500Z"),
                        json!({"lead": "1500ms", "lead_seconds": 1.5})
                    )
                ),
                ("issuance.overdue", &base("2026-12-06T00:00:01.000Z")),
                (
                    "issuance.watch_ended",
                    &json!({"id": "gone", "reason": "not_found", "detail": "404 for 1 day",
                            "status": null, "amount": null, "ended_at": "2026-12-05T03:00:00.000Z"})
                ),
            ]
        );
        // The view: one row per issuance and kind, the tightest rung.
        let due_soon = e
            .rows("SELECT id, kind, CAST(lead_ms AS TEXT) FROM due_soon ORDER BY kind")
            .await;
        assert_eq!(
            due_soon,
            strings(&[&["f1", "DUE_SOON", "1500"], &["f1", "OVERDUE", "0"]])
        );
        e.refused(
            "INSERT INTO flags (issuance_id, kind, raised_at, lead_ms) VALUES ('f1', 'DUE_SOON', '2026-12-05T21:00:00.000Z', 10800000)",
            "unique constraint",
        )
        .await;
        e.refused(
            "INSERT INTO flags (issuance_id, kind, raised_at) VALUES ('f1', 'LATE', '2026-12-05T21:00:00.000Z')",
            "check constraint",
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn balance_low_events_belong_to_no_issuance_and_reach_sinks() {
    with_engines(async |e| {
        // What the daemon writes with a balance_history row that crossed the
        // threshold, and what it admits for a sink (issuance '' for no issuance).
        e.both(
            "INSERT INTO balance_history (observed_at, balance, expiring_30d)
                 VALUES ('2026-12-05T03:00:00.000Z', 5, 0);
             INSERT INTO events (type, issuance_id, occurred_at, data)
                 VALUES ('balance.low', NULL, '2026-12-05T03:00:00.000Z',
                         '{\"balance\": 5, \"threshold\": 10, \"expiring_30d\": 0, \"observed_at\": \"2026-12-05T03:00:00.000Z\"}');
             INSERT INTO sinks (name, admitted_seq) VALUES ('shop', 0);
             INSERT INTO deliveries (sink, seq, issuance_id, created_at, next_attempt_at)
                 SELECT 'shop', seq, coalesce(issuance_id, ''), occurred_at, occurred_at FROM events;",
        )
        .await;
        let events = e.events().await;
        assert_eq!(
            events,
            [Event {
                seq: 1,
                event_type: "balance.low".into(),
                issuance_id: None,
                occurred_at: "2026-12-05T03:00:00.000Z".into(),
                data: json!({"balance": 5, "threshold": 10, "expiring_30d": 0,
                             "observed_at": "2026-12-05T03:00:00.000Z"}),
            }]
        );
        let deliveries = e
            .rows(
                "SELECT sink, CAST(seq AS TEXT), issuance_id, CAST(attempts AS TEXT),
                        coalesce(CAST(discarded_at AS TEXT), 'NULL')
                 FROM deliveries",
            )
            .await;
        assert_eq!(deliveries, strings(&[&["shop", "1", "", "0", "NULL"]]));
        e.refused(
            "INSERT INTO events (type, issuance_id, occurred_at, data) VALUES ('balance.low', NULL, '2026-12-05T03:00:00.000Z', 'not json')",
            "",
        )
        .await;
        // A sink's deliveries go with it; the event stays.
        e.both("DELETE FROM sinks WHERE name = 'shop'").await;
        let left = e
            .rows("SELECT CAST((SELECT count(*) FROM deliveries) AS TEXT), CAST((SELECT count(*) FROM events) AS TEXT)")
            .await;
        assert_eq!(left, strings(&[&["0", "1"]]));
    })
    .await;
}

/// A charge request's outcome is one event, written by the triggers of
/// migration 20261206000011 on both engines with the same JSON: created (with
/// the issuance's vbank as recorded before the state, as the daemon writes
/// it), refused, unknown; again only when the state changes (a late answer to
/// an unknown request is created too), never for `sending` or `rejected`.
#[tokio::test]
async fn charge_outcomes_yield_the_same_charge_events_on_both() {
    with_engines(async |e| {
        e.both(
            "INSERT INTO charge_requests (amount, requested_at)
                 VALUES (500000, '2026-12-05T10:00:00.000Z'), (20000, '2026-12-05T10:01:00.000Z'),
                        (30000, '2026-12-05T10:02:00.000Z'), (40000, '2026-12-05T10:03:00.000Z');
             UPDATE charge_requests SET state = 'sending', performed_by = 'me',
                                        sent_at = '2026-12-05T10:04:00.000Z' WHERE id <> 4;
             UPDATE charge_requests SET force = 1 WHERE id = 3;
             -- The daemon records a created charge's issuance first, then the state.
             INSERT INTO issuances (id, status, amount, vbank_due_at, vbank_account_number, bank_name, vbank_holder_name)
                 VALUES ('c1', 'READY', 500000, '2026-12-06T14:59:00.000Z', '110-123-456789', '신한은행', '번개장터');
             UPDATE charge_requests SET state = 'created', issuance_id = 'c1',
                                        finished_at = '2026-12-05T10:04:01.000Z' WHERE id = 1;
             UPDATE charge_requests SET state = 'refused', http_status = 400, error_code = 'BAD_REQUEST',
                                        error_message = 'one READY charge at a time',
                                        finished_at = '2026-12-05T10:04:02.000Z' WHERE id = 2;
             UPDATE charge_requests SET state = 'unknown', error_code = 'TIMEOUT',
                                        error_message = 'no answer within 10s',
                                        finished_at = '2026-12-05T10:04:03.000Z' WHERE id = 3;
             -- No second event: the state does not change.
             UPDATE charge_requests SET state = 'unknown' WHERE id = 3;
             UPDATE charge_requests SET error_message = 'edited' WHERE id = 2;
             -- Refused here: nothing was sent, no event.
             UPDATE charge_requests SET state = 'rejected', error_code = 'LOCAL_MAX_AMOUNT' WHERE id = 4;",
        )
        .await;
        let common = |id: i64, amount: i64, forced: bool, finished: &str| {
            json!({"request_id": id, "amount": amount, "forced": forced,
                   "requested_at": format!("2026-12-05T10:0{}:00.000Z", id - 1),
                   "sent_at": "2026-12-05T10:04:00.000Z", "finished_at": finished})
        };
        let with = |mut v: Value, extra: Value| {
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v
        };
        let action = "A charge may exist: look in the partner console for a charge of this amount, then run \
                      `issuance-watcher charges resolve 3 --issuance ID` (the charge you found) or `--none`. \
                      New charges are refused until then.";
        let events = e.events().await;
        let got: Vec<(&str, Option<&str>, &str, &Value)> = events
            .iter()
            .map(|e| {
                (
                    e.event_type.as_str(),
                    e.issuance_id.as_deref(),
                    e.occurred_at.as_str(),
                    &e.data,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "charge.created",
                    Some("c1"),
                    "2026-12-05T10:04:01.000Z",
                    &with(
                        common(1, 500000, false, "2026-12-05T10:04:01.000Z"),
                        json!({"issuance_id": "c1", "status": "READY", "problem": null,
                               "vbank": {"due_at": "2026-12-06T14:59:00.000Z",
                                         "account_number": "110-123-456789",
                                         "bank_name": "신한은행", "holder_name": "번개장터"}})
                    )
                ),
                (
                    "charge.refused",
                    None,
                    "2026-12-05T10:04:02.000Z",
                    &with(
                        common(2, 20000, false, "2026-12-05T10:04:02.000Z"),
                        json!({"http_status": 400, "code": "BAD_REQUEST",
                               "reason": "one READY charge at a time"})
                    )
                ),
                (
                    "charge.unknown",
                    None,
                    "2026-12-05T10:04:03.000Z",
                    &with(
                        common(3, 30000, true, "2026-12-05T10:04:03.000Z"),
                        json!({"http_status": null, "code": "TIMEOUT",
                               "message": "no answer within 10s", "action": action})
                    )
                ),
            ]
        );
        // A late answer to the unknown request: created, a second event of it.
        e.both(
            "INSERT INTO issuances (id) VALUES ('c3');
             UPDATE charge_requests SET state = 'created', issuance_id = 'c3', error_code = NULL,
                                        error_message = NULL, finished_at = '2026-12-05T10:05:00.000Z'
                 WHERE id = 3;",
        )
        .await;
        let events = e.events().await;
        assert_eq!(events.len(), 4);
        assert_eq!(
            (events[3].event_type.as_str(), events[3].issuance_id.as_deref()),
            ("charge.created", Some("c3"))
        );
        assert_eq!(events[3].data["vbank"], Value::Null);
        assert_eq!(events[3].data["status"], Value::Null);
    })
    .await;
}

#[tokio::test]
async fn charge_requests_default_to_pending_and_refuse_bad_amounts() {
    with_engines(async |e| {
        e.both("INSERT INTO charge_requests (amount) VALUES (50000)")
            .await;
        let rows = e
            .rows(
                "SELECT CAST(id AS TEXT), CAST(amount AS TEXT), state, CAST(force AS TEXT),
                        CASE WHEN requested_at IS NOT NULL THEN 'set' END,
                        coalesce(resolution, 'NULL'), coalesce(performed_by, 'NULL')
                 FROM charge_requests",
            )
            .await;
        assert_eq!(
            rows,
            strings(&[&["1", "50000", "pending", "0", "set", "NULL", "NULL"]])
        );
        for bad in [
            "INSERT INTO charge_requests (amount) VALUES (0)",
            "INSERT INTO charge_requests (amount) VALUES (-5)",
            "INSERT INTO charge_requests (amount, force) VALUES (1000, 2)",
            "INSERT INTO charge_requests (amount, state) VALUES (1000, 'maybe')",
        ] {
            e.refused(bad, "check constraint").await;
        }
        e.refused("INSERT INTO charge_requests (amount) VALUES (NULL)", "null")
            .await;
        e.refused("INSERT INTO charge_requests (amount) VALUES ('lots')", "")
            .await;

        // Resolving: only an unresolved unknown request, once, completely.
        const ONCE: &str = "only an unresolved unknown charge request can be resolved";
        e.refused(
            "UPDATE charge_requests SET resolution = 'none', resolved_at = '2026-12-05T04:00:00.000Z', resolved_by = 'cli:a@b' WHERE id = 1",
            ONCE,
        )
        .await;
        e.both("UPDATE charge_requests SET state = 'unknown', error_code = 'TIMEOUT' WHERE id = 1")
            .await;
        e.refused(
            "UPDATE charge_requests SET resolution = 'none' WHERE id = 1",
            ONCE,
        )
        .await;
        e.refused(
            "UPDATE charge_requests SET resolution = 'perhaps', resolved_at = '2026-12-05T04:00:00.000Z', resolved_by = 'cli:a@b' WHERE id = 1",
            "check constraint",
        )
        .await;
        e.refused(
            "UPDATE charge_requests SET resolution = 'issuance', resolved_at = '2026-12-05T04:00:00.000Z', resolved_by = 'cli:a@b' WHERE id = 1",
            ONCE,
        )
        .await;
        e.both(
            "UPDATE charge_requests SET resolution = 'none', resolved_at = '2026-12-05T04:00:00.000Z', resolved_by = 'cli:a@b' WHERE id = 1",
        )
        .await;
        e.refused(
            "UPDATE charge_requests SET resolution = 'none', resolved_at = '2026-12-05T05:00:00.000Z', resolved_by = 'cli:c@d' WHERE id = 1",
            ONCE,
        )
        .await;
        let rows = e
            .rows("SELECT state, resolution, resolved_by FROM charge_requests")
            .await;
        assert_eq!(rows, strings(&[&["unknown", "none", "cli:a@b"]]));
    })
    .await;
}

/// A column as each engine describes it: (table, column, type, NOT NULL).
type Column = (String, String, String, bool);

#[tokio::test]
async fn the_same_tables_columns_indexes_and_triggers_exist_on_both() {
    with_engines(async |e| {
        let lite: Vec<(String, String, String, bool, bool)> = sqlx::query_as(
            "SELECT m.name, p.name, p.type, p.\"notnull\" OR p.pk > 0, m.type = 'view'
             FROM sqlite_master m, pragma_table_info(m.name) p
             WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
               AND m.name <> '_sqlx_migrations'
             ORDER BY m.name, p.cid",
        )
        .fetch_all(&e.lite)
        .await
        .unwrap();
        let pg: Vec<(String, String, String, bool, bool)> = sqlx::query_as(
            "SELECT c.table_name::text, c.column_name::text, c.data_type::text, c.is_nullable = 'NO',
                    t.table_type = 'VIEW'
             FROM information_schema.columns c
             JOIN information_schema.tables t USING (table_schema, table_name)
             WHERE c.table_schema = current_schema() AND c.table_name <> '_sqlx_migrations'
             ORDER BY c.table_name, c.ordinal_position",
        )
        .fetch_all(&e.pg)
        .await
        .unwrap();
        let names = |cols: &[(String, String, String, bool, bool)]| -> Vec<(String, String)> {
            cols.iter()
                .map(|c| (c.0.clone(), c.1.clone()))
                .collect()
        };
        assert_eq!(
            names(&lite),
            names(&pg),
            "tables and views, and their columns in order: SQLite (left), PostgreSQL (right)"
        );
        assert!(names(&lite).len() > 60, "{lite:?}");
        // Tables (not views): NOT NULL alike, and each type mapped as the
        // README's table says.
        let tables = |cols: &[(String, String, String, bool, bool)]| -> Vec<Column> {
            cols.iter()
                .filter(|c| !c.4)
                .map(|c| (c.0.clone(), c.1.clone(), c.2.clone(), c.3))
                .collect()
        };
        for ((table, column, lite_type, lite_notnull), (_, _, pg_type, pg_notnull)) in
            tables(&lite).into_iter().zip(tables(&pg))
        {
            assert_eq!(lite_notnull, pg_notnull, "NOT NULL of {table}.{column}");
            let instant = column.ends_with("_at") || column.ends_with("_since");
            let expected = match (lite_type.as_str(), instant, column.as_str()) {
                ("INTEGER", false, _) => "bigint",
                ("TEXT", true, _) => "timestamp with time zone",
                ("TEXT", false, "data") => "jsonb",
                ("TEXT", false, _) => "text",
                _ => panic!("{table}.{column}: SQLite type {lite_type} has no mapping"),
            };
            assert_eq!(pg_type, expected, "{table}.{column} (SQLite {lite_type})");
        }

        let lite_indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
        )
        .fetch_all(&e.lite)
        .await
        .unwrap();
        // Without the indexes behind keys (SQLite's are automatic, sql IS NULL).
        let pg_indexes: Vec<String> = sqlx::query_scalar(
            "SELECT indexname::text FROM pg_indexes
             WHERE schemaname = current_schema()
               AND indexname NOT IN (SELECT conname FROM pg_constraint)
             ORDER BY indexname",
        )
        .fetch_all(&e.pg)
        .await
        .unwrap();
        assert_eq!(lite_indexes, pg_indexes, "indexes");

        let lite_triggers: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name",
        )
        .fetch_all(&e.lite)
        .await
        .unwrap();
        let pg_triggers: Vec<String> = sqlx::query_scalar(
            "SELECT tgname::text FROM pg_trigger WHERE NOT tgisinternal
               AND tgname <> 'events_seq_in_commit_order'
               AND tgname NOT LIKE '%\\_wake\\_up' ORDER BY tgname",
        )
        .fetch_all(&e.pg)
        .await
        .unwrap();
        assert_eq!(
            lite_triggers, pg_triggers,
            "triggers (but PostgreSQL's events_seq_in_commit_order, which SQLite's single writer makes needless, \
             and its NOTIFY triggers `*_wake_up`: SQLite has no notifications)"
        );
    })
    .await;
}

/// PostgreSQL only: the outbox's `seq` is handed out in commit order, so a
/// consumer reading `seq > last` never passes over an event that commits
/// later with a smaller number (SQLite has one writer at a time).
#[tokio::test]
async fn events_commit_in_seq_order() {
    with_engines(async |e| {
        e.both("INSERT INTO issuances (id) VALUES ('a'), ('b')")
            .await;
        let mut first = e.pg.begin().await.unwrap();
        sqlx::query("INSERT INTO transitions (issuance_id, to_status, observed_at) VALUES ('a', 'WAITED', now())")
            .execute(&mut *first)
            .await
            .unwrap();
        // A second writer starts its event while the first is open: it waits.
        let pg = e.pg.clone();
        let second = tokio::spawn(async move {
            let mut tx = pg.begin().await.unwrap();
            sqlx::query("INSERT INTO transitions (issuance_id, to_status, observed_at) VALUES ('b', 'WAITED', now())")
                .execute(&mut *tx)
                .await
                .unwrap();
            let seq: i64 =
                sqlx::query_scalar("SELECT max(seq) FROM events WHERE issuance_id = 'b'")
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
            tx.commit().await.unwrap();
            seq
        });
        // Seen waiting on the lock, not merely slow.
        crate::common::running::wait_for(
            "the second writer to wait for the first's advisory lock",
            Duration::from_secs(10),
            async || {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_locks
                     WHERE locktype = 'advisory' AND NOT granted
                       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                )
                .fetch_one(&e.pg)
                .await
                .unwrap();
                if waiting == 1 {
                    Ok(())
                } else {
                    Err(format!("{waiting} waiting on the advisory lock"))
                }
            },
        )
        .await;
        // The first writes another event, then commits: the second one's
        // number, drawn after, is larger than every number the first committed.
        sqlx::query("INSERT INTO transitions (issuance_id, to_status, observed_at) VALUES ('a', 'READY', now())")
            .execute(&mut *first)
            .await
            .unwrap();
        let first_max: i64 = sqlx::query_scalar("SELECT max(seq) FROM events")
            .fetch_one(&mut *first)
            .await
            .unwrap();
        first.commit().await.unwrap();
        let second_seq = tokio::time::timeout(Duration::from_secs(10), second)
            .await
            .expect("the second writer did not finish after the first committed")
            .unwrap();
        assert!(
            second_seq > first_max,
            "the second transaction's event ({second_seq}) commits after the first's ({first_max}) with a smaller number"
        );
    })
    .await;
}

/// The README's example queries (`sqlite3 watcher.db "..."` and
/// `psql "$URL" -c "..."`) run on the engine each is given for, as many for
/// one as for the other.
#[tokio::test]
async fn the_readmes_example_queries_run_on_their_engine() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("the README");
    let quoted = |prefix: &str| -> Vec<String> {
        readme
            .lines()
            .filter_map(|l| l.strip_prefix(prefix)?.strip_suffix('"'))
            .map(str::to_owned)
            .collect()
    };
    let lite = quoted("sqlite3 watcher.db \"");
    let pg = quoted("psql \"$URL\" -c \"");
    assert!(lite.len() >= 5, "the README's SQLite queries: {lite:?}");
    assert_eq!(
        lite.len(),
        pg.len(),
        "one PostgreSQL query for each: {pg:?}"
    );
    with_engines(async |e| {
        e.both("INSERT INTO issuances (id, status, amount, modified_at) VALUES ('r1', 'DONE', 1000, '2026-11-26T00:00:00.000Z')")
            .await;
        for sql in &lite {
            if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&e.lite)
                .await
            {
                panic!("SQLite refused the README's {sql}: {e}");
            }
        }
        for sql in &pg {
            if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&e.pg)
                .await
            {
                panic!("PostgreSQL refused the README's {sql}: {e}");
            }
        }
    })
    .await;
}
