//! The simulator's behaviour over real HTTP on 127.0.0.1, as a client sees it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use issuance_watcher::sim::cli::{DEMO_ACCESS_KEY, DEMO_SECRET_KEY};
use issuance_watcher::sim::{
    DepositTiming, FaultConfig, FaultRule, LifecycleConfig, Override, ServerErrorKind, SimConfig,
    SimHandle, Simulator, Status,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LOOKUP: &str = "/api/v1/points/issuance";

async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sign(key: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap()
}

fn demo_secret() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(DEMO_SECRET_KEY)
        .unwrap()
}

/// A fresh, valid token for the demo credentials (with a nonce, so good for POST too).
fn token() -> String {
    sign(
        &demo_secret(),
        &json!({"accessKey": DEMO_ACCESS_KEY, "iat": now_secs(), "nonce": uuid::Uuid::new_v4().to_string()}),
    )
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn error_code(&self) -> String {
        self.json()["errorCode"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    fn new(sim: &SimHandle) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self {
            base: sim.base_url(),
            http,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Option<String>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = auth {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        Answer {
            status,
            headers,
            text,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, Some(token()), None)
            .await
    }

    async fn post(&self, path: &str, body: Option<Value>) -> Answer {
        self.send(reqwest::Method::POST, path, Some(token()), body)
            .await
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Answer {
        self.send(method, path, None, Some(body)).await
    }
}

/// A lifecycle that plays out within about two real seconds at speed 3600:
/// WAITED for 30 simulated minutes (0.5 s), then READY, paid an hour later (1 s).
fn quick_lifecycle() -> LifecycleConfig {
    LifecycleConfig {
        waited_min: Duration::from_secs(1800),
        waited_max: Duration::from_secs(1800),
        p_fail: 0.0,
        p_done: 1.0,
        p_cancel: 0.0,
        deposit: DepositTiming::Within {
            min: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
        },
        ..LifecycleConfig::default()
    }
}

/// Sends a raw request line, so paths reach the server exactly as written.
async fn raw_get(sim: &SimHandle, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        token()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn a_token_signed_with_the_decoded_secret_is_accepted() {
    let sim = start(SimConfig::default()).await;
    let answer = Client::new(&sim).get("/api/v1/points/balance").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json(),
        json!({"data": {"balance": 10_000_000, "pointExpiredIn30Days": 300_000}})
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_token_signed_with_the_base64_text_is_refused() {
    let sim = start(SimConfig::default()).await;
    let claims = json!({"accessKey": DEMO_ACCESS_KEY, "iat": now_secs()});
    let wrong = sign(DEMO_SECRET_KEY.as_bytes(), &claims);
    let answer = Client::new(&sim)
        .send(
            reqwest::Method::GET,
            "/api/v1/points/balance",
            Some(wrong),
            None,
        )
        .await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (401, "INVALID_AUTH_TOKEN")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn every_auth_failure_answers_its_documented_code() {
    let sim = start(SimConfig::default()).await;
    let client = Client::new(&sim);
    let key = demo_secret();
    let now = now_secs();
    let nonce = "5b1c1f7e-6a57-4c1e-9a40-3b3c1f5f2e11";
    let cases: Vec<(&str, reqwest::Method, Option<String>, &str)> = vec![
        (
            "no header",
            reqwest::Method::GET,
            None,
            "MISSING_AUTH_TOKEN",
        ),
        (
            "garbage",
            reqwest::Method::GET,
            Some("not.a.jwt".into()),
            "INVALID_AUTH_TOKEN",
        ),
        (
            "no accessKey",
            reqwest::Method::GET,
            Some(sign(&key, &json!({"iat": now}))),
            "MISSING_ACCESS_KEY",
        ),
        (
            "wrong accessKey",
            reqwest::Method::GET,
            Some(sign(
                &key,
                &json!({"accessKey": "someone-else", "iat": now}),
            )),
            "INVALID_ACCESS_KEY",
        ),
        (
            "no iat",
            reqwest::Method::GET,
            Some(sign(&key, &json!({"accessKey": DEMO_ACCESS_KEY}))),
            "MISSING_IAT_CLAIM",
        ),
        (
            "stale iat",
            reqwest::Method::GET,
            Some(sign(
                &key,
                &json!({"accessKey": DEMO_ACCESS_KEY, "iat": now - 60}),
            )),
            "EXPIRED_AUTH_TOKEN",
        ),
        (
            "iat in the future",
            reqwest::Method::GET,
            Some(sign(
                &key,
                &json!({"accessKey": DEMO_ACCESS_KEY, "iat": now + 60}),
            )),
            "EXPIRED_AUTH_TOKEN",
        ),
        (
            "iat in milliseconds",
            reqwest::Method::GET,
            Some(sign(
                &key,
                &json!({"accessKey": DEMO_ACCESS_KEY, "iat": now * 1000}),
            )),
            "EXPIRED_AUTH_TOKEN",
        ),
        (
            "POST without nonce",
            reqwest::Method::POST,
            Some(sign(
                &key,
                &json!({"accessKey": DEMO_ACCESS_KEY, "iat": now}),
            )),
            "INVALID_AUTH_TOKEN",
        ),
    ];
    for (case, method, auth, code) in cases {
        let path = if method == reqwest::Method::POST {
            LOOKUP
        } else {
            "/api/v1/points/balance"
        };
        let answer = client
            .send(method, path, auth, Some(json!({"amount": 1000})))
            .await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (401, code.to_owned()),
            "{case}: {}",
            answer.text
        );
    }
    // A valid nonce-carrying POST goes through.
    let ok = sign(
        &key,
        &json!({"accessKey": DEMO_ACCESS_KEY, "iat": now, "nonce": nonce}),
    );
    let answer = client
        .send(
            reqwest::Method::POST,
            LOOKUP,
            Some(ok),
            Some(json!({"amount": 1000})),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_token_window_is_configurable() {
    let sim = start(SimConfig::default().with_token_window(Duration::from_secs(30))).await;
    let old = sign(
        &demo_secret(),
        &json!({"accessKey": DEMO_ACCESS_KEY, "iat": now_secs() - 20}),
    );
    let answer = Client::new(&sim)
        .send(
            reqwest::Method::GET,
            "/api/v1/points/balance",
            Some(old),
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_static_token_is_accepted_for_load_generators() {
    let sim = start(SimConfig {
        static_token: Some("wrk-token".into()),
        ..SimConfig::default()
    })
    .await;
    let ids = sim.seed(1);
    let answer = Client::new(&sim)
        .send(
            reqwest::Method::GET,
            &format!("{LOOKUP}/{}", ids[0]),
            Some("wrk-token".into()),
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    sim.shutdown().await;
}

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
    for _ in 0..100 {
        let now = client.get(&path).await.json()["data"].clone();
        let status = now["status"].as_str().unwrap().to_owned();
        if status == "READY" {
            ready.get_or_insert(now.clone());
        }
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "DONE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    let sim = start(SimConfig::default()).await;
    let client = Client::new(&sim);
    let id = sim.seed(1).remove(0);
    let refused = client.post(&format!("{LOOKUP}/{id}/cancel"), None).await;
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (400, "BAD_REQUEST")
    );
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
    let sim = start(SimConfig::default()).await;
    let client = Client::new(&sim);
    for body in [
        json!({}),
        json!({"amount": "lots"}),
        json!({"amount": -5}),
        json!({"amount": 1.5}),
    ] {
        let answer = client.post(LOOKUP, Some(body.clone())).await;
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (400, "BAD_REQUEST"),
            "{body}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_issuances_and_hostile_ids_answer_not_found_pay_inbound() {
    let sim = start(SimConfig::default()).await;
    sim.seed(3);
    let long = "9".repeat(10_000);
    let long_path = format!("{LOOKUP}/{long}");
    for path in [
        "/api/v1/points/issuance/999",
        "/api/v1/points/issuance/..",
        "/api/v1/points/issuance/%2E%2E",
        "/api/v1/points/issuance/1000001%2F..",
        "/api/v1/points/issuance/%20",
        "/api/v1/points/issuance/1000001%00",
        "/api/v1/points/issuance/%FF%FE",
        "/api/v1/points/issuance/-1",
        long_path.as_str(),
    ] {
        let (status, body) = raw_get(&sim, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["errorCode"], "NOT_FOUND_PAY_INBOUND", "{path}");
    }
    let (status, _) = raw_get(&sim, "/api/v1/points/issuance/1000001").await;
    assert_eq!(status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_answer_resource_not_found() {
    let sim = start(SimConfig::default()).await;
    let client = Client::new(&sim);
    for path in [
        "/api/v1/points/nothing",
        "/",
        "/api/v1/points/issuance/1/cancel/again",
    ] {
        let answer = client.get(path).await;
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (404, "RESOURCE_NOT_FOUND"),
            "{path}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_methods_answer_405_with_an_error_body() {
    let sim = start(SimConfig::default()).await;
    let answer = Client::new(&sim).post("/api/v1/points/balance", None).await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (405, "METHOD_NOT_ALLOWED")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn forced_statuses_including_unknown_ones_are_served_verbatim() {
    let sim = start(SimConfig::default()).await;
    let client = Client::new(&sim);
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
    let sim = start(SimConfig::default()).await;
    let client = Client::new(&sim);
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
    let sim = start(SimConfig::default()).await;
    let client = Client::new(&sim);
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
    let sim = start(SimConfig::default()).await;
    let client = Client::new(&sim);
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
        (balance.status, balance.error_code().as_str()),
        (401, "INVALID_AUTH_TOKEN")
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
    let sim = start(SimConfig::default().with_faults(faults)).await;
    let client = Client::new(&sim);
    let id = sim.seed(1).remove(0);
    let inside = client.get(&format!("{LOOKUP}/{id}")).await;
    assert_eq!(
        (inside.status, inside.error_code().as_str()),
        (401, "EXPIRED_AUTH_TOKEN")
    );
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
    let sim = start(SimConfig::default().with_faults(faults)).await;
    let client = Client::new(&sim);
    let id = sim.seed(1).remove(0);
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
    let sim = start(SimConfig::default().with_faults(faults)).await;
    let id = sim.seed(1).remove(0);
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

#[tokio::test]
async fn dropped_connections_break_the_body_after_the_headers() {
    let faults = FaultConfig {
        drop_connection: FaultRule::always(),
        drop_after_bytes: 20,
        ..FaultConfig::default()
    };
    let sim = start(SimConfig::default().with_faults(faults)).await;
    let id = sim.seed(1).remove(0);
    let url = format!("{}{LOOKUP}/{id}", sim.base_url());
    let outcome = match reqwest::Client::new()
        .get(&url)
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
    };
    assert!(outcome.starts_with("body failed"), "{outcome}");
    // Immediately (no bytes) the client sees the same thing.
    sim.set_faults(FaultConfig {
        drop_connection: FaultRule::always(),
        ..FaultConfig::default()
    });
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token())
        .send()
        .await;
    assert!(response.is_err() || response.unwrap().bytes().await.is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn stats_count_requests_by_status_code_and_issuance() {
    let sim = start(SimConfig::default()).await;
    let client = Client::new(&sim);
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
    let sim = start(SimConfig::default().with_speed(1e6)).await;
    let client = Client::new(&sim);
    let ids = sim.seed(5);
    tokio::time::sleep(Duration::from_millis(50)).await;
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

/// Resident memory of this process (Linux), for the benchmark's eyes only.
fn resident_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or("VmRSS: 0 kB");
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_million_issuances_fit_and_stay_reachable() {
    let sim = start(SimConfig::default()).await;
    let (rss_before, started) = (resident_kib(), std::time::Instant::now());
    let ids = sim.seed(1_000_000);
    let elapsed = started.elapsed();
    // The ids themselves (~32 MB of Strings) are the test's, not the simulator's.
    eprintln!(
        "seeded 1,000,000 issuances in {elapsed:?}; RSS grew {} KiB",
        resident_kib() - rss_before
    );
    assert_eq!(ids.len(), 1_000_000);
    let last = Client::new(&sim)
        .get(&format!("{LOOKUP}/{}", ids[999_999]))
        .await;
    assert_eq!(last.json()["data"]["id"], ids[999_999].as_str());
    sim.shutdown().await;
}
