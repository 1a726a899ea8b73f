//! The simulator's issuances over time, as a client sees them over real HTTP:
//! lifecycles in accelerated time, seeds, cancelling and charging.

use std::time::Duration;

use crate::client::{Client, LOOKUP, quick_lifecycle, start, started};
use crate::wait::{poll, wait_for};
use bunjang_sim::{SimConfig, Status};
use serde_json::json;

#[tokio::test]
async fn an_issuance_moves_waited_ready_done_in_accelerated_time() {
    let sim = start(
        SimConfig::default()
            .with_speed(3600.0)
            .with_lifecycle(quick_lifecycle()),
    )
    .await;
    let client = Client::new(&sim);
    let created = client.post(LOOKUP, Some(json!({"amount": 50_000}))).await;
    assert_eq!(created.status, 200, "{}", created.text);
    let data = created.json()["data"].clone();
    assert_eq!(data["status"], "WAITED");
    assert_eq!(data["amount"], 50_000);
    assert!(data["preparedVbankInfo"].is_null());
    assert!(
        data["id"]
            .as_str()
            .unwrap()
            .bytes()
            .all(|b| b.is_ascii_digit())
    );
    let created_at = data["createdAt"].as_str().unwrap().to_owned();
    assert_eq!(
        created_at.len(),
        "2023-10-27T10:00:00".len(),
        "naive datetime without offset: {created_at}"
    );
    let path = format!("{LOOKUP}/{}", data["id"].as_str().unwrap());

    let mut seen = vec!["WAITED".to_owned()];
    let mut ready = None;
    let every = Duration::from_millis(50);
    let done = poll("DONE", Duration::from_secs(5), every, async || {
        let now = client.get(&path).await.json()["data"].clone();
        let status = now["status"].as_str().unwrap().to_owned();
        if status == "READY" {
            ready.get_or_insert(now.clone());
        }
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        match status.as_str() {
            "DONE" => Ok(()),
            _ => Err(format!("{seen:?}")),
        }
    })
    .await;
    done.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seen, ["WAITED", "READY", "DONE"]);
    let ready = ready.unwrap();
    let info = &ready["preparedVbankInfo"];
    assert_eq!(info["vbankHolderName"], "번개장터");
    assert_eq!(info["vbankAccountNumber"].as_str().unwrap().len(), 12);
    assert!(
        info["vbankDueDate"]
            .as_str()
            .unwrap()
            .ends_with("T23:59:59")
    );
    assert_eq!(ready["createdAt"], created_at.as_str());

    let truth = sim.ground_truth();
    let moves: Vec<_> = truth
        .iter()
        .map(|e| (e.from.clone(), e.to.clone()))
        .collect();
    assert_eq!(
        moves,
        [
            (None, Status::Waited),
            (Some(Status::Waited), Status::Ready),
            (Some(Status::Ready), Status::Done)
        ]
    );
    assert_eq!((truth[1].at - truth[0].at).num_seconds(), 1800);
    assert_eq!((truth[2].at - truth[1].at).num_seconds(), 3600);
    sim.shutdown().await;
}

#[tokio::test]
async fn same_seed_same_lifecycles() {
    async fn run(seed: u64) -> Vec<(Vec<Status>, String, i64)> {
        // Ten million times real time: two simulated days pass in under 20 ms.
        let sim = start(SimConfig::default().with_seed(seed).with_speed(1e7)).await;
        let ids = sim.seed(200);
        wait_for(
            "every lifecycle to end",
            Duration::from_secs(10),
            async || {
                let ended = |id: &String| {
                    let truth = sim.ground_truth_of(id).unwrap();
                    let last = truth.last().map(|e| &e.to);
                    matches!(last, Some(Status::Done | Status::Cancelled | Status::Fail))
                };
                match ids.iter().filter(|id| !ended(id)).count() {
                    0 => Ok(()),
                    open => Err(format!("{open} of {} not ended", ids.len())),
                }
            },
        )
        .await;
        let out = ids
            .iter()
            .map(|id| {
                let truth = sim.ground_truth_of(id).unwrap();
                let waited = (truth[1].at - truth[0].at).num_milliseconds();
                let statuses = truth.iter().map(|e| e.to.clone()).collect();
                let account = sim
                    .issuance(id)
                    .unwrap()
                    .prepared_vbank_info
                    .map(|v| v.vbank_account_number);
                (statuses, account.unwrap_or_default(), waited)
            })
            .collect();
        sim.shutdown().await;
        out
    }
    let first = run(7).await;
    assert_eq!(first, run(7).await);
    assert_ne!(first, run(8).await);
    let settled = first
        .iter()
        .filter(|(s, _, _)| s.last() == Some(&Status::Done))
        .count();
    assert!(
        (120..=190).contains(&settled),
        "about 80% DONE, got {settled}/200"
    );
}

#[tokio::test]
async fn only_ready_can_be_cancelled() {
    let (sim, client) = started(SimConfig::default()).await;
    let id = sim.seed(1).remove(0);
    let refused = client.post(&format!("{LOOKUP}/{id}/cancel"), None).await;
    assert_eq!(refused.status_and_code(), (400, "BAD_REQUEST".into()));
    sim.force(&id, "READY").unwrap();
    let cancelled = client.post(&format!("{LOOKUP}/{id}/cancel"), None).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.json()["data"]["status"], "CANCELLED");
    assert!(cancelled.json()["data"]["preparedVbankInfo"].is_object());
    let truth = sim.ground_truth_of(&id).unwrap();
    assert_eq!(truth.last().unwrap().to, Status::Cancelled);
    assert_eq!(truth.last().unwrap().from, Some(Status::Ready));
    sim.shutdown().await;
}

#[tokio::test]
async fn one_ready_charge_per_access_key_when_switched_on() {
    let sim = start(SimConfig {
        one_ready_per_key: true,
        ..SimConfig::default()
    })
    .await;
    let client = Client::new(&sim);
    let first = client.post(LOOKUP, Some(json!({"amount": 10_000}))).await;
    assert_eq!(first.status, 200);
    let second = client.post(LOOKUP, Some(json!({"amount": 10_000}))).await;
    assert_eq!(
        (second.status, second.error_code().as_str()),
        (400, "BAD_REQUEST"),
        "{}",
        second.text
    );
    sim.force(first.json()["data"]["id"].as_str().unwrap(), "DONE")
        .unwrap();
    assert_eq!(
        client
            .post(LOOKUP, Some(json!({"amount": 10_000})))
            .await
            .status,
        200
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_charge_requests_are_bad_requests() {
    let (sim, client) = started(SimConfig::default()).await;
    for body in [
        json!({}),
        json!({"amount": "lots"}),
        json!({"amount": -5}),
        json!({"amount": 1.5}),
    ] {
        let answer = client.post(LOOKUP, Some(body.clone())).await;
        assert_eq!(
            answer.status_and_code(),
            (400, "BAD_REQUEST".into()),
            "{body}"
        );
    }
    sim.shutdown().await;
}
