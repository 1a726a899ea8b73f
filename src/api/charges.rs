//! The requests that move money or read the balance: `POST` a charge, `POST`
//! its cancel, `GET` the balance; each answer classified for the caller.
//!
//! A POST is sent exactly once per call and never retried here: an answer
//! that does not say for sure what happened is [`ChargeOutcome::Unknown`],
//! for the caller to record and show, never to send again. Only a 4xx (the
//! API looked at the request and said no) is a refusal; a 5xx, a timeout, a
//! dropped connection or a 2xx without a usable id may all have created a charge.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::client::{ApiClient, Raw, clock_hint, error_code};
use super::model::parse_lookup;
use super::{PollError, reject_reason};
use crate::domain::Observation;

/// What a charge POST came to.
#[derive(Debug, Clone, PartialEq)]
pub enum ChargeOutcome {
    /// The API created issuance `id`; `observation` is its object as answered
    /// (`None` when it could not be read beyond the id: then `problem` says why).
    Created {
        id: String,
        observation: Option<Observation>,
        problem: Option<String>,
    },
    /// The API refused (a 4xx): nothing was created.
    Refused(Refusal),
    /// No answer that says what happened: a charge may or may not exist.
    Unknown(Unknown),
}

/// An API refusal: its HTTP status, `errorCode` and `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub http_status: u16,
    pub code: String,
    pub reason: String,
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for Refusal {
    /// `HTTP 400 BAD_REQUEST: reason` (the reason only when the API gave one).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}", self.http_status, self.code)?;
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

/// Why an answer is of unknown outcome: a fixed `code` (TIMEOUT, TRANSPORT,
/// SERVER_ERROR, REDIRECT, MALFORMED, TOKEN) and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub http_status: Option<u16>,
    pub code: &'static str,
    pub detail: String,
}

/// What a cancel POST came to.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// The API answered with the issuance (CANCELLED, in all likelihood).
    Answered(Observation),
    Refused(Refusal),
    /// No usable answer; the daemon's polls will tell.
    Failed(Unknown),
}

/// `GET /api/v1/points/balance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Balance {
    pub balance: i64,
    /// `pointExpiredIn30Days`: points that expire within 30 days.
    pub expiring_30d: i64,
}

impl ApiClient {
    /// `POST /api/v1/points/issuance` with `{"amount": amount}`, once.
    pub async fn create_charge(&self, amount: i64) -> ChargeOutcome {
        let url = self.url("/api/v1/points/issuance");
        let raw = match self
            .bounded(self.send(Method::POST, url, Some(json!({ "amount": amount }))))
            .await
        {
            Ok(raw) => raw,
            Err(e) => return ChargeOutcome::Unknown(unanswered(&e)),
        };
        let (status, body) = match successful(raw, "REDIRECT") {
            Ok(answer) => answer,
            Err(not) => return not.into(),
        };
        let id = match created_id(&body) {
            Ok(id) => id,
            Err(detail) => {
                return ChargeOutcome::Unknown(Unknown {
                    http_status: Some(status.as_u16()),
                    code: "MALFORMED",
                    detail,
                });
            }
        };
        match parse_lookup(&body, &id, self.zone()) {
            Ok(observation) => ChargeOutcome::Created {
                id,
                observation: Some(observation),
                problem: None,
            },
            Err(e) => ChargeOutcome::Created {
                id,
                observation: None,
                problem: Some(e.to_string()),
            },
        }
    }

    /// `POST /api/v1/points/issuance/{id}/cancel`, once. `id` must have passed
    /// [`reject_reason`]; it is percent-encoded as one path segment.
    pub async fn cancel(&self, id: &str) -> CancelOutcome {
        let url = format!("{}/cancel", self.lookup_url(id));
        let raw = match self.bounded(self.send(Method::POST, url, None)).await {
            Ok(raw) => raw,
            Err(e) => return CancelOutcome::Failed(unanswered(&e)),
        };
        let (status, body) = match successful(raw, "TRANSPORT") {
            Ok(answer) => answer,
            Err(not) => return not.into(),
        };
        match parse_lookup(&body, id, self.zone()) {
            Ok(observation) => CancelOutcome::Answered(observation),
            Err(e) => CancelOutcome::Failed(Unknown {
                http_status: Some(status.as_u16()),
                code: "MALFORMED",
                detail: e.to_string(),
            }),
        }
    }

    /// `GET /api/v1/points/balance`.
    pub async fn balance(&self) -> Result<Balance, PollError> {
        let url = self.url("/api/v1/points/balance");
        let raw = self.bounded(self.send(Method::GET, url, None)).await?;
        let body = raw.body?;
        if !raw.status.is_success() {
            let code = error_code(&body);
            let http_status = raw.status.as_u16();
            return Err(match raw.status {
                StatusCode::TOO_MANY_REQUESTS => PollError::RateLimited,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PollError::Unauthorized {
                    http_status,
                    code,
                    hint: clock_hint(raw.server_date, chrono::Utc::now()),
                },
                s if s.is_server_error() => PollError::Server { http_status, code },
                _ => PollError::Refused { http_status, code },
            });
        }
        parse_balance(&body).map_err(PollError::Malformed)
    }

    /// `send` within `api.timeout` in total.
    async fn bounded(
        &self,
        send: impl Future<Output = Result<Raw, PollError>>,
    ) -> Result<Raw, PollError> {
        tokio::time::timeout(self.timeout(), send)
            .await
            .unwrap_or(Err(PollError::Timeout(self.timeout())))
    }
}

/// Why an answered POST is not a success: refused (a 4xx), or of unknown
/// outcome (its body could not be read, or a 5xx).
enum NotSuccessful {
    Refused(Refusal),
    Unknown(Unknown),
}

