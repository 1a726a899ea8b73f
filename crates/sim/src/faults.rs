//! Fault injection: which fault (if any) a request gets, and the faulty responses.
//! `created_then_drop` / `created_then_hang` act on charge POSTs after the
//! charge was created (the ambiguous case), whatever the scope.
//!
//! Each fault fires by a seeded random `rate` (0..1) and/or inside real-time
//! `windows` measured from the simulator's start. Rules are checked in a fixed
//! order (drop, hang, 429, 429 without Retry-After, 401, 5xx, non-JSON,
//! oversized) and the first that fires wins; `slow` is independent and only
//! delays whatever answer follows. By default only the issuance lookup
//! (`GET /api/v1/points/issuance/{id}`) is affected.
//!
//! What a client observes for `drop_connection` (checked by the integration tests):
//! - `drop_after_bytes = 0` (default): the body stream fails before hyper has
//!   written anything, so the connection closes with no response at all; reqwest
//!   fails in `send()` ("error sending request", hyper `IncompleteMessage`).
//! - `drop_after_bytes > 0`: a 200 status line, headers and that many bytes of
//!   a chunked JSON-looking body arrive, then (50 ms later) the connection is
//!   aborted; `send()` succeeds and reading the body fails (`is_body()`/`is_decode()`).

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio_util::io::ReaderStream;

/// When one fault fires.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRule {
    /// Probability per eligible request (0 disables the random part).
    pub rate: f64,
    /// Real-time windows, from the simulator start, during which every eligible request gets it.
    pub windows: Vec<Window>,
}

impl FaultRule {
    pub fn rate(rate: f64) -> Self {
        Self {
            rate,
            windows: Vec::new(),
        }
    }

    pub fn always() -> Self {
        Self::rate(1.0)
    }

    pub fn during(start: Duration, end: Duration) -> Self {
        Self {
            rate: 0.0,
            windows: vec![Window { start, end }],
        }
    }

    /// Draws only when the rate is positive, so disabled rules do not shift the RNG.
    fn fires(&self, since_start: Duration, rng: &mut fastrand::Rng) -> bool {
        self.windows
            .iter()
            .any(|w| w.start <= since_start && since_start < w.end)
            || (self.rate > 0.0 && rng.f64() < self.rate)
    }
}

/// `[start, end)` in real time since the simulator started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Window {
    #[serde(with = "humantime_serde")]
    pub start: Duration,
    #[serde(with = "humantime_serde")]
    pub end: Duration,
}

/// Which requests faults apply to.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FaultScope {
    /// Only `GET /api/v1/points/issuance/{id}` (what the watcher polls).
    #[default]
    Lookup,
    /// Every `/api/` request.
    AllApi,
}

/// The 5xx answers `server_error` picks from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ServerErrorKind {
    /// 500 `{"errorCode":"INTERNAL_ERROR"}`
    Internal,
    /// 500 `{"errorCode":"UNKWOWN_ERROR"}` (sic, as documented)
    Unkwown,
    /// 502 with an HTML page from a proxy
    BadGatewayHtml,
    /// 503 with an HTML page from a proxy
    UnavailableHtml,
}

/// All fault switches; replace at runtime with `PUT /_sim/faults` or `SimHandle::set_faults`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    pub scope: FaultScope,
    pub server_error: FaultRule,
    /// Picked uniformly when `server_error` fires.
    pub server_error_kinds: Vec<ServerErrorKind>,
    pub slow: FaultRule,
    #[serde(with = "humantime_serde")]
    pub slow_delay: Duration,
    /// Sleep `hang_for` (past any sane client timeout), then answer normally.
    pub hang: FaultRule,
    #[serde(with = "humantime_serde")]
    pub hang_for: Duration,
    /// 200 with an HTML body.
    pub non_json: FaultRule,
    /// 200 with a streamed JSON-looking body of `oversized_bytes` bytes.
    pub oversized: FaultRule,
    pub oversized_bytes: u64,
    /// 429 with `Retry-After: retry_after_secs`.
    pub too_many_requests: FaultRule,
    pub retry_after_secs: u64,
    /// 429 without `Retry-After`.
    pub too_many_requests_bare: FaultRule,
    /// 401 with `unauthorized_code` (EXPIRED_AUTH_TOKEN or INVALID_AUTH_TOKEN).
    pub unauthorized: FaultRule,
    pub unauthorized_code: String,
    /// 200 whose body stream breaks, so the connection is aborted.
    pub drop_connection: FaultRule,
    pub drop_after_bytes: usize,
    /// Charge POSTs only (whatever `scope`): the charge IS created, then the
    /// connection is dropped before any answer (the ambiguous POST).
    pub created_then_drop: FaultRule,
    /// Charge POSTs only: the charge IS created, then the answer waits
    /// `hang_for` (a client times out, or is killed, with a charge existing).
    pub created_then_hang: FaultRule,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            scope: FaultScope::Lookup,
            server_error: FaultRule::default(),
            server_error_kinds: vec![
                ServerErrorKind::Internal,
                ServerErrorKind::Unkwown,
                ServerErrorKind::BadGatewayHtml,
                ServerErrorKind::UnavailableHtml,
            ],
            slow: FaultRule::default(),
            slow_delay: Duration::from_secs(2),
            hang: FaultRule::default(),
            hang_for: Duration::from_secs(60),
            non_json: FaultRule::default(),
            oversized: FaultRule::default(),
            oversized_bytes: 2 * 1024 * 1024,
            too_many_requests: FaultRule::default(),
            retry_after_secs: 1,
            too_many_requests_bare: FaultRule::default(),
            unauthorized: FaultRule::default(),
            unauthorized_code: "EXPIRED_AUTH_TOKEN".to_owned(),
            drop_connection: FaultRule::default(),
            drop_after_bytes: 0,
            created_then_drop: FaultRule::default(),
            created_then_hang: FaultRule::default(),
        }
    }
}

