//! Shared test harness: a scripted Bunjang API on loopback, settings pointing at
//! it with fast intervals, a fresh database, and a watcher running in the background.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use issuance_watcher::domain::clock::Clock;
use issuance_watcher::settings::Settings;
use issuance_watcher::store::Store;
use issuance_watcher::watcher::Watcher;
use tokio_util::sync::CancellationToken;

pub const SECRET_B64: &str = "aXNzdWFuY2Utd2F0Y2hlci10ZXN0LXZlY3Rvci1zZWNyZXQtMzJiIQ==";

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    /// When set, the body is generated instead of `body` (hostile-input tests).
    pub stream: Option<Stream>,
}

/// A generated answer, written through a pipe so nothing is held in memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stream {
    /// 200 with `bytes` of a JSON-looking body, chunked (no length up front).
    Chunked(u64),
    /// 200 announcing `Content-Length: bytes` and sending them.
    Sized(u64),
    /// 200 whose chunked body never ends, as fast as the client reads.
    Endless,
    /// 200 whose body never ends, one byte every 100 ms (defeats read timeouts).
    Drip,
    /// No response at all: the request hangs (for an hour).
    Hang,
}

impl Reply {
    pub fn issuance(id: &str, status: &str) -> Self {
        Self::json(
            200,
            &format!(
                r#"{{"data":{{"id":"{id}","amount":10000,"status":"{status}","createdAt":"2026-11-25T10:00:00","modifiedAt":"2026-11-25T10:00:05","preparedVbankInfo":null}}}}"#
            ),
        )
    }

    /// READY with a due date `due_in` from now, written as naive Korea time like the API does.
    pub fn ready_due_in(id: &str, status: &str, due_in: chrono::Duration) -> Self {
        let due = (chrono::Utc::now() + due_in)
            .with_timezone(&chrono_tz::Asia::Seoul)
            .format("%Y-%m-%dT%H:%M:%S");
        Self::json(
            200,
            &format!(
                r#"{{"data":{{"id":"{id}","amount":10000,"status":"{status}","createdAt":"2026-11-25T10:00:00","modifiedAt":"2026-11-25T10:00:05","preparedVbankInfo":{{"vbankDueDate":"{due}","vbankAccountNumber":"451235741265","bankName":"국민은행","vbankHolderName":"번개장터"}}}}}}"#
            ),
        )
    }