impl From<NotSuccessful> for ChargeOutcome {
    fn from(not: NotSuccessful) -> Self {
        match not {
            NotSuccessful::Refused(r) => Self::Refused(r),
            NotSuccessful::Unknown(u) => Self::Unknown(u),
        }
    }
}

/// A cancel that was not a success failed: the daemon's polls will tell.
impl From<NotSuccessful> for CancelOutcome {
    fn from(not: NotSuccessful) -> Self {
        match not {
            NotSuccessful::Refused(r) => Self::Refused(r),
            NotSuccessful::Unknown(u) => Self::Failed(u),
        }
    }
}

/// The status and body of a 2xx answer; otherwise what it means. A body that
/// could not be read because of a redirect is coded `on_redirect`.
fn successful(raw: Raw, on_redirect: &'static str) -> Result<(StatusCode, Vec<u8>), NotSuccessful> {
    let status = raw.status;
    let body = raw.body.map_err(|e| {
        NotSuccessful::Unknown(Unknown {
            http_status: Some(status.as_u16()),
            code: if matches!(e, PollError::Redirected { .. }) {
                on_redirect
            } else {
                "TRANSPORT"
            },
            detail: e.to_string(),
        })
    })?;
    if status.is_client_error() {
        return Err(NotSuccessful::Refused(refusal(
            status,
            &body,
            raw.retry_after,
            raw.server_date,
        )));
    }
    if !status.is_success() {
        return Err(NotSuccessful::Unknown(Unknown {
            http_status: Some(status.as_u16()),
            code: "SERVER_ERROR",
            detail: format!("HTTP {} {}", status.as_u16(), error_code(&body)),
        }));
    }
    Ok((status, body))
}

/// No HTTP answer at all.
fn unanswered(e: &PollError) -> Unknown {
    Unknown {
        http_status: None,
        code: match e {
            PollError::Timeout(_) => "TIMEOUT",
            PollError::Token(_) => "TOKEN",
            _ => "TRANSPORT",
        },
        detail: e.to_string(),
    }
}

fn refusal(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
    server_date: Option<chrono::DateTime<chrono::Utc>>,
) -> Refusal {
    let reason = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("reason").and_then(Value::as_str).map(clip))
        .unwrap_or_default();
    let mut reason = reason;
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        reason.push_str(&clock_hint(server_date, chrono::Utc::now()));
    }
    Refusal {
        http_status: status.as_u16(),
        code: error_code(body),
        reason,
        retry_after,
    }
}

/// The id of a created issuance (`data.id`, a string or a number), if the
/// body has a usable one.
fn created_id(body: &[u8]) -> Result<String, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the API answered 2xx with a body that is not JSON: {}",
            clip(&e.to_string())
        )
    })?;
    let id = match value.get("data").and_then(|d| d.get("id")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => {
            return Err("the API answered 2xx without an issuance id (data.id)".to_owned());
        }
        Some(other) => {
            return Err(format!(
                "the API answered 2xx with an id that is not a string: {}",
                clip(&other.to_string())
            ));
        }
    };
    match reject_reason(&id) {
        Some(reason) => Err(format!(
            "the API answered 2xx with an unusable id {:?}: {reason}",
            clip(&id)
        )),
        None => Ok(id),
    }
}

fn parse_balance(body: &[u8]) -> Result<Balance, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("balance is not JSON: {}", clip(&e.to_string())))?;
    let data = value.get("data").ok_or("balance answer has no `data`")?;
    let field = |name: &str| -> Result<i64, String> {
        data.get(name)
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("balance answer has no integer `{name}`"))
    };
    Ok(Balance {
        balance: field("balance")?,
        expiring_30d: field("pointExpiredIn30Days")?,
    })
}

fn clip(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_id_must_be_present_and_plain() {
        assert_eq!(created_id(br#"{"data":{"id":"123"}}"#), Ok("123".into()));
        assert_eq!(created_id(br#"{"data":{"id":77}}"#), Ok("77".into()));
        for body in [
            &br#"{"data":{"status":"READY"}}"#[..],
            br#"{"data":{"id":null}}"#,
            br#"{"data":{"id":""}}"#,
            br#"{"data":{"id":"..","status":"READY"}}"#,
            br#"{"data":{"id":"a\nb"}}"#,
            br#"{"data":{"id":{"x":1}}}"#,
            br#"{"data":{"id":[1]}}"#,
            b"<html>",
            b"",
        ] {
            assert!(
                created_id(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let long = format!(r#"{{"data":{{"id":"{}"}}}}"#, "9".repeat(300));
        assert!(created_id(long.as_bytes()).is_err());
    }

    #[test]
    fn the_balance_answer_needs_both_integers() {
        assert_eq!(
            parse_balance(br#"{"data":{"balance":10,"pointExpiredIn30Days":3}}"#),
            Ok(Balance {
                balance: 10,
                expiring_30d: 3
            })
        );
        assert!(parse_balance(br#"{"data":{"balance":"10","pointExpiredIn30Days":3}}"#).is_err());
        assert!(parse_balance(br#"{"data":{"balance":10}}"#).is_err());
        assert!(parse_balance(b"nope").is_err());
    }

    #[test]
    fn a_refusal_keeps_the_code_and_reason() {
        let r = refusal(
            StatusCode::BAD_REQUEST,
            br#"{"errorCode":"BAD_REQUEST","reason":"another charge is READY"}"#,
            None,
            None,
        );
        assert_eq!(
            (r.code.as_str(), r.reason.as_str()),
            ("BAD_REQUEST", "another charge is READY")
        );
        assert_eq!(
            refusal(StatusCode::BAD_REQUEST, b"<html>", None, None).code,
            "(no error code)"
        );
    }
}
