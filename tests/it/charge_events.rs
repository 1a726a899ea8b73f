//! Charge events end to end, on both engines: the daemon performs charge
//! requests inserted by SQL against a scripted charge endpoint, and a created,
//! a refused and an unknown (the API answers 500) charge each become exactly
//! one event of their type, delivered signed (verified by the reference
//! library) with the data a person acts on, and a Slack sink gets each as one
//! sentence.

use crate::common;

use std::collections::BTreeMap;

use common::db::Db;
use common::engine::on_both_engines;
use common::receiver::{Receiver, World};
use common::running::RunningApp;
use common::{Reply, WEBHOOK_SECRET, eventually};
use issuance_watcher::domain::EventType;
use serde_json::{Value, json};

const CHARGE_POST: &str = "POST /api/v1/points/issuance";

/// A READY issuance `id` of `amount` with a virtual account due at
/// 2099-12-31 23:59 (Korea time, as the API writes it).
fn ready(id: &str, amount: i64) -> Reply {
    Reply::json(
        200,
        &format!(
            r#"{{"data":{{"id":"{id}","amount":{amount},"status":"READY","createdAt":"2026-12-05T10:00:00","modifiedAt":"2026-12-05T10:00:01","preparedVbankInfo":{{"vbankDueDate":"2099-12-31T23:59:00","vbankAccountNumber":"110-123-456789","bankName":"신한은행","vbankHolderName":"번개장터"}}}}}}"#
        ),
    )
}

async fn state(db: &Db, select: &'static str) -> Option<String> {
    db.rows(select, &[])
        .await
        .first()
        .and_then(|r| r[0].clone())
}

/// Inserts a charge request by SQL (as another program would) and waits for
/// the daemon to finish it as `expected`.
async fn charge(db: &Db, insert: &'static str, select_state: &'static str, expected: &str) {
    db.exec(insert, &[]).await;
    eventually(&format!("the request to be {expected}"), || async {
        state(db, select_state).await.as_deref() == Some(expected)
    })
    .await;
}

/// The charge events the receiver accepted, by type (each arrival).
fn charge_events(receiver: &Receiver) -> BTreeMap<String, Vec<Value>> {
    let mut by_type: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in receiver.delivered() {
        let event = r.event();
        let t = event["type"].as_str().unwrap_or_default().to_owned();
        if t.starts_with("charge.") {
            by_type.entry(t).or_default().push(event);
        }
    }
    by_type
}

/// `data` without its instants (checked against the row and the schema
/// separately): what is the same on every run.
fn fixed(data: &Value) -> Value {
    let mut data = data.clone();
    for key in ["requested_at", "sent_at", "finished_at"] {
        let at = data[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} in {data}"));
        assert!(
            at.len() == 24 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
            "{key} {at:?}: UTC with milliseconds"
        );
        data.as_object_mut().unwrap().remove(key);
    }
    data
}

