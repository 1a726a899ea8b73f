//! The simulator's injected faults, as a client sees them over real HTTP:
//! 429s, 5xx shapes, runtime control, windows, slow, hanging, oversized and dropped answers.

use std::time::Duration;

use crate::client::{Client, LOOKUP, start, started, token};
use bunjang_sim::{FaultConfig, FaultRule, ServerErrorKind, SimConfig, SimHandle};
use serde_json::{Value, json};

/// A simulator with `faults` and one issuance, and that issuance's id.
async fn one_issuance_with(faults: FaultConfig) -> (SimHandle, String) {
    let sim = start(SimConfig::default().with_faults(faults)).await;
    let id = sim.seed(1).remove(0);
    (sim, id)
}

#[tokio::test]
async fn retry_after_is_sent_on_injected_429() {
    let faults = FaultConfig {
        too_many_requests: FaultRule::always(),
        retry_after_secs: 2,
        ..FaultConfig::default()
    };
    let sim = start(
        SimConfig {
            record_requests: true,
            ..SimConfig::default()
        }
        .with_faults(faults),
    )
    .await;
    let client = Client::new(&sim);
    let id = sim.seed(1).remove(0);
    let answer = client.get(&format!("{LOOKUP}/{id}")).await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.headers["retry-after"], "2");
    // Only the lookup is faulted by default.
    assert_eq!(client.get("/api/v1/points/balance").await.status, 200);

    sim.set_faults(FaultConfig {
        too_many_requests_bare: FaultRule::always(),
        ..FaultConfig::default()
    });
    let bare = client.get(&format!("{LOOKUP}/{id}")).await;
    assert_eq!(bare.status, 429);
    assert!(!bare.headers.contains_key("retry-after"));

    let limits = sim.rate_limit_log();
    assert_eq!(
        limits
            .iter()
            .map(|l| l.retry_after_secs)
            .collect::<Vec<_>>(),
        [Some(2), None]
    );
    let arrivals = sim.request_log();
    assert_eq!(arrivals.len(), 3);
    // What a politeness test checks: nothing arrived inside a Retry-After window (this client ignored it).
    let violations = arrivals
        .iter()
        .filter(|r| {
            limits.iter().any(|l| {
                l.retry_after_secs.is_some_and(|s| {
                    r.at > l.at && r.at < l.at + chrono::Duration::seconds(s as i64)
                })
            })
        })
        .count();
    assert_eq!(
        violations, 2,
        "the balance call and the second lookup came too soon"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn server_errors_come_in_every_documented_shape() {
    let (sim, client) = started(SimConfig::default()).await;
    let id = sim.seed(1).remove(0);
    let expectations = [
        (ServerErrorKind::Internal, 500, Some("INTERNAL_ERROR")),
        (ServerErrorKind::Unkwown, 500, Some("UNKWOWN_ERROR")),
        (ServerErrorKind::BadGatewayHtml, 502, None),
        (ServerErrorKind::UnavailableHtml, 503, None),
    ];
    for (kind, status, code) in expectations {
        sim.set_faults(FaultConfig {
            server_error: FaultRule::always(),
            server_error_kinds: vec![kind],
            ..FaultConfig::default()
        });
        let answer = client.get(&format!("{LOOKUP}/{id}")).await;
        assert_eq!(answer.status, status);
        match code {
            Some(code) => assert_eq!(answer.error_code(), code),
            None => assert!(answer.text.starts_with("<html>")),
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_change_at_runtime_through_the_control_endpoint() {
    let (sim, client) = started(SimConfig::default()).await;
    let id = sim.seed(1).remove(0);
    let put = client
        .control(
            reqwest::Method::PUT,
            "/_sim/faults",
            json!({"non_json": {"rate": 1.0}}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let answer = client.get(&format!("{LOOKUP}/{id}")).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(serde_json::from_str::<Value>(&answer.text).is_err());

    let put = client.control(reqwest::Method::PUT, "/_sim/faults", json!({"scope": "all_api", "unauthorized": {"rate": 1.0}, "unauthorized_code": "INVALID_AUTH_TOKEN"})).await;
    assert_eq!(put.status, 200);
    let balance = client.get("/api/v1/points/balance").await;
    assert_eq!(
        balance.status_and_code(),
        (401, "INVALID_AUTH_TOKEN".into())
    );

    let bad = client
        .control(
            reqwest::Method::PUT,
            "/_sim/faults",
            json!({"no_such_fault": 1}),
        )
        .await;
    assert_eq!(bad.status, 400);
    client
        .control(reqwest::Method::PUT, "/_sim/faults", json!({}))
        .await;
    assert_eq!(client.get(&format!("{LOOKUP}/{id}")).await.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn fault_windows_are_real_time_from_start() {
    let faults = FaultConfig {
        unauthorized: FaultRule::during(Duration::ZERO, Duration::from_millis(1500)),
        ..FaultConfig::default()
    };
    let (sim, id) = one_issuance_with(faults).await;
    let client = Client::new(&sim);
    let inside = client.get(&format!("{LOOKUP}/{id}")).await;
    assert_eq!(inside.status_and_code(), (401, "EXPIRED_AUTH_TOKEN".into()));
    // Past the window's end, real time: time let pass on purpose.
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(sim.uptime())).await;
    assert_eq!(client.get(&format!("{LOOKUP}/{id}")).await.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_answers_arrive_late_and_hangs_outlast_client_timeouts() {
    let faults = FaultConfig {
        slow: FaultRule::always(),
        slow_delay: Duration::from_millis(300),
        ..FaultConfig::default()
    };
    let (sim, id) = one_issuance_with(faults).await;
    let client = Client::new(&sim);
    let started = std::time::Instant::now();
    assert_eq!(client.get(&format!("{LOOKUP}/{id}")).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The token is judged on arrival: a delay longer than the token window is not a 401.
    sim.set_faults(FaultConfig {
        slow: FaultRule::always(),
        slow_delay: Duration::from_millis(6_500),
        ..FaultConfig::default()
    });
    let late = client.get(&format!("{LOOKUP}/{id}")).await;
    assert_eq!(late.status, 200, "{}", late.text);

    sim.set_faults(FaultConfig {
        hang: FaultRule::always(),
        ..FaultConfig::default()
    });
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = impatient
        .get(format!("{}{LOOKUP}/{id}", sim.base_url()))
        .bearer_auth(token())
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    // A pending hang does not hold up shutdown.
    let hanging = tokio::spawn({
        let url = format!("{}{LOOKUP}/{id}", sim.base_url());
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token())
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    // For the request to reach the simulator: nothing shows its arrival (it
    // counts a request as it answers it), so time is let pass.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = std::time::Instant::now();
    sim.shutdown().await;
    assert!(stopping.elapsed() < Duration::from_secs(3));
    let _ = hanging.await;
}

#[tokio::test]
async fn oversized_bodies_are_streamed() {
    let faults = FaultConfig {
        oversized: FaultRule::always(),
        oversized_bytes: 50_000_000,
        ..FaultConfig::default()
    };
    let (sim, id) = one_issuance_with(faults).await;
    let mut response = reqwest::Client::new()
        .get(format!("{}{LOOKUP}/{id}", sim.base_url()))
        .bearer_auth(token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.content_length().is_none(),
        "streamed bodies have no length up front"
    );
    let (mut total, mut chunks, mut head, mut tail) = (0usize, 0usize, Vec::new(), Vec::new());
    while let Some(chunk) = response.chunk().await.unwrap() {
        if head.is_empty() {
            head = chunk[..chunk.len().min(9)].to_vec();
        }
        tail = chunk[chunk.len().saturating_sub(2)..].to_vec();
        total += chunk.len();
        chunks += 1;
    }
    assert_eq!(total, 50_000_000);
    assert!(chunks > 100, "arrived in {chunks} chunks");
    assert_eq!(
        (head.as_slice(), tail.as_slice()),
        (&b"{\"data\":\""[..], &b"\"}"[..])
    );
    sim.shutdown().await;
}

/// What a client sees of one lookup whose connection the simulator drops:
/// `send failed: ...`, or `body failed: ...` when the headers arrived first.
/// A whole body is a failure of the fault.
async fn dropped_lookup(url: &str) -> String {
    match reqwest::Client::new()
        .get(url)
        .bearer_auth(token())
        .send()
        .await
    {
        Err(error) => format!("send failed: {error}"),
        Ok(response) => match response.bytes().await {
            Ok(body) => panic!("a whole body arrived: {body:?}"),
            Err(error) => {
                assert!(error.is_body() || error.is_decode(), "{error:?}");
                format!("body failed: {error}")
            }
        },
    }
}

#[tokio::test]
async fn dropped_connections_break_the_body_after_the_headers() {
    let faults = FaultConfig {
        drop_connection: FaultRule::always(),
        drop_after_bytes: 20,
        ..FaultConfig::default()
    };
    let (sim, id) = one_issuance_with(faults).await;
    let url = format!("{}{LOOKUP}/{id}", sim.base_url());
    let outcome = dropped_lookup(&url).await;
    assert!(outcome.starts_with("body failed"), "{outcome}");
    // Dropped at once (no body bytes): the headers still arrive, and the
    // client sees the body break in the same way.
    sim.set_faults(FaultConfig {
        drop_connection: FaultRule::always(),
        ..FaultConfig::default()
    });
    let outcome = dropped_lookup(&url).await;
    assert!(outcome.starts_with("body failed"), "{outcome}");
    sim.shutdown().await;
}
