//! The simulator's lookup and routing, as a client sees them over real HTTP:
//! unknown and hostile ids, unknown routes and methods, forced statuses, overrides.

use crate::client::{Client, LOOKUP, raw_get, start, started};
use bunjang_sim::{Override, SimConfig};
use serde_json::{Value, json};

#[tokio::test]
async fn unknown_issuances_and_hostile_ids_answer_not_found_pay_inbound() {
    let sim = start(SimConfig::default()).await;
    let ids = sim.seed(3);
    let long = "9".repeat(10_000);
    let long_path = format!("{LOOKUP}/{long}");
    let traversal = format!("{LOOKUP}/{}%2F..", ids[0]);
    let nul = format!("{LOOKUP}/{}%00", ids[0]);
    for path in [
        "/api/v1/points/issuance/999",
        "/api/v1/points/issuance/..",
        "/api/v1/points/issuance/%2E%2E",
        traversal.as_str(),
        "/api/v1/points/issuance/%20",
        nul.as_str(),
        "/api/v1/points/issuance/%FF%FE",
        "/api/v1/points/issuance/-1",
        long_path.as_str(),
    ] {
        let (status, body) = raw_get(&sim, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["errorCode"], "NOT_FOUND_PAY_INBOUND", "{path}");
    }
    let (status, _) = raw_get(&sim, &format!("{LOOKUP}/{}", ids[0])).await;
    assert_eq!(status, 200);
    sim.shutdown().await;
}

/// The simulator keeps nothing across a restart: were its ids to start over,
/// a watcher would take a new charge for an old, settled one.
#[tokio::test]
async fn a_restarted_simulator_never_hands_out_an_id_again() {
    let number = |id: &str| -> u64 {
        assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id:?} is numeric");
        id.parse().unwrap()
    };
    let (first, client) = started(SimConfig::default()).await;
    let mut before: Vec<u64> = first.seed(3).iter().map(|id| number(id)).collect();
    let charged = client
        .post(LOOKUP, Some(json!({"amount": 10_000})))
        .await
        .json();
    before.push(number(charged["data"]["id"].as_str().unwrap()));
    first.shutdown().await;
    let (second, client) = started(SimConfig::default()).await;
    let charged = client
        .post(LOOKUP, Some(json!({"amount": 10_000})))
        .await
        .json();
    let after = [
        number(charged["data"]["id"].as_str().unwrap()),
        number(&second.seed(1)[0]),
    ];
    let highest_before = before.iter().max().unwrap();
    assert!(
        after.iter().all(|id| id > highest_before),
        "before the restart {before:?}, after {after:?}"
    );
    second.shutdown().await;
    // Pinned, ids are the same on every run (for tests that need a reused id).
    let pinned = SimConfig {
        id_base: Some(bunjang_sim::ID_BASE),
        ..SimConfig::default()
    };
    for _ in 0..2 {
        let sim = start(pinned.clone()).await;
        assert_eq!(sim.seed(1), ["1000001"]);
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn unknown_routes_answer_resource_not_found() {
    let (sim, client) = started(SimConfig::default()).await;
    for path in [
        "/api/v1/points/nothing",
        "/",
        "/api/v1/points/issuance/1/cancel/again",
    ] {
        let answer = client.get(path).await;
        assert_eq!(
            answer.status_and_code(),
            (404, "RESOURCE_NOT_FOUND".into()),
            "{path}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_methods_answer_405_with_an_error_body() {
    let sim = start(SimConfig::default()).await;
    let answer = Client::new(&sim).post("/api/v1/points/balance", None).await;
    assert_eq!(answer.status_and_code(), (405, "METHOD_NOT_ALLOWED".into()));
    sim.shutdown().await;
}

#[tokio::test]
async fn forced_statuses_including_unknown_ones_are_served_verbatim() {
    let (sim, client) = started(SimConfig::default()).await;
    let seeded = client
        .control(reqwest::Method::POST, "/_sim/seed", json!({"count": 2}))
        .await;
    let ids: Vec<String> = serde_json::from_value(seeded.json()["ids"].clone()).unwrap();
    assert_eq!(ids.len(), 2);
    let path = format!("/_sim/issuances/{}/status", ids[0]);
    for status in ["DONE", "READY", "WEIRD"] {
        let forced = client
            .control(reqwest::Method::POST, &path, json!({"status": status}))
            .await;
        assert_eq!(forced.status, 200, "{}", forced.text);
        let seen = client.get(&format!("{LOOKUP}/{}", ids[0])).await;
        assert_eq!(seen.json()["data"]["status"], status);
    }
    let truth = client
        .send(
            reqwest::Method::GET,
            &format!("/_sim/ground-truth?id={}", ids[0]),
            None,
            None,
        )
        .await;
    let moves: Vec<(Value, Value)> = truth
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["from"].clone(), e["to"].clone()))
        .collect();
    assert_eq!(
        moves[moves.len() - 3..],
        [
            (json!("WAITED"), json!("DONE")),
            (json!("DONE"), json!("READY")),
            (json!("READY"), json!("WEIRD"))
        ]
    );
    let unknown = client
        .control(
            reqwest::Method::POST,
            "/_sim/issuances/1/status",
            json!({"status": "DONE"}),
        )
        .await;
    assert_eq!(unknown.status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn overrides_serve_malformed_objects() {
    let (sim, client) = started(SimConfig::default()).await;
    let ids = sim.seed(2);
    let set = client
        .control(
            reqwest::Method::POST,
            &format!("/_sim/issuances/{}/override", ids[0]),
            json!({"data": {"id": 5, "status": null}}),
        )
        .await;
    assert_eq!(set.status, 204, "{}", set.text);
    assert_eq!(
        client.get(&format!("{LOOKUP}/{}", ids[0])).await.json(),
        json!({"data": {"id": 5, "status": null}})
    );

    sim.set_override(
        &ids[1],
        Some(Override::Raw {
            status: 200,
            content_type: "application/json".into(),
            body: "{\"data\":{\"id\":".into(),
        }),
    )
    .unwrap();
    assert_eq!(
        client.get(&format!("{LOOKUP}/{}", ids[1])).await.text,
        "{\"data\":{\"id\":"
    );

    let cleared = client
        .send(
            reqwest::Method::DELETE,
            &format!("/_sim/issuances/{}/override", ids[1]),
            None,
            None,
        )
        .await;
    assert_eq!(cleared.status, 204);
    assert_eq!(
        client.get(&format!("{LOOKUP}/{}", ids[1])).await.json()["data"]["id"],
        ids[1].as_str()
    );
    sim.shutdown().await;
}