async fn created_refused_and_unknown_charges_are_one_event_each_with_what_to_act_on() {
    let World { api, receiver, dir } = World::new().await;
    let chat = Receiver::start(WEBHOOK_SECRET).await;
    api.script_route(
        CHARGE_POST,
        vec![
            Reply::error(400, "INSUFFICIENT_LIMIT"),
            ready("1796", 500_000),
            Reply::error(500, "INTERNAL_SERVER_ERROR"),
        ],
    );
    // The daemon's polls of the created charge.
    api.set("1796", ready("1796", 500_000));
    let config = common::TestSettings::new(&api.base_url(), &dir.path().join("watcher.db"))
        .webhook("shop", &receiver.url(), |_| {})
        .webhook("chat", &chat.url(), |w| {
            w.kind = issuance_watcher::settings::SinkKind::Slack;
            w.events = vec![
                EventType::ChargeCreated,
                EventType::ChargeRefused,
                EventType::ChargeUnknown,
            ];
        });
    let app = RunningApp::start(config.build()).await;
    app.running().await;
    let db = Db::from(&app.store);
    charge(
        &db,
        "INSERT INTO charge_requests (amount) VALUES (20000)",
        "SELECT state FROM charge_requests WHERE id = 1",
        "refused",
    )
    .await;
    charge(
        &db,
        "INSERT INTO charge_requests (amount) VALUES (500000)",
        "SELECT state FROM charge_requests WHERE id = 2",
        "created",
    )
    .await;
    // Forced: sent past the READY charge just created.
    charge(
        &db,
        "INSERT INTO charge_requests (amount, force) VALUES (300000, 1)",
        "SELECT state FROM charge_requests WHERE id = 3",
        "unknown",
    )
    .await;
    eventually(
        "the three charge events delivered to both sinks",
        || async {
            charge_events(&receiver)
                .values()
                .map(Vec::len)
                .sum::<usize>()
                >= 3
                && chat.delivered().len() >= 3
        },
    )
    .await;
    for r in receiver.received() {
        assert_eq!(r.verified, Ok(()), "{}", String::from_utf8_lossy(&r.body));
    }

    // Exactly one event of each type in the outbox, and one arrival each.
    let rows = app.store.events_after(0, 1000).await.unwrap();
    let of = |t: &str| {
        rows.iter()
            .filter(|e| e.event_type == t)
            .collect::<Vec<_>>()
    };
    for t in ["charge.created", "charge.refused", "charge.unknown"] {
        assert_eq!(of(t).len(), 1, "{t}: {rows:?}");
    }
    let events = charge_events(&receiver);
    for (t, arrivals) in &events {
        assert_eq!(arrivals.len(), 1, "{t} arrived {} times", arrivals.len());
        let row = of(t)[0];
        assert_eq!(
            arrivals[0]["data"], row.data,
            "{t}: the body's data is the row's"
        );
        assert_eq!(arrivals[0]["timestamp"], json!(row.occurred_at));
        assert_eq!(arrivals[0]["data"]["finished_at"], json!(row.occurred_at));
        common::schema::check_body(&arrivals[0]).unwrap();
    }

    let created = of("charge.created")[0];
    assert_eq!(created.issuance_id.as_deref(), Some("1796"));
    assert_eq!(
        fixed(&created.data),
        json!({"request_id": 2, "issuance_id": "1796", "amount": 500000, "status": "READY",
               "forced": false, "problem": null,
               "vbank": {"due_at": "2099-12-31T14:59:00.000Z", "account_number": "110-123-456789",
                         "bank_name": "신한은행", "holder_name": "번개장터"}})
    );
    // In the issuance's order: after its first sighting, which it follows.
    let first_sighting = rows
        .iter()
        .find(|e| {
            e.event_type == "issuance.status_changed" && e.issuance_id.as_deref() == Some("1796")
        })
        .expect("the created issuance's first sighting");
    assert!(first_sighting.seq < created.seq);

    let refused = of("charge.refused")[0];
    assert_eq!(refused.issuance_id, None);
    assert_eq!(
        fixed(&refused.data),
        json!({"request_id": 1, "amount": 20000, "forced": false, "http_status": 400,
               "code": "INSUFFICIENT_LIMIT", "reason": "scripted"})
    );

    let unknown = of("charge.unknown")[0];
    assert_eq!(unknown.issuance_id, None);
    let mut data = fixed(&unknown.data);
    let action = data.as_object_mut().unwrap().remove("action").unwrap();
    let message = data.as_object_mut().unwrap().remove("message").unwrap();
    assert_eq!(
        data,
        json!({"request_id": 3, "amount": 300000, "forced": true, "http_status": 500,
               "code": "SERVER_ERROR"})
    );
    assert!(message.as_str().unwrap().contains("500"), "{message}");
    let action = action.as_str().unwrap();
    assert!(
        action.contains("partner console")
            && action.contains("`issuance-watcher charges resolve 3 --issuance ID`"),
        "{action}"
    );

    // The Slack sink: one sentence each, amounts grouped, the deadline in KST.
    let mut texts: Vec<String> = chat
        .delivered()
        .iter()
        .map(|r| r.event()["text"].as_str().unwrap().to_owned())
        .collect();
    texts.sort();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(
        texts[0],
        "Charge request 1 (20,000 KRW) was refused by the API: HTTP 400 INSUFFICIENT_LIMIT: scripted — nothing was created"
    );
    assert!(
        texts[1].starts_with("Charge request 3 (300,000 KRW): outcome unknown (SERVER_ERROR: ")
            && texts[1].ends_with(
                "check the partner console before charging again; resolve with `issuance-watcher charges resolve 3 --issuance ID` or `--none`"
            ),
        "{}",
        texts[1]
    );
    assert_eq!(
        texts[2],
        "Transfer 500,000 KRW to 신한은행 110-123-456789 (번개장터) by 2099-12-31 23:59:00 KST — charge request 2, issuance 1796"
    );
    app.stop().await.unwrap();
}

