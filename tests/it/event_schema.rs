//! The published JSON Schema of events (`docs/events.schema.json`, draft
//! 2020-12): every type the code knows has one branch (and the schema no
//! other), a daemon driven through every event type delivers only bodies the
//! schema accepts (and stores only rows it accepts), on both engines, and the
//! check does fail, naming the field, for a body that breaks it.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Duration as Span;
use common::db::Db;
use common::engine::on_both_engines;
use common::receiver::World;
use common::running::RunningApp;
use common::schema::{branches, check_body, check_row};
use common::{Reply, eventually};
use issuance_watcher::deliver::{TEST_EVENT_TYPE, standard_body, test_event};
use issuance_watcher::domain::EventType;
use serde_json::{Value, json};

/// Every event type: the outbox's and the test message.
fn known_types() -> BTreeSet<String> {
    EventType::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .chain([TEST_EVENT_TYPE.to_owned()])
        .collect()
}

#[test]
fn every_event_type_the_code_knows_has_a_schema_and_the_schema_no_other() {
    let in_schema: BTreeSet<String> = branches().into_keys().collect();
    assert_eq!(
        in_schema,
        known_types(),
        "docs/events.schema.json must have one oneOf branch per event type"
    );
}

#[test]
fn the_test_message_is_valid() {
    let event = test_event("shop", chrono::Utc::now());
    let body: Value = serde_json::from_slice(&standard_body(&event)).unwrap();
    check_body(&body).unwrap();
}

/// The check is not vacuous: a body that breaks the schema in one field is
/// refused, and the error names the field.
#[test]
fn a_body_that_breaks_the_schema_is_refused_naming_the_field() {
    let good = json!({
        "type": "charge.created",
        "timestamp": "2026-12-05T10:00:00.000Z",
        "data": {"request_id": 7, "issuance_id": "1796", "amount": 500000, "status": "READY",
                 "forced": false, "requested_at": "2026-12-05T09:59:59.000Z",
                 "sent_at": "2026-12-05T09:59:59.500Z", "finished_at": "2026-12-05T10:00:00.000Z",
                 "vbank": {"due_at": "2026-12-06T14:59:00.000Z", "account_number": "110-123-456789",
                           "bank_name": "신한은행", "holder_name": "번개장터"},
                 "problem": null}
    });
    check_body(&good).unwrap();
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut body = good.clone();
        edit(&mut body);
        check_body(&body).expect_err(&format!("accepted {body}"))
    };
    let err = broken(&|b| b["data"]["amount"] = json!("500000"));
    assert!(err.contains("/data/amount"), "{err}");
    let err = broken(&|b| {
        b["data"].as_object_mut().unwrap().remove("vbank");
    });
    assert!(err.contains("vbank"), "{err}");
    let err = broken(&|b| b["data"]["vbank"]["due_at"] = json!("2026-12-06 23:59:00"));
    assert!(err.contains("/data/vbank/due_at"), "{err}");
    let err = broken(&|b| b["data"]["surprise"] = json!(1));
    assert!(err.contains("surprise"), "{err}");
    let err = broken(&|b| b["type"] = json!("charge.paid"));
    assert!(err.contains("no schema"), "{err}");
}

const CHARGE_POST: &str = "POST /api/v1/points/issuance";
const BALANCE_GET: &str = "GET /api/v1/points/balance";