/// The fault chosen for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    DropConnection { after_bytes: usize },
    Hang(Duration),
    TooManyRequests { retry_after_secs: Option<u64> },
    Unauthorized(String),
    ServerError(ServerErrorKind),
    NonJson,
    Oversized(u64),
}

/// The decision for one request: an optional delay, then an optional fault.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    pub delay: Option<Duration>,
    pub fault: Option<Fault>,
}

/// What happens after a charge POST was handled (the charge exists by then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterCreate {
    Answer,
    Drop,
    Hang(Duration),
}

impl FaultConfig {
    /// Decides for one charge POST what follows its creation.
    pub fn after_create(&self, since_start: Duration, rng: &mut fastrand::Rng) -> AfterCreate {
        if self.created_then_drop.fires(since_start, rng) {
            AfterCreate::Drop
        } else if self.created_then_hang.fires(since_start, rng) {
            AfterCreate::Hang(self.hang_for)
        } else {
            AfterCreate::Answer
        }
    }

    /// Decides for one eligible request `since_start` real time after start.
    pub fn decide(&self, since_start: Duration, rng: &mut fastrand::Rng) -> Decision {
        let delay = self.slow.fires(since_start, rng).then_some(self.slow_delay);
        let mut fires = |rule: &FaultRule| rule.fires(since_start, rng);
        let fault = if fires(&self.drop_connection) {
            Some(Fault::DropConnection {
                after_bytes: self.drop_after_bytes,
            })
        } else if fires(&self.hang) {
            Some(Fault::Hang(self.hang_for))
        } else if fires(&self.too_many_requests) {
            Some(Fault::TooManyRequests {
                retry_after_secs: Some(self.retry_after_secs),
            })
        } else if fires(&self.too_many_requests_bare) {
            Some(Fault::TooManyRequests {
                retry_after_secs: None,
            })
        } else if fires(&self.unauthorized) {
            Some(Fault::Unauthorized(self.unauthorized_code.clone()))
        } else if fires(&self.server_error) {
            let kinds = &self.server_error_kinds;
            let kind = if kinds.is_empty() {
                ServerErrorKind::Internal
            } else {
                kinds[rng.usize(..kinds.len())]
            };
            Some(Fault::ServerError(kind))
        } else if fires(&self.non_json) {
            Some(Fault::NonJson)
        } else if fires(&self.oversized) {
            Some(Fault::Oversized(self.oversized_bytes))
        } else {
            None
        };
        Decision { delay, fault }
    }
}

/// The JSON error body every API error uses.
pub fn error_response(status: StatusCode, code: &str, reason: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "errorCode": code, "reason": reason })),
    )
        .into_response()
}

fn html(status: StatusCode, title: &str) -> Response {
    let page = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/html"))],
        page,
    )
        .into_response()
}

