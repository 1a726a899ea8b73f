//! Turning a lookup response body into an [`Observation`], tolerating what the
//! API may omit and refusing what cannot be trusted.
//!
//! The status decides what gets recorded, so it must be present and known; a
//! malformed secondary field (a date, the amount) is kept as a warning instead of
//! hiding a real DONE.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::Value;

use crate::domain::observation::{Observation, Vbank};
use crate::domain::status::Status;
use crate::domain::timefmt::parse_api_datetime;

/// Longest text kept from any response field.
const MAX_FIELD_CHARS: usize = 128;

/// Why a body could not be read as a lookup of the requested issuance.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LookupError {
    #[error("response is not JSON: {0}")]
    NotJson(String),
    #[error("response has no issuance object under `data`")]
    NoData,
    #[error("response has no `status`")]
    NoStatus,
    #[error("response is about issuance {0:?}, not the one requested")]
    WrongId(String),
    #[error(transparent)]
    UnknownStatus(#[from] crate::domain::status::UnknownStatus),
}

#[derive(Deserialize)]
struct Envelope {
    data: Option<Value>,
}

/// Parses the body of `GET /api/v1/points/issuance/{id}`.
pub fn parse_lookup(body: &[u8], requested_id: &str, zone: Tz) -> Result<Observation, LookupError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| LookupError::NotJson(clip(&e.to_string())))?;
    let Some(Value::Object(data)) = envelope.data else {
        return Err(LookupError::NoData);
    };
    if let Some(id) = data.get("id").and_then(scalar_text)
        && id != requested_id
    {
        return Err(LookupError::WrongId(clip(&id)));
    }
    let status: Status = match data.get("status") {
        Some(Value::String(s)) => s.parse()?,
        Some(Value::Null) | None => return Err(LookupError::NoStatus),
        Some(other) => {
            return Err(crate::domain::status::UnknownStatus(clip(&other.to_string())).into());
        }
    };
    let mut warnings = Vec::new();
    let mut datetime = |field: &str, value: Option<&Value>| -> Option<DateTime<Utc>> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => parse_api_datetime(s, zone)
                .map_err(|e| warnings.push(format!("{field}: {e}")))
                .ok(),
            Some(other) => {
                warnings.push(format!(
                    "{field}: not a string: {}",
                    clip(&other.to_string())
                ));
                None
            }
        }
    };
    let created_at = datetime("createdAt", data.get("createdAt"));
    let modified_at = datetime("modifiedAt", data.get("modifiedAt"));
    let vbank = match data.get("preparedVbankInfo") {
        Some(Value::Object(info)) => Some(Vbank {
            due_at: datetime("vbankDueDate", info.get("vbankDueDate")),
            account_number: info
                .get("vbankAccountNumber")
                .and_then(scalar_text)
                .map(|s| clip(&s)),
            bank_name: info.get("bankName").and_then(scalar_text).map(|s| clip(&s)),
            holder_name: info
                .get("vbankHolderName")
                .and_then(scalar_text)
                .map(|s| clip(&s)),
        }),
        _ => None,
    };
    let amount = match data.get("amount") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_i64().filter(|a| *a >= 0) {
            Some(a) => Some(a),
            None => {
                warnings.push(format!(
                    "amount: not a non-negative integer: {}",
                    clip(&value.to_string())
                ));
                None
            }
        },
    };
    if status == Status::Ready && vbank.as_ref().and_then(|v| v.due_at).is_none() {
        warnings
            .push("READY without a usable vbankDueDate: deadline flags cannot be evaluated".into());
    }
    Ok(Observation {
        status,
        amount,
        created_at,
        modified_at,
        vbank,
        warnings,
    })
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn clip(text: &str) -> String {
    text.chars().take(MAX_FIELD_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Seoul;

    const DOCUMENTED: &str = r#"{"data":{"id":"123","amount":100000,"status":"READY",
        "createdAt":"2023-10-27T10:00:00","modifiedAt":"2023-10-27T10:00:05",
        "preparedVbankInfo":{"vbankDueDate":"2023-10-28T23:59:59","vbankAccountNumber":"451235741265",
        "bankName":"국민은행","vbankHolderName":"번개장터"}}}"#;

    fn parse(body: &str) -> Result<Observation, LookupError> {
        parse_lookup(body.as_bytes(), "123", Seoul)
    }

    #[test]
    fn the_documented_example_parses_with_times_in_utc() {
        let o = parse(DOCUMENTED).unwrap();
        assert_eq!(o.status, Status::Ready);
        assert_eq!(o.amount, Some(100_000));
        let vbank = o.vbank.unwrap();
        assert_eq!(
            crate::domain::timefmt::to_db(vbank.due_at.unwrap()),
            "2023-10-28T14:59:59.000Z"
        );
        assert_eq!(vbank.bank_name.as_deref(), Some("국민은행"));
        assert!(o.warnings.is_empty());
    }

    #[test]
    fn waited_without_vbank_info_is_fine() {
        for info in [r#","preparedVbankInfo":null"#, ""] {
            let body = format!(r#"{{"data":{{"id":123,"amount":5,"status":"WAITED"{info}}}}}"#);
            let o = parse(&body).unwrap();
            assert_eq!(
                (o.status, o.vbank, o.warnings.len()),
                (Status::Waited, None, 0)
            );
        }
    }

    #[test]
    fn unknown_missing_or_mistyped_status_is_an_error() {
        assert!(matches!(
            parse(r#"{"data":{"id":"123","status":"WEIRD"}}"#),
            Err(LookupError::UnknownStatus(_))
        ));
        assert!(matches!(
            parse(r#"{"data":{"id":"123","status":"ready"}}"#),
            Err(LookupError::UnknownStatus(_))
        ));
        assert!(matches!(
            parse(r#"{"data":{"id":"123","status":7}}"#),
            Err(LookupError::UnknownStatus(_))
        ));
        assert_eq!(
            parse(r#"{"data":{"id":"123"}}"#),
            Err(LookupError::NoStatus)
        );
    }

    #[test]
    fn bodies_that_are_not_a_lookup_are_errors() {
        assert!(matches!(
            parse("<html>502</html>"),
            Err(LookupError::NotJson(_))
        ));
        assert_eq!(parse(r#"{"data":null}"#), Err(LookupError::NoData));
        assert_eq!(parse(r#"{"data":[1,2]}"#), Err(LookupError::NoData));
        assert_eq!(parse(r#"{"errorCode":"X"}"#), Err(LookupError::NoData));
        assert!(matches!(
            parse(r#"{"data":{"id":"999","status":"DONE"}}"#),
            Err(LookupError::WrongId(_))
        ));
    }

    #[test]
    fn broken_secondary_fields_become_warnings_not_lost_statuses() {
        let body = r#"{"data":{"id":"123","amount":-5,"status":"DONE","modifiedAt":"9999-01-01T00:00:00",
            "createdAt":12,"preparedVbankInfo":{"vbankDueDate":"tomorrow"}}}"#;
        let o = parse(body).unwrap();
        assert_eq!(o.status, Status::Done);
        assert_eq!((o.amount, o.modified_at, o.created_at), (None, None, None));
        assert_eq!(o.warnings.len(), 4, "{:?}", o.warnings);
    }

    #[test]
    fn ready_without_a_due_date_is_kept_with_a_warning() {
        let o =
            parse(r#"{"data":{"id":"123","status":"READY","preparedVbankInfo":{"bankName":"x"}}}"#)
                .unwrap();
        assert_eq!(o.status, Status::Ready);
        assert_eq!(o.warnings.len(), 1);
    }

    #[test]
    fn long_texts_are_clipped() {
        let long = "9".repeat(10_000);
        let body = format!(
            r#"{{"data":{{"id":"123","status":"READY","preparedVbankInfo":{{"bankName":"{long}"}}}}}}"#
        );
        let o = parse(&body).unwrap();
        assert_eq!(o.vbank.unwrap().bank_name.unwrap().len(), MAX_FIELD_CHARS);
    }
}