/// A daemon driven through every event type of the outbox: a READY issuance
/// that becomes due soon and overdue, one the API does not know (not found),
/// one that cannot be asked for (rejected), a balance falling below the
/// threshold, a refused, a created and an unknown charge (a top-up one, which
/// suspends the rule), and a sink that
/// fails until it is disabled. Every body the
/// receiver got and every row of the outbox is valid against the schema.
async fn every_event_a_daemon_produces_is_valid_against_the_published_schema() {
    let World { api, receiver, dir } = World::new().await;
    // A second sink that always fails, disabled after a second: `sink.disabled`.
    let dead = common::Receiver::start(common::WEBHOOK_SECRET).await;
    dead.set_mode(common::Mode::Fail(503));
    api.set_ready("a", Span::seconds(3));
    api.script_route(
        CHARGE_POST,
        vec![
            Reply::error(400, "BAD_REQUEST"),
            Reply::ready_due_in("c", "WAITED", Span::hours(30)),
            Reply::error(503, "UNAVAILABLE"),
        ],
    );
    api.set("c", Reply::ready_due_in("c", "WAITED", Span::hours(30)));
    api.script_route(
        BALANCE_GET,
        vec![
            Reply::json(200, r#"{"data":{"balance":2000,"pointExpiredIn30Days":0}}"#),
            Reply::json(
                200,
                r#"{"data":{"balance":500,"pointExpiredIn30Days":100}}"#,
            ),
        ],
    );
    let settings = world_settings(&api, &dir, &receiver)
        .webhook("dead", &dead.url(), |w| {
            w.disable_after = Some(Duration::from_secs(1));
        })
        .build_with_env(&[("ISSUANCE_WATCHER__FLAGS__DUE_SOON_LEAD", "2s")]);
    let app = RunningApp::start(settings).await;
    app.running().await;
    app.insert(&["a", "gone", "   "]).await;
    let db = Db::from(&app.store);
    // Forced: sent past the READY issuance `a` (and each other).
    for (insert, id) in [
        (
            "INSERT INTO charge_requests (amount, force) VALUES (20000, 1)",
            "SELECT state FROM charge_requests WHERE id = 1",
        ),
        (
            "INSERT INTO charge_requests (amount, force) VALUES (10000, 1)",
            "SELECT state FROM charge_requests WHERE id = 2",
        ),
        (
            // The top-up rule's request: unknown, so the rule suspends itself.
            "INSERT INTO charge_requests (amount, force, source) VALUES (30000, 1, 'top_up')",
            "SELECT state FROM charge_requests WHERE id = 3",
        ),
    ] {
        db.exec(insert, &[]).await;
        eventually("the charge request to be finished", || async {
            let state = db.rows(id, &[]).await;
            !matches!(
                state.first().and_then(|r| r[0].as_deref()),
                None | Some("pending" | "sending")
            )
        })
        .await;
    }
    let every_type: BTreeSet<String> = EventType::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    common::wait::wait_for(
        "an event of every type delivered",
        Duration::from_secs(20),
        async || {
            let got: BTreeSet<String> = receiver
                .delivered()
                .iter()
                .filter_map(|r| r.event()["type"].as_str().map(str::to_owned))
                .collect();
            match got == every_type {
                true => Ok(()),
                false => Err(format!(
                    "missing {:?}; requests {:?}",
                    every_type.difference(&got).collect::<Vec<_>>(),
                    db.rows(
                        "SELECT CAST(id AS TEXT), state, error_code, error_message FROM charge_requests",
                        &[]
                    )
                    .await
                )),
            }
        },
    )
    .await;
    // The watch ended both ways.
    let reasons: BTreeSet<String> = receiver
        .delivered()
        .iter()
        .map(|r| r.event())
        .filter(|e| e["type"] == "issuance.watch_ended")
        .filter_map(|e| e["data"]["reason"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        reasons,
        BTreeSet::from(["not_found".into(), "rejected".into()])
    );

    let mut problems = Vec::new();
    for r in receiver.received() {
        assert_eq!(r.verified, Ok(()), "{}", String::from_utf8_lossy(&r.body));
        if let Err(e) = check_body(&r.event()) {
            problems.push(format!("delivered: {e}"));
        }
    }
    let rows = app.store.events_after(0, 10_000).await.unwrap();
    assert!(rows.len() > every_type.len(), "{rows:?}");
    for row in &rows {
        if let Err(e) = check_row(&row.event_type, &row.occurred_at, &row.data) {
            problems.push(format!("stored (seq {}): {e}", row.seq));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    app.stop().await.unwrap();
}

fn world_settings(
    api: &common::ScriptedApi,
    dir: &tempfile::TempDir,
    receiver: &common::Receiver,
) -> common::TestSettings {
    common::TestSettings::new(&api.base_url(), &dir.path().join("watcher.db"))
        .with(|s| {
            s.balance.interval = Some(Duration::from_secs(1));
            s.balance.low_threshold = 1000;
        })
        .webhook("shop", &receiver.url(), |_| {})
}

on_both_engines!(
    every_event_a_daemon_produces_is_valid_against_the_published_schema(
        flavor = "multi_thread",
        worker_threads = 2
    ),
);
