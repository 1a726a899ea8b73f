//! A scripted stand-in for the API's issuance lookup, on 127.0.0.1:0.
//!
//! Every request is recorded. A request counts as `authorized` only when its
//! bearer token verifies as the real API verifies it: HS256 signed with the
//! *decoded* test secret, with an `accessKey` claim and an `iat` within
//! [`IAT_WINDOW`] of now. A token signed with the Base64 text, or any other
//! `Bearer ey…` string, is recorded as unauthorized (and still answered, so a
//! test sees the request instead of a stalled daemon).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::config::{SECRET_B64, decoded_secret};

/// How far a token's `iat` may be from the server's clock (the real API allows
/// a few seconds; loopback tests get a little more for slow machines).
pub const IAT_WINDOW: Duration = Duration::from_secs(30);

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
    /// The bearer token verified (see the module doc).
    pub authorized: bool,
    /// The `accessKey` claim of a verified token.
    pub access_key: Option<String>,
    /// The request target as it arrived (path and query, still encoded).
    pub target: String,
    /// The status the server answered it with.
    pub answered: u16,
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
    /// Per `"METHOD /path"` of any other route (the charge POST, the
    /// balance): answers to give in order; the last one repeats. A route
    /// without answers is a 404, as before.
    routes: HashMap<String, Vec<Reply>>,
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
                |State(script): State<Arc<Mutex<Script>>>,
                 method: axum::http::Method,
                 uri: axum::http::Uri| async move {
                    let mut script = script.lock().unwrap();
                    script.others.push(uri.to_string());
                    let route = format!("{method} {}", uri.path());
                    let reply = match script.routes.get_mut(&route) {
                        Some(queue) if queue.len() > 1 => Some(queue.remove(0)),
                        Some(queue) => queue.first().cloned(),
                        None => None,
                    };
                    let Some(reply) = reply else {
                        return (
                            StatusCode::NOT_FOUND,
                            r#"{"errorCode":"RESOURCE_NOT_FOUND"}"#,
                        )
                            .into_response();
                    };
                    (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response()
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

    /// Answers for another route (`"POST /api/v1/points/issuance"`, the charge
    /// POST; `"GET /api/v1/points/balance"`), in order; the last one repeats.
    /// Its requests are in [`Self::other_requests`].
    pub fn script_route(&self, route: &str, replies: Vec<Reply>) {
        self.script
            .lock()
            .unwrap()
            .routes
            .insert(route.to_owned(), replies);
    }

    /// From now on, `id` always answers `reply`.
    pub fn set(&self, id: &str, reply: Reply) {
        self.script(id, vec![reply]);
    }

    /// From now on, `id` answers READY with a virtual account due in `due_in`.
    pub fn set_ready(&self, id: &str, due_in: chrono::Duration) {
        self.set(id, Reply::ready_due_in(id, "READY", due_in));
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
        let access_key = verified_access_key(&headers);
        let reply = if let Some(everyone) = script.everyone.clone() {
            everyone
        } else {
            match script.replies.get_mut(&id) {
                Some(queue) if queue.len() > 1 => queue.remove(0),
                Some(queue) => queue[0].clone(),
                None => Reply::error(404, "NOT_FOUND_PAY_INBOUND"),
            }
        };
        script.requests.push(Request {
            at: Instant::now(),
            id: id.clone(),
            authorized: access_key.is_some(),
            access_key,
            target: uri.to_string(),
            answered: reply.status,
        });
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
        // The fake's behaviour (an answer that never comes), not a wait.
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
        // Ends at `limit` or when the client hangs up (an endless body).
        while sent < limit {
            let piece = if stream == Stream::Drip {
                // The fake's behaviour (a dripping body), not a wait.
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

/// The `accessKey` claim of the request's bearer token, when the token is
/// HS256-signed with the decoded test secret and was issued within [`IAT_WINDOW`].
pub fn verified_access_key(headers: &HeaderMap) -> Option<String> {
    let header = headers.get("authorization")?.to_str().ok()?;
    let token = header.strip_prefix("Bearer ")?;
    let mut validation = Validation::new(Algorithm::HS256);
    // Like the API: no `exp`, only `accessKey` and `iat`.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &DecodingKey::from_secret(&decoded_secret(SECRET_B64)),
        &validation,
    )
    .ok()?
    .claims;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    let iat = claims["iat"].as_u64()?;
    if now.abs_diff(iat) > IAT_WINDOW.as_secs() {
        return None;
    }
    claims["accessKey"].as_str().map(str::to_owned)
}