    pub fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_owned(),
            headers: vec![],
            stream: None,
        }
    }

    pub fn stream(stream: Stream) -> Self {
        Self {
            stream: Some(stream),
            ..Self::json(200, "")
        }
    }

    pub fn error(status: u16, code: &str) -> Self {
        Self::json(
            status,
            &format!(r#"{{"errorCode":"{code}","reason":"scripted"}}"#),
        )
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    /// The id as the server decoded it from the path.
    pub id: String,
    pub authorized: bool,
    /// The request target as it arrived (path and query, still encoded).
    pub target: String,
}

#[derive(Default)]
struct Script {
    /// Per id: answers to give in order; the last one repeats.
    replies: HashMap<String, Vec<Reply>>,
    /// Answer for every id, taking precedence while set (e.g. a 401 window).
    everyone: Option<Reply>,
    requests: Vec<Request>,
    /// Targets of requests to any other route.
    others: Vec<String>,
    /// Bytes written so far by generated (`Stream`) bodies.
    streamed: Arc<std::sync::atomic::AtomicU64>,
}

/// A scripted stand-in for the API's issuance lookup, on 127.0.0.1:0.
#[derive(Clone)]
pub struct ScriptedApi {
    script: Arc<Mutex<Script>>,
    pub addr: SocketAddr,
}

impl ScriptedApi {
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let app = axum::Router::new()
            .route("/api/v1/points/issuance/{id}", axum::routing::get(lookup))
            .fallback(
                |State(script): State<Arc<Mutex<Script>>>, uri: axum::http::Uri| async move {
                    script.lock().unwrap().others.push(uri.to_string());
                    (
                        StatusCode::NOT_FOUND,
                        r#"{"errorCode":"RESOURCE_NOT_FOUND"}"#,
                    )
                },
            )
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { script, addr }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers for `id`, in order; the last one repeats forever.
    pub fn script(&self, id: &str, replies: Vec<Reply>) {
        self.script
            .lock()
            .unwrap()
            .replies
            .insert(id.to_owned(), replies);
    }

    /// From now on, `id` always answers `reply`.
    pub fn set(&self, id: &str, reply: Reply) {
        self.script(id, vec![reply]);
    }

    pub fn answer_everyone(&self, reply: Option<Reply>) {
        self.script.lock().unwrap().everyone = reply;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.script.lock().unwrap().requests.clone()
    }

    /// Bytes the generated bodies have written so far (what clients were sent).
    pub fn streamed_bytes(&self) -> u64 {
        self.script
            .lock()
            .unwrap()
            .streamed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests that did not reach the lookup route (should be none).
    pub fn other_requests(&self) -> Vec<String> {
        self.script.lock().unwrap().others.clone()
    }

    pub fn requests_for(&self, id: &str) -> usize {
        self.requests().iter().filter(|r| r.id == id).count()
    }
}

async fn lookup(
    State(script): State<Arc<Mutex<Script>>>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let (reply, streamed) = {
        let mut script = script.lock().unwrap();
        let streamed = script.streamed.clone();
        let authorized = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer ey"));
        script.requests.push(Request {
            at: Instant::now(),
            id: id.clone(),
            authorized,
            target: uri.to_string(),
        });
        let reply = if let Some(everyone) = script.everyone.clone() {
            everyone
        } else {
            match script.replies.get_mut(&id) {
                Some(queue) if queue.len() > 1 => queue.remove(0),
                Some(queue) => queue[0].clone(),
                None => Reply::error(404, "NOT_FOUND_PAY_INBOUND"),
            }
        };
        (reply, streamed)
    };
    if let Some(stream) = reply.stream {
        return generated(stream, streamed).await;
    }
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// Serves a generated body through a pipe: a writer task produces it and
/// stops (counting what it wrote) as soon as the client goes away.
async fn generated(stream: Stream, counter: Arc<std::sync::atomic::AtomicU64>) -> Response {
    use std::sync::atomic::Ordering;
    use tokio::io::AsyncWriteExt;
    if stream == Stream::Hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return StatusCode::OK.into_response();
    }
    let (mut writer, reader) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let chunk = vec![b'x'; 16 * 1024];
        let limit = match stream {
            Stream::Chunked(n) | Stream::Sized(n) => n,
            _ => u64::MAX,
        };
        let mut sent = 0u64;
        if writer.write_all(b"{\"data\":\"").await.is_err() {
            return;
        }
        while sent < limit {
            let piece = if stream == Stream::Drip {
                tokio::time::sleep(Duration::from_millis(100)).await;
                &chunk[..1]
            } else {
                &chunk[..chunk.len().min((limit - sent) as usize)]
            };
            if writer.write_all(piece).await.is_err() {
                return; // the client hung up
            }
            sent += piece.len() as u64;
            counter.fetch_add(piece.len() as u64, Ordering::Relaxed);
        }
        let _ = writer.write_all(b"\"}").await;
    });
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(reader));
    let mut response = (StatusCode::OK, body).into_response();
    if let Stream::Sized(n) = stream {
        response.headers_mut().insert(
            axum::http::header::CONTENT_LENGTH,
            (n + 11).to_string().parse().unwrap(),
        );
    }
    response
}

