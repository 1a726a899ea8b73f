//! HTTP transport for the lookup: a fresh token per request, hard time and size
//! limits, and every answer classified into something the policy can act on.

use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{StatusCode, Url, header};

use super::model::{LookupError, parse_lookup};
use crate::api::auth::TokenMinter;
use crate::domain::Observation;
use crate::domain::time::{API_RETRY_AFTER_CAP, parse_retry_after};
use crate::settings::{Settings, SettingsError};

/// Everything but RFC 3986 unreserved characters is encoded, so an id can never
/// add a path segment, a query or a fragment.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why a poll did not produce an observation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PollError {
    #[error("rate limited (HTTP 429)")]
    RateLimited,
    #[error("HTTP {http_status} {code}: credentials or clock are wrong{hint}")]
    Unauthorized {
        http_status: u16,
        code: String,
        hint: String,
    },
    #[error("HTTP 404 {code}: issuance not found")]
    NotFound { code: String },
    #[error("HTTP {http_status} {code}")]
    Server { http_status: u16, code: String },
    #[error("HTTP {http_status} {code}: request refused")]
    Refused { http_status: u16, code: String },
    /// A 3xx: never followed (the token would go to wherever it points, and its
    /// answer would be taken for the API's), so the poll failed.
    #[error("HTTP {http_status} redirect to {location} not followed (check api.base_url)")]
    Redirected { http_status: u16, location: String },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("transport error: {0}")]
    Transport(String),
    #[error("response body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("anomaly: {0}")]
    UnknownStatus(String),
    #[error("{0}")]
    Token(String),
}

/// One lookup's outcome plus what the answer says about pacing and clocks.
#[derive(Debug, Clone)]
pub struct Answer {
    pub result: Result<Observation, PollError>,
    /// `Retry-After` from any answer (seconds or HTTP date), capped.
    pub retry_after: Option<Duration>,
    pub http_status: Option<u16>,
    pub latency: Duration,
}

pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    minter: TokenMinter,
    zone: Tz,
    timeout: Duration,
    max_body: usize,
}

impl ApiClient {
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let api = &settings.api;
        let http = reqwest::Client::builder()
            .connect_timeout(api.connect_timeout)
            .read_timeout(api.timeout)
            .timeout(api.timeout)
            // Below typical server keep-alive, so a pooled connection is rarely stale.
            .pool_idle_timeout(Duration::from_secs(20))
            // A redirect is an error of the poll, never followed: following would send
            // the bearer token to the target and trust its answer as the API's.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("issuance-watcher/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SettingsError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        let base = Url::parse(&api.base_url).map_err(|e| SettingsError::Invalid(e.to_string()))?;
        Ok(Self {
            http,
            base,
            minter: TokenMinter::new(api.access_key.clone(), &settings.signing_secret()?),
            zone: api.timezone,
            timeout: api.timeout,
            max_body: api.max_body_bytes,
        })
    }

    /// The lookup URL for `id`: the id is one percent-encoded path segment.
    pub fn lookup_url(&self, id: &str) -> String {
        let base = self.base.as_str().trim_end_matches('/');
        format!(
            "{base}/api/v1/points/issuance/{}",
            utf8_percent_encode(id, PATH_SEGMENT)
        )
    }

    /// `GET /api/v1/points/issuance/{id}`, bounded in time and size. Never panics,
    /// never returns an error other than through [`Answer::result`].
    pub async fn lookup(&self, id: &str) -> Answer {
        let started = Instant::now();
        let mut answer = match tokio::time::timeout(self.timeout, self.lookup_inner(id)).await {
            Ok(answer) => answer,
            Err(_) => Answer {
                result: Err(PollError::Timeout(self.timeout)),
                retry_after: None,
                http_status: None,
                latency: Duration::ZERO,
            },
        };
        answer.latency = started.elapsed();
        answer
    }

    async fn lookup_inner(&self, id: &str) -> Answer {
        let mut answer = Answer {
            result: Err(PollError::Timeout(self.timeout)),
            retry_after: None,
            http_status: None,
            latency: Duration::ZERO,
        };
        let raw = match self
            .send(reqwest::Method::GET, self.lookup_url(id), None)
            .await
        {
            Ok(raw) => raw,
            Err(e) => {
                answer.result = Err(e);
                return answer;
            }
        };
        answer.http_status = Some(raw.status.as_u16());
        answer.retry_after = raw.retry_after;
        answer.result = match raw.body {
            Err(e) => Err(e),
            Ok(body) => classify(raw.status, &body, id, self.zone, raw.server_date),
        };
        answer
    }

    /// A URL under the base: `path` starts with `/` and is already encoded.
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    pub(super) fn zone(&self) -> Tz {
        self.zone
    }

    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends one request with a freshly minted token (and `json` as its body),
    /// never following a redirect. `Err` when no HTTP answer came (token,
    /// transport, timeout); an answer of any status is a [`Raw`], its body
    /// read within `max_body_bytes` (a redirect's body is not read: it is
    /// `Err(Redirected)`). Not bounded in total time: callers wrap it.
    pub(super) async fn send(
        &self,
        method: reqwest::Method,
        url: String,
        json: Option<serde_json::Value>,
    ) -> Result<Raw, PollError> {
        let token = self
            .minter
            .mint()
            .map_err(|e| PollError::Token(e.to_string()))?;
        let mut request = self.http.request(method, url).bearer_auth(token);
        if let Some(json) = json {
            // reqwest's `json` feature is off; the body is small and ours.
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(json.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&e, self.timeout))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
            .map(|wait| wait.min(API_RETRY_AFTER_CAP));
        let server_date = response
            .headers()
            .get(header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|d| d.with_timezone(&Utc));
        let body = if status.is_redirection() {
            Err(PollError::Redirected {
                http_status: status.as_u16(),
                location: redirect_target(response.headers().get(header::LOCATION)),
            })
        } else {
            read_capped(response, self.max_body).await
        };
        Ok(Raw {
            status,
            body,
            retry_after,
            server_date,
        })
    }
}

