//! What is sent for an event: the body (Standard Webhooks JSON, or a Slack
//! text message) and, for a signed sink, the three Standard Webhooks headers.
//!
//! The signature is HMAC-SHA256, keyed with the secret's decoded bytes, over
//! `<webhook-id>.<webhook-timestamp>.<body>` — the exact bytes sent — as
//! `v1,<base64>`. `webhook-id` is the event's stored id (the same on every
//! attempt, so receivers deduplicate on it); `webhook-timestamp` is this
//! attempt's Unix time (receivers refuse stale attempts).

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde_json::Value;

use crate::settings::WebhookSecret;
use crate::store::DueDelivery;

/// An event ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub body: Vec<u8>,
    /// `(name, value)` pairs besides `content-type`.
    pub headers: Vec<(&'static str, String)>,
}

/// `{"type": …, "timestamp": …, "data": {…}}`, `data` as stored (so the same
/// bytes on every attempt).
pub fn standard_body(event: &DueDelivery) -> Vec<u8> {
    let text = |s: &str| Value::String(s.to_owned()).to_string();
    format!(
        r#"{{"type":{},"timestamp":{},"data":{}}}"#,
        text(&event.event_type),
        text(&event.occurred_at),
        event.data
    )
    .into_bytes()
}

/// `v1,<base64 of HMAC-SHA256(key, "id.timestamp.body")>`.
pub fn signature(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.expose())
        .expect("HMAC accepts any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let code = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(code)
    )
}

/// The signed Standard Webhooks message for an attempt at Unix time `timestamp`.
pub fn signed(event: &DueDelivery, secret: &WebhookSecret, timestamp: i64) -> Message {
    let body = standard_body(event);
    let headers = vec![
        ("webhook-id", event.id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            signature(secret, &event.id, timestamp, &body),
        ),
    ];
    Message { body, headers }
}

/// `{"text": "…"}` for a Slack-compatible incoming webhook (unsigned).
pub fn slack(event: &DueDelivery) -> Message {
    let text = serde_json::json!({ "text": slack_text(event) }).to_string();
    Message {
        body: text.into_bytes(),
        headers: Vec::new(),
    }
}

/// One human-readable line for an event.
pub fn slack_text(event: &DueDelivery) -> String {
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    let field = |key: &str| match &data[key] {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let id = &event.issuance_id;
    let amount = match data["amount"].as_i64() {
        Some(a) => format!(", amount {a}"),
        None => String::new(),
    };
    match event.event_type.as_str() {
        "issuance.status_changed" => {
            let anomaly = match data["anomaly"].as_str() {
                Some(a) => format!(" [{a}]"),
                None => String::new(),
            };
            format!(
                "Issuance {id}: {} -> {}{amount}{anomaly}",
                field("from_status"),
                field("to_status")
            )
        }
        "issuance.due_soon" => format!(
            "Issuance {id} is still READY and due within {} (due {}){amount}",
            field("lead"),
            field("due_at")
        ),
        "issuance.overdue" => format!(
            "Issuance {id} is past its due date ({}) and still READY{amount}",
            field("due_at")
        ),
        "issuance.watch_ended" => format!(
            "Stopped watching issuance {id}: {} ({})",
            field("reason"),
            field("detail")
        ),
        "balance.low" => format!(
            "Point balance {} is below the threshold {} ({} expiring within 30 days)",
            field("balance"),
            field("threshold"),
            field("expiring_30d")
        ),
        other => format!("Issuance {id}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, data: &str) -> DueDelivery {
        DueDelivery {
            seq: 7,
            id: "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk".into(),
            event_type: event_type.into(),
            issuance_id: "1000001".into(),
            occurred_at: "2026-12-02T10:00:00.000Z".into(),
            data: data.into(),
            attempts: 0,
            created_at: "2026-12-02T10:00:00.000Z".into(),
        }
    }

    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        // The vector of the specification's reference libraries.
        let secret =
            WebhookSecret::from_text("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "test").unwrap();
        assert_eq!(
            signature(
                &secret,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn the_body_is_the_event_with_its_data_as_stored() {
        let e = event(
            "issuance.status_changed",
            r#"{"id":"1000001","to_status":"DONE"}"#,
        );
        let body = String::from_utf8(standard_body(&e)).unwrap();
        assert_eq!(
            body,
            r#"{"type":"issuance.status_changed","timestamp":"2026-12-02T10:00:00.000Z","data":{"id":"1000001","to_status":"DONE"}}"#
        );
        let secret =
            WebhookSecret::from_text("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "t").unwrap();
        let m = signed(&e, &secret, 1_700_000_000);
        let names: Vec<&str> = m.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
        );
        assert_eq!(m.headers[0].1, e.id);
    }

    #[test]
    fn slack_lines_say_what_happened() {
        let e = event(
            "issuance.status_changed",
            r#"{"from_status":"READY","to_status":"DONE","amount":10000,"anomaly":null}"#,
        );
        assert_eq!(
            slack_text(&e),
            "Issuance 1000001: READY -> DONE, amount 10000"
        );
        let due = event(
            "issuance.due_soon",
            r#"{"lead":"3h","due_at":"2026-12-02T14:59:59.000Z"}"#,
        );
        assert!(slack_text(&due).contains("due within 3h"));
        let low = event(
            "balance.low",
            r#"{"balance":400000,"threshold":500000,"expiring_30d":1000}"#,
        );
        assert_eq!(
            slack_text(&low),
            "Point balance 400000 is below the threshold 500000 (1000 expiring within 30 days)"
        );
        let body: Value = serde_json::from_slice(&slack(&e).body).unwrap();
        assert!(body["text"].as_str().unwrap().contains("DONE"));
    }
}