/// The response for a fault that answers by itself (`Hang` has none: it delays the normal answer).
pub fn respond(fault: &Fault) -> Option<Response> {
    Some(match fault {
        Fault::Hang(_) => return None,
        Fault::DropConnection { after_bytes } => {
            let prefix = br#"{"data":{"id":"1","amount":100000,"status":"READY","createdAt":""#;
            let prefix: Vec<u8> = prefix.iter().copied().cycle().take(*after_bytes).collect();
            // The pause lets hyper flush the headers and prefix before the break.
            let pause = if *after_bytes == 0 {
                Duration::ZERO
            } else {
                Duration::from_millis(50)
            };
            let reader =
                std::io::Cursor::new(prefix).chain(Broken(Box::pin(tokio::time::sleep(pause))));
            json_stream(ReaderStream::new(reader))
        }
        Fault::TooManyRequests { retry_after_secs } => {
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                "rate limited",
            );
            if let Some(secs) = retry_after_secs {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
            }
            response
        }
        Fault::Unauthorized(code) => error_response(
            StatusCode::UNAUTHORIZED,
            code,
            "injected authentication failure",
        ),
        Fault::ServerError(ServerErrorKind::Internal) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal server error",
        ),
        Fault::ServerError(ServerErrorKind::Unkwown) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKWOWN_ERROR",
            "unknown error",
        ),
        Fault::ServerError(ServerErrorKind::BadGatewayHtml) => {
            html(StatusCode::BAD_GATEWAY, "502 Bad Gateway")
        }
        Fault::ServerError(ServerErrorKind::UnavailableHtml) => html(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Temporarily Unavailable",
        ),
        Fault::NonJson => html(StatusCode::OK, "Service maintenance"),
        Fault::Oversized(bytes) => {
            // Valid JSON of exactly `bytes` bytes when possible, generated as it is sent.
            let (head, tail) = (&br#"{"data":""#[..], &br#""}"#[..]);
            let filler = bytes.saturating_sub((head.len() + tail.len()) as u64);
            let reader = std::io::Cursor::new(head)
                .chain(tokio::io::repeat(b'x').take(filler))
                .chain(std::io::Cursor::new(tail));
            json_stream(ReaderStream::with_capacity(reader, 64 * 1024))
        }
    })
}

fn json_stream<R: AsyncRead + Send + 'static>(stream: ReaderStream<R>) -> Response {
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A reader that fails after a pause: the body stream errors and hyper aborts the connection.
struct Broken(Pin<Box<tokio::time::Sleep>>);

impl AsyncRead for Broken {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().0.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "injected dropped connection",
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_fires_by_default_and_no_randomness_is_consumed() {
        let mut rng = fastrand::Rng::with_seed(1);
        let before = rng.clone().u64(..);
        assert_eq!(
            FaultConfig::default().decide(Duration::ZERO, &mut rng),
            Decision::default()
        );
        assert_eq!(rng.u64(..), before);
    }

    #[test]
    fn windows_fire_for_every_request_inside_them_only() {
        let config = FaultConfig {
            unauthorized: FaultRule::during(Duration::from_secs(10), Duration::from_secs(40)),
            ..FaultConfig::default()
        };
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(config.decide(Duration::from_secs(9), &mut rng).fault, None);
        assert_eq!(
            config.decide(Duration::from_secs(10), &mut rng).fault,
            Some(Fault::Unauthorized("EXPIRED_AUTH_TOKEN".into()))
        );
        assert_eq!(config.decide(Duration::from_secs(40), &mut rng).fault, None);
    }

    #[test]
    fn rates_fire_about_as_often_as_configured() {
        let config = FaultConfig {
            server_error: FaultRule::rate(0.25),
            ..FaultConfig::default()
        };
        let mut rng = fastrand::Rng::with_seed(5);
        let hits = (0..10_000)
            .filter(|_| config.decide(Duration::ZERO, &mut rng).fault.is_some())
            .count();
        assert!((2_200..2_800).contains(&hits), "{hits}");
    }

    #[test]
    fn slow_combines_with_a_fault() {
        let config = FaultConfig {
            slow: FaultRule::always(),
            too_many_requests: FaultRule::always(),
            ..FaultConfig::default()
        };
        let decision = config.decide(Duration::ZERO, &mut fastrand::Rng::with_seed(1));
        assert_eq!(decision.delay, Some(Duration::from_secs(2)));
        assert_eq!(
            decision.fault,
            Some(Fault::TooManyRequests {
                retry_after_secs: Some(1)
            })
        );
    }

    #[test]
    fn a_json_fault_config_parses_with_humantime() {
        let config: FaultConfig = serde_json::from_str(
            r#"{"hang": {"rate": 0.5}, "hang_for": "90s", "too_many_requests": {"windows": [{"start": "1s", "end": "2s"}]}}"#,
        )
        .unwrap();
        assert_eq!(config.hang_for, Duration::from_secs(90));
        assert_eq!(config.too_many_requests.windows.len(), 1);
    }
}
