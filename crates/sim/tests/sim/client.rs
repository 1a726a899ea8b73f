//! A client of the simulator as a Bunjang API user would write one: tokens signed
//! with the demo credentials, JSON answers, and raw request lines for paths that
//! an HTTP library would normalise.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bunjang_sim::cli::{DEMO_ACCESS_KEY, DEMO_SECRET_KEY};
use bunjang_sim::{DepositTiming, LifecycleConfig, SimConfig, SimHandle, Simulator};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const LOOKUP: &str = "/api/v1/points/issuance";

pub async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A simulator with `config` and a client of it: how most simulator tests begin.
pub async fn started(config: SimConfig) -> (SimHandle, Client) {
    let sim = start(config).await;
    let client = Client::new(&sim);
    (sim, client)
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn sign(key: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap()
}

pub fn demo_secret() -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(DEMO_SECRET_KEY)
        .expect("the demo secret is Base64")
}

/// A fresh, valid token for the demo credentials (with a nonce, so good for POST too).
pub fn token() -> String {
    sign(
        &demo_secret(),
        &json!({"accessKey": DEMO_ACCESS_KEY, "iat": now_secs(), "nonce": uuid::Uuid::new_v4().to_string()}),
    )
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The HTTP status and the body's `errorCode`, to compare with an expected pair.
    pub fn status_and_code(&self) -> (u16, String) {
        (self.status, self.error_code())
    }

    pub fn error_code(&self) -> String {
        self.json()["errorCode"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(sim: &SimHandle) -> Self {
        Self::at(&sim.base_url())
    }

    /// A client of a simulator at `base` (one running as another process).
    pub fn at(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self {
            base: base.to_owned(),
            http,
        }
    }

    pub async fn send(
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

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, Some(token()), None)
            .await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> Answer {
        self.send(reqwest::Method::POST, path, Some(token()), body)
            .await
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Answer {
        self.send(method, path, None, Some(body)).await
    }

    /// Seeds `count` issuances of `amount` through the control endpoint, as an
    /// operator would, and returns their ids in the order the simulator gave them.
    pub async fn seed(&self, count: usize, amount: u64) -> Vec<String> {
        let seeded = self
            .control(
                reqwest::Method::POST,
                "/_sim/seed",
                serde_json::json!({"count": count, "amount": amount}),
            )
            .await
            .json();
        let ids: Vec<String> = serde_json::from_value(seeded["ids"].clone())
            .unwrap_or_else(|e| panic!("seed answered without ids ({e}): {seeded}"));
        assert_eq!(ids.len(), count, "seed answered {seeded}");
        ids
    }
}

/// A lifecycle that plays out within about two real seconds at speed 3600:
/// WAITED for 30 simulated minutes (0.5 s), then READY, paid an hour later (1 s).
pub fn quick_lifecycle() -> LifecycleConfig {
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
pub async fn raw_get(sim: &SimHandle, path: &str) -> (u16, String) {
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