/// The gauges behind the alerts `IssuanceWatcherUnknownCharge` and
/// `IssuanceWatcherSinkDisabled`, scraped from a daemon (a child process):
/// a request left `sending` by a process that died becomes unknown (with its
/// charge.unknown event) and is counted from the database until a person
/// resolves it; a sink disabled by hand is 1 until it is enabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_charges_and_disabled_sinks_are_gauges_until_resolved_and_enabled() {
    use common::metrics::{free_port, sample, until};
    let World { api, receiver, dir } = World::new().await;
    let port = free_port();
    let config = common::TestSettings::new(&api.base_url(), &dir.path().join("watcher.db"))
        .with(|s| s.http.listen = format!("127.0.0.1:{port}"))
        .webhook("shop", &receiver.url(), |_| {})
        .write_toml(&dir.path().join("config.toml"));
    common::daemon::migrate(&config);
    let pool = common::charging::pool(&dir.path().join("watcher.db")).await;
    // Sent by a process that died before recording the answer.
    sqlx::query(
        "INSERT INTO charge_requests (amount, state, performed_by, sent_at)
         VALUES (70000, 'sending', 'a-dead-process', '2026-12-05T10:00:00.000Z')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let daemon = common::Daemon::start(&config);
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let unknown = |t: &str| sample(t, "issuance_watcher_unknown_charge_requests", &[]);
    let disabled = |t: &str| sample(t, "issuance_watcher_sink_disabled", &["sink=\"shop\""]);
    let text = until(&metrics, "one unknown charge request", |t| {
        unknown(t) == Some(1.0)
    })
    .await;
    assert_eq!(disabled(&text), Some(0.0), "{text}");
    eventually("its charge.unknown event delivered", || async {
        receiver
            .delivered()
            .iter()
            .any(|r| r.event()["type"] == "charge.unknown")
    })
    .await;
    let event = receiver
        .delivered()
        .into_iter()
        .map(|r| r.event())
        .find(|e| e["type"] == "charge.unknown")
        .unwrap();
    assert_eq!(event["data"]["code"], "PERFORMER_DIED", "{event}");
    assert_eq!(event["data"]["request_id"], 1, "{event}");
    common::schema::check_body(&event).unwrap();

    let out = common::cli(&config, &["sinks", "disable", "shop"]);
    assert!(out.status.success(), "{out:?}");
    until(&metrics, "the sink disabled", |t| disabled(t) == Some(1.0)).await;
    let out = common::cli(&config, &["charges", "resolve", "1", "--none"]);
    assert!(out.status.success(), "{out:?}");
    until(&metrics, "no unknown charge request", |t| {
        unknown(t) == Some(0.0)
    })
    .await;
    let out = common::cli(&config, &["sinks", "enable", "shop"]);
    assert!(out.status.success(), "{out:?}");
    until(&metrics, "the sink enabled", |t| disabled(t) == Some(0.0)).await;
    daemon.stop().await;
}

on_both_engines!(
    created_refused_and_unknown_charges_are_one_event_each_with_what_to_act_on(
        flavor = "multi_thread",
        worker_threads = 2
    ),
);