/// An HTTP answer as [`ApiClient::send`] got it.
#[derive(Debug)]
pub(super) struct Raw {
    pub status: StatusCode,
    /// The body, or why it could not be read (too large, broken off, a redirect).
    pub body: Result<Vec<u8>, PollError>,
    pub retry_after: Option<Duration>,
    pub server_date: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// Reads the body chunk by chunk, refusing it as soon as it exceeds `limit`.
async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, PollError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(PollError::BodyTooLarge { limit });
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(PollError::BodyTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(transport_error(&e, Duration::ZERO)),
        }
    }
}

/// Where a redirect points, for `last_error`: scheme, host, port and path only
/// (a query could carry anything), clipped.
fn redirect_target(location: Option<&header::HeaderValue>) -> String {
    let Some(text) = location.and_then(|v| v.to_str().ok()) else {
        return "(no Location)".to_owned();
    };
    let shown = match Url::parse(text) {
        Ok(url) => {
            format!(
                "{}://{}{}",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.port().map(|p| format!(":{p}")).unwrap_or_default()
            ) + url.path()
        }
        // A relative Location: its path, without query or fragment.
        Err(_) => text.split(['?', '#']).next().unwrap_or("").to_owned(),
    };
    shown
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect()
}

/// Sorts an HTTP answer into an observation or a [`PollError`].
fn classify(
    status: StatusCode,
    body: &[u8],
    id: &str,
    zone: Tz,
    server_date: Option<DateTime<Utc>>,
) -> Result<Observation, PollError> {
    if status.is_success() {
        return parse_lookup(body, id, zone).map_err(|e| match e {
            LookupError::UnknownStatus(u) => PollError::UnknownStatus(u.to_string()),
            other => PollError::Malformed(other.to_string()),
        });
    }
    let code = error_code(body);
    let http_status = status.as_u16();
    Err(match status {
        StatusCode::TOO_MANY_REQUESTS => PollError::RateLimited,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PollError::Unauthorized {
            http_status,
            code,
            hint: clock_hint(server_date, Utc::now()),
        },
        StatusCode::NOT_FOUND if code == "NOT_FOUND_PAY_INBOUND" => PollError::NotFound { code },
        s if s.is_server_error() => PollError::Server { http_status, code },
        // A 404 without the documented code is a routing problem, not a missing issuance.
        _ => PollError::Refused { http_status, code },
    })
}

/// The `errorCode` of an error body, tolerating any body at all.
pub(super) fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("errorCode")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
        })
        .map(|c| {
            c.chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect()
        })
        .filter(|c: &String| !c.is_empty())
        .unwrap_or_else(|| "(no error code)".to_owned())
}

/// Tokens live seconds: when the server's clock disagrees with ours, say so.
pub(super) fn clock_hint(server_date: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match server_date {
        Some(server) if (server - now).num_seconds().abs() >= 3 => format!(
            " (the API's clock differs from ours by {}s; tokens are valid for seconds only)",
            (server - now).num_seconds()
        ),
        _ => String::new(),
    }
}

fn transport_error(e: &reqwest::Error, timeout: Duration) -> PollError {
    if e.is_timeout() {
        return PollError::Timeout(timeout);
    }
    // reqwest's own message is generic; the root cause says what happened.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    PollError::Transport(text.chars().take(300).collect())
}

#[cfg(test)]
mod tests;
