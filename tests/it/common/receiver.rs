//! A webhook receiver on 127.0.0.1, verifying every request's Standard
//! Webhooks signature with the `standardwebhooks` crate (the reference
//! library, not the daemon's signer), and answering as told: 2xx, an error
//! code, 429 with `Retry-After`, 410, a redirect elsewhere, slowly, never
//! (hang), or not at all (gone: listener and connections closed, until it
//! comes back on the same port).
//!
//! A small HTTP/1.1 server of its own (keep-alive, `Content-Length` bodies),
//! so that going away really closes every connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::wait::wait_for;

/// A secret for test sinks: `whsec_` + Base64 of 32 bytes.
pub const WEBHOOK_SECRET: &str = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0zMi1ieXRlcyEhIQ==";
/// The secret a rotating test sink held before [`WEBHOOK_SECRET`]
/// (`previous_secret`): another 32 bytes.
pub const PREVIOUS_WEBHOOK_SECRET: &str = "whsec_cHJldmlvdXMtd2ViaG9vay1zZWNyZXQtMzItYnl0ZXM=";

/// A standard sink's kind in the middle of a rotation: signed with
/// [`WEBHOOK_SECRET`], and with [`PREVIOUS_WEBHOOK_SECRET`] too until `until`.
pub fn rotating(until: chrono::DateTime<chrono::Utc>) -> issuance_watcher::settings::SinkKind {
    use issuance_watcher::settings::{PreviousSecret, SinkKind, SinkSecret, WebhookSecret};
    let inline = |text: &str| {
        SinkSecret::Inline(std::sync::Arc::new(
            WebhookSecret::from_text(text, "test").unwrap(),
        ))
    };
    SinkKind::Standard {
        secret: inline(WEBHOOK_SECRET),
        previous: Some(PreviousSecret {
            secret: inline(PREVIOUS_WEBHOOK_SECRET),
            until,
        }),
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 204.
    Ok,
    /// This status, at once.
    Fail(u16),
    /// 429 with `Retry-After: <seconds>`.
    RetryAfter(u64),
    /// 429 with `Retry-After:` an HTTP date (IMF-fixdate) this many seconds ahead.
    RetryAfterDate(u64),
    /// 410 Gone.
    Gone,
    /// This 3xx status with `Location: http://<addr>/hooks` (another receiver).
    Redirect(u16, SocketAddr),
    /// 200 after this many milliseconds.
    Slow(u64),
    /// Never answers.
    Hang,
    /// This status with a hostile body: terminal escapes, NUL, BEL, CR,
    /// invalid UTF-8, then 1 MiB more ([`HOSTILE_BODY_HEAD`] first).
    Hostile(u16),
}

/// How a [`Mode::Hostile`] answer's body starts (1 MiB of `A` follows).
pub const HOSTILE_BODY_HEAD: &[u8] =
    b"ERR \x1b[2J\x1b]0;pwned\x07\x00 \r\nline two\t\xff\xfe \xe2\x80\xae end ";

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// When the answer was decided (after a slow answer's wait).
    pub at: Instant,
    /// When the request had arrived (before any wait).
    pub arrived: Instant,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    /// Whether the signature verified (with the reference library).
    pub verified: Result<(), String>,
    /// The status answered (`None`: hung, or the answer could not be written).
    pub answered: Option<u16>,
}

