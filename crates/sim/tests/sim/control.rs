//! The simulator's own accounting, as a test harness reads it: request
//! statistics and the ground truth, in process and over HTTP.

use std::time::Duration;

use crate::client::{LOOKUP, started};
use crate::wait::wait_for;
use bunjang_sim::SimConfig;

#[tokio::test]
async fn stats_count_requests_by_status_code_and_issuance() {
    let (sim, client) = started(SimConfig::default()).await;
    let ids = sim.seed(2);
    for _ in 0..3 {
        client.get(&format!("{LOOKUP}/{}", ids[0])).await;
    }
    client.get(&format!("{LOOKUP}/{}", ids[1])).await;
    client.get(&format!("{LOOKUP}/nope")).await;
    client
        .send(reqwest::Method::GET, "/api/v1/points/balance", None, None)
        .await;
    let stats = sim.stats();
    assert_eq!(stats.total_requests, 6);
    assert_eq!(stats.by_status_code.get(&200), Some(&4));
    assert_eq!(stats.by_status_code.get(&404), Some(&1));
    assert_eq!(stats.by_status_code.get(&401), Some(&1));
    assert_eq!(stats.by_issuance.get(&ids[0]), Some(&3));
    assert_eq!(stats.by_issuance.get(&ids[1]), Some(&1));
    let over_http = client
        .send(reqwest::Method::GET, "/_sim/stats", None, None)
        .await
        .json();
    assert_eq!(
        over_http["totalRequests"], 6,
        "control requests are not counted"
    );
    assert_eq!(over_http["byStatusCode"]["200"], 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn ground_truth_is_exported_over_http_in_utc_millis() {
    let (sim, client) = started(SimConfig::default().with_speed(1e6)).await;
    let ids = sim.seed(5);
    wait_for(
        "each one's creation and preparation",
        Duration::from_secs(10),
        async || match sim.ground_truth().len() {
            10.. => Ok(()),
            n => Err(format!("{n} events")),
        },
    )
    .await;
    let truth = client
        .send(reqwest::Method::GET, "/_sim/ground-truth", None, None)
        .await
        .json();
    let events = truth.as_array().unwrap();
    assert!(
        events.len() >= 10,
        "creation and preparation of each: {}",
        events.len()
    );
    let creations = events.iter().filter(|e| e["from"].is_null()).count();
    assert_eq!(creations, ids.len());
    let page = client
        .send(
            reqwest::Method::GET,
            "/_sim/ground-truth?offset=1&limit=2",
            None,
            None,
        )
        .await;
    let paged: Vec<String> = page
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"].is_null())
        .map(|e| e["issuanceId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paged, ids[1..3]);
    let at = events[0]["at"].as_str().unwrap();
    assert!(
        at.ends_with('Z') && at.len() == "2026-01-01T00:00:00.000Z".len(),
        "{at}"
    );
    sim.shutdown().await;
}