/// Settings for tests: the given API, a database under `dir`, fast intervals.
/// `overrides` are extra `ISSUANCE_WATCHER__...` variables (later wins).
pub fn settings(base_url: &str, dir: &std::path::Path, overrides: &[(&str, &str)]) -> Settings {
    let db = dir.join("watcher.db");
    let mut env: Vec<(String, String)> = [
        ("ISSUANCE_WATCHER__API__BASE_URL", base_url),
        ("ISSUANCE_WATCHER__API__ACCESS_KEY", "test-access-key"),
        ("ISSUANCE_WATCHER__API__SECRET_KEY", SECRET_B64),
        ("ISSUANCE_WATCHER__API__TIMEOUT", "2s"),
        ("ISSUANCE_WATCHER__API__REQUESTS_PER_SECOND", "500"),
        ("ISSUANCE_WATCHER__DATABASE__PATH", db.to_str().unwrap()),
        ("ISSUANCE_WATCHER__POLL__INTERVAL", "50ms"),
        ("ISSUANCE_WATCHER__POLL__MAX_INTERVAL", "400ms"),
        ("ISSUANCE_WATCHER__POLL__BACKOFF_MAX", "200ms"),
        ("ISSUANCE_WATCHER__POLL__OVERDUE_INTERVAL", "200ms"),
        ("ISSUANCE_WATCHER__POLL__AFTER_DUE_DELAY", "50ms"),
        ("ISSUANCE_WATCHER__POLL__STARTUP_SPREAD", "100ms"),
        ("ISSUANCE_WATCHER__POLL__IDLE_RECHECK", "100ms"),
        ("ISSUANCE_WATCHER__POLL__LEASE", "5s"),
        ("ISSUANCE_WATCHER__POLL__AUTH_PAUSE", "1s"),
        ("ISSUANCE_WATCHER__POLL__AUTH_PAUSE_MAX", "2s"),
        ("ISSUANCE_WATCHER__POLL__NOT_FOUND_GRACE", "1s"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Settings::load_with_env(None, env).expect("test settings are valid")
}

/// A watcher running in the background until stopped.
pub struct Running {
    pub store: Store,
    token: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn start(settings: Settings) -> Self {
        let store = Store::open_migrated(&settings.database).await.unwrap();
        let watcher = Watcher::new(settings, store.clone(), Clock::real()).unwrap();
        let token = CancellationToken::new();
        let loop_token = token.clone();
        let handle = tokio::spawn(async move { watcher.run(loop_token).await.unwrap() });
        Self {
            store,
            token,
            handle,
        }
    }

    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("stops promptly")
            .unwrap();
        self.store.close().await;
    }

    pub async fn insert(&self, ids: &[&str]) {
        for id in ids {
            sqlx::query("INSERT INTO issuances (id) VALUES (?)")
                .bind(id)
                .execute(self.store.pool())
                .await
                .unwrap();
        }
    }

    pub async fn transitions(&self, id: &str) -> Vec<(Option<String>, String)> {
        sqlx::query_as(
            "SELECT from_status, to_status FROM transitions WHERE issuance_id = ? ORDER BY seq",
        )
        .bind(id)
        .fetch_all(self.store.pool())
        .await
        .unwrap()
    }

    pub async fn column(&self, id: &str, column: &'static str) -> Option<String> {
        let sql = match column {
            "watch" => "SELECT watch FROM issuances WHERE id = ?",
            "status" => "SELECT status FROM issuances WHERE id = ?",
            "last_error" => "SELECT last_error FROM issuances WHERE id = ?",
            other => panic!("no helper for column {other}"),
        };
        sqlx::query_scalar(sql)
            .bind(id)
            .fetch_optional(self.store.pool())
            .await
            .unwrap()
            .flatten()
    }

    pub async fn flags(&self, id: &str) -> Vec<(String, bool)> {
        sqlx::query_as(
            "SELECT kind, cleared_at IS NOT NULL FROM flags WHERE issuance_id = ? ORDER BY kind",
        )
        .bind(id)
        .fetch_all(self.store.pool())
        .await
        .unwrap()
    }

    /// Waits (up to 15 s) until `id` is in watch state `watch`.
    pub async fn wait_watch(&self, id: &str, watch: &str) {
        eventually(&format!("{id} to be {watch}"), || async {
            self.column(id, "watch").await.as_deref() == Some(watch)
        })
        .await;
    }
}

pub fn row(from: Option<&str>, to: &str) -> (Option<String>, String) {
    (from.map(str::to_owned), to.to_owned())
}

/// Polls `condition` every 25 ms until it holds; panics after 15 s.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