impl Received {
    pub fn webhook_id(&self) -> String {
        self.header("webhook-id")
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    pub fn event(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn delivered(&self) -> bool {
        self.answered.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Decides the answer to one request from its event and the number of
/// requests before it (`None`: the receiver's mode).
pub type Rule = Arc<dyn Fn(&serde_json::Value, usize) -> Option<Mode> + Send + Sync>;

struct State {
    mode: Mode,
    rule: Option<Rule>,
    /// Requests that arrived and are not in `received` yet (slow answers).
    pending: usize,
    received: Vec<Received>,
    secret: String,
}

/// The receiver; stops (closing every connection) when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: Mutex<Option<JoinSet<()>>>,
    /// Held by the listening task and by every connection's: one holder left
    /// (this one) means the listener and every connection are closed.
    open: Arc<()>,
}

impl Receiver {
    pub async fn start(secret: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Ok,
            rule: None,
            pending: 0,
            received: Vec::new(),
            secret: secret.to_owned(),
        }));
        let receiver = Self {
            addr,
            state,
            server: Mutex::new(None),
            open: Arc::new(()),
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&self, listener: TcpListener) {
        let mut tasks = JoinSet::new();
        let (state, open) = (self.state.clone(), self.open.clone());
        // Serves until aborted (`go_away`, drop): a server, not a wait.
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, open) = (state.clone(), open.clone());
                connections.spawn(async move {
                    let _open = open;
                    connection(stream, state).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        *self.server.lock().unwrap() = Some(tasks);
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// Answers each request as `rule` says (its mode where it says nothing).
    pub fn answer_with(
        &self,
        rule: impl Fn(&serde_json::Value, usize) -> Option<Mode> + Send + Sync + 'static,
    ) {
        self.state.lock().unwrap().rule = Some(Arc::new(rule));
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Requests that arrived, answered or not yet (a slow answer).
    pub fn arrived(&self) -> usize {
        let s = self.state.lock().unwrap();
        s.received.len() + s.pending
    }

    /// Requests answered with a 2xx.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.delivered())
            .collect()
    }

    /// Closes the listener and every open connection: the port refuses connections.
    pub async fn go_away(&self) {
        if let Some(mut tasks) = self.server.lock().unwrap().take() {
            tasks.abort_all();
        }
        // The aborted tasks drop their sockets as the runtime gets to them.
        wait_for(
            "the receiver's listener and connections to close",
            Duration::from_secs(5),
            async || match Arc::strong_count(&self.open) - 1 {
                0 => Ok(()),
                open => Err(format!("{open} listener or connection tasks still open")),
            },
        )
        .await;
    }

    /// Listens again on the same port.
    pub async fn come_back(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

/// Serves one connection, request after request, until it closes (a server,
/// not a wait: the receiver going away aborts it).
async fn connection(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut buffer = Vec::new();
    loop {
        let Some((headers, body)) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let arrived = Instant::now();
        let (mode, secret) = {
            let mut s = state.lock().unwrap();
            let event = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            let index = s.received.len() + s.pending;
            s.pending += 1;
            let ruled = s.rule.as_ref().and_then(|rule| rule(&event, index));
            (ruled.unwrap_or(s.mode), s.secret.clone())
        };
        let verified = standardwebhooks::Webhook::new(&secret)
            .map_err(|e| e.to_string())
            .and_then(|wh| wh.verify(&body, &headers).map_err(|e| e.to_string()));
        let mut payload = Vec::new();
        let (status, extra) = match mode {
            Mode::Ok => (Some(204), String::new()),
            Mode::Fail(code) => (Some(code), String::new()),
            Mode::RetryAfter(secs) => (Some(429), format!("retry-after: {secs}\r\n")),
            Mode::RetryAfterDate(secs) => {
                let at = std::time::SystemTime::now() + Duration::from_secs(secs);
                (
                    Some(429),
                    format!("retry-after: {}\r\n", httpdate::fmt_http_date(at)),
                )
            }
            Mode::Gone => (Some(410), String::new()),
            Mode::Redirect(code, to) => (Some(code), format!("location: http://{to}/hooks\r\n")),
            Mode::Slow(ms) => {
                // The fake's behaviour (a slow answer), not a wait.
                tokio::time::sleep(Duration::from_millis(ms)).await;
                (Some(200), String::new())
            }
            Mode::Hang => (None, String::new()),
            Mode::Hostile(code) => {
                payload.extend_from_slice(HOSTILE_BODY_HEAD);
                payload.resize(HOSTILE_BODY_HEAD.len() + (1 << 20), b'A');
                (Some(code), String::new())
            }
        };
        let index = {
            let mut s = state.lock().unwrap();
            s.pending -= 1;
            s.received.push(Received {
                at: Instant::now(),
                arrived,
                headers,
                body,
                verified,
                answered: None,
            });
            s.received.len() - 1
        };
        let Some(status) = status else {
            // Hang: hold the connection open, answer nothing (the fake's
            // behaviour, not a wait; ends when the receiver goes away).
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        };
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{extra}\r\n",
            payload.len()
        );
        let mut response = response.into_bytes();
        response.extend_from_slice(&payload);
        if stream.write_all(&response).await.is_err() {
            return;
        }
        state.lock().unwrap().received[index].answered = Some(status);
    }
}

/// Reads one request (headers and a `Content-Length` body); `None` when the
/// connection closes. Each turn reads more or ends: no wait of its own.
async fn read_request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Option<(http::HeaderMap, Vec<u8>)> {
    loop {
        let mut parsed = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut parsed);
        if let Ok(httparse::Status::Complete(head)) = request.parse(buffer) {
            let mut headers = http::HeaderMap::new();
            for h in request.headers.iter() {
                headers.append(
                    http::HeaderName::from_bytes(h.name.as_bytes()).ok()?,
                    http::HeaderValue::from_bytes(h.value).ok()?,
                );
            }
            let length: usize = headers
                .get("content-length")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0);
            while buffer.len() < head + length {
                read_more(stream, buffer).await?;
            }
            let body = buffer[head..head + length].to_vec();
            buffer.drain(..head + length);
            return Some((headers, body));
        }
        read_more(stream, buffer).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

/// What the webhook suites start with: a scripted API, one receiver that
/// verifies signatures, and a directory for the database.
pub struct World {
    pub api: super::ScriptedApi,
    pub receiver: Receiver,
    pub dir: tempfile::TempDir,
}

impl World {
    pub async fn new() -> Self {
        Self {
            api: super::ScriptedApi::start().await,
            receiver: Receiver::start(WEBHOOK_SECRET).await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The daemon's settings with one standard sink, `shop`, at the receiver,
    /// edited by `edit`.
    pub fn shop(
        &self,
        edit: impl FnOnce(&mut issuance_watcher::settings::WebhookSettings),
    ) -> super::TestSettings {
        super::TestSettings::new(&self.api.base_url(), &self.dir.path().join("watcher.db")).webhook(
            "shop",
            &self.receiver.url(),
            edit,
        )
    }
}
