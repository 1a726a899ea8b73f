//! What is sent for an event: the body (Standard Webhooks JSON, or a Slack
//! text message) and, for a signed sink, the three Standard Webhooks headers.
//!
//! The signature is HMAC-SHA256, keyed with the secret's decoded bytes, over
//! `<webhook-id>.<webhook-timestamp>.<body>` — the exact bytes sent — as
//! `v1,<base64>`. `webhook-id` is the event's stored id (the same on every
//! attempt, so receivers deduplicate on it); `webhook-timestamp` is this
//! attempt's Unix time (receivers refuse stale attempts).
//!
//! During a secret rotation the header carries one signature per key in
//! effect, space-separated (`v1,<new> v1,<previous>`), as the specification
//! allows: a receiver holding either key verifies. Which keys are in effect is
//! decided per attempt, at its time ([`keys_in_effect`]).

use base64::Engine as _;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use hmac::{KeyInit, Mac};
use serde_json::Value;

use crate::domain::{money, timefmt};
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

/// The keys an attempt at `at` is signed with: the current one, then the
/// previous one of a rotation (`(key, until)`) while `at` is before `until`.
pub fn keys_in_effect<'a>(
    current: &'a WebhookSecret,
    previous: Option<(&'a WebhookSecret, DateTime<Utc>)>,
    at: DateTime<Utc>,
) -> Vec<&'a WebhookSecret> {
    let mut keys = vec![current];
    keys.extend(
        previous
            .filter(|(_, until)| at < *until)
            .map(|(key, _)| key),
    );
    keys
}

/// The `webhook-signature` value: one `v1,<base64>` per key, space-separated.
pub fn signature_header(keys: &[&WebhookSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| signature(key, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The signed Standard Webhooks message for an attempt at Unix time
/// `timestamp`, with a signature for each of `keys` (see [`keys_in_effect`]).
pub fn signed(event: &DueDelivery, keys: &[&WebhookSecret], timestamp: i64) -> Message {
    let body = standard_body(event);
    let headers = vec![
        ("webhook-id", event.id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            signature_header(keys, &event.id, timestamp, &body),
        ),
    ];
    Message { body, headers }
}

/// `{"text": "…"}` for a Slack-compatible incoming webhook (unsigned);
/// instants in `zone` (`api.timezone`).
pub fn slack(event: &DueDelivery, zone: Tz) -> Message {
    let text = serde_json::json!({ "text": slack_text(event, zone) }).to_string();
    Message {
        body: text.into_bytes(),
        headers: Vec::new(),
    }
}

/// One human-readable line for an event. For a charge a payer must act on
/// (created, READY, due soon, overdue) it is the message a payer acts on: the amount
/// with thousands separators, the bank, account and holder, and the deadline
/// in `zone`.
pub fn slack_text(event: &DueDelivery, zone: Tz) -> String {
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    let field = |key: &str| match &data[key] {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let krw = |key: &str| data[key].as_i64().map(money::krw);
    let id = &event.issuance_id;
    let amount = krw("amount").map_or_else(String::new, |a| format!(", amount {a}"));
    let pay = || payer_line(&data, zone);
    match event.event_type.as_str() {
        "issuance.status_changed" => {
            let anomaly = match data["anomaly"].as_str() {
                Some(a) => format!(" [{a}]"),
                None => String::new(),
            };
            let change = format!(
                "Issuance {id}: {} -> {}",
                field("from_status"),
                field("to_status")
            );
            match data["to_status"].as_str() {
                Some("READY") => format!("{change}{anomaly}: {}", pay()),
                _ => format!("{change}{amount}{anomaly}"),
            }
        }
        "issuance.due_soon" => format!(
            "Issuance {id} is still READY and due within {}: {}",
            field("lead"),
            pay()
        ),
        "issuance.overdue" => format!(
            "Issuance {id} is past its deadline and still READY: {}",
            pay()
        ),
        "issuance.watch_ended" => format!(
            "Stopped watching issuance {id}: {} ({})",
            field("reason"),
            field("detail")
        ),
        "balance.low" => format!(
            "Point balance {} is below the threshold {} ({} expiring within 30 days)",
            krw("balance").unwrap_or_else(|| field("balance")),
            krw("threshold").unwrap_or_else(|| field("threshold")),
            krw("expiring_30d").unwrap_or_else(|| field("expiring_30d"))
        ),
        "sink.disabled" => format!(
            "Webhook sink {} was disabled: {}. Nothing more is sent to it until `issuance-watcher sinks enable {}`",
            field("sink"),
            field("reason"),
            field("sink")
        ),
        "charge.created" if data["vbank"].is_null() => format!(
            "Charge of {} asked for (charge request {}, issuance {}, {}): the account to transfer to is being prepared and follows when the charge is READY",
            krw("amount").unwrap_or_else(|| field("amount")),
            field("request_id"),
            field("issuance_id"),
            field("status")
        ),
        "charge.created" => {
            let line = pay();
            let mut chars = line.chars();
            let capital = chars.next().map(|c| c.to_ascii_uppercase());
            format!(
                "{}{} — charge request {}, issuance {}",
                capital.map(String::from).unwrap_or_default(),
                chars.as_str(),
                field("request_id"),
                field("issuance_id")
            )
        }
        "charge.refused" => format!(
            "Charge request {} ({}) was refused by the API: HTTP {} {}{} — nothing was created",
            field("request_id"),
            krw("amount").unwrap_or_else(|| field("amount")),
            field("http_status"),
            field("code"),
            data["reason"]
                .as_str()
                .filter(|r| !r.is_empty())
                .map_or_else(String::new, |r| format!(": {r}"))
        ),
        "charge.unknown" => {
            let request = field("request_id");
            format!(
                "Charge request {request} ({}): outcome unknown ({}: {}) — a charge may exist: check the partner console before charging again; resolve with `issuance-watcher charges resolve {request} --issuance ID` or `--none`",
                krw("amount").unwrap_or_else(|| field("amount")),
                field("code"),
                field("message")
            )
        }
        "top_up.suspended" => format!(
            "The top-up rule is suspended: {}. It asks for no charge until a person checks the partner console and runs `issuance-watcher top-up resume`",
            field("reason")
        ),
        "webhook.test" => format!(
            "webhook.test: a test message from issuance-watcher to sink {}, sent {}: this sink works",
            field("sink"),
            data["sent_at"]
                .as_str()
                .map_or_else(|| "-".to_owned(), |at| timefmt::db_local(at, zone))
        ),
        other => format!("Issuance {id}: {other}"),
    }
}

/// `transfer 70,000 KRW to 하나은행 265408488763 (번개장터) by 2026-12-06 23:59:59 KST`,
/// from an event's `amount` and `vbank`; what is missing is said to be unknown.
fn payer_line(data: &Value, zone: Tz) -> String {
    let vbank = &data["vbank"];
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let amount = data["amount"]
        .as_i64()
        .map_or_else(|| "the amount (unknown)".to_owned(), money::krw);
    let bank = text(&vbank["bank_name"]).unwrap_or_else(|| "(bank unknown)".into());
    let account = text(&vbank["account_number"]).unwrap_or_else(|| "(account unknown)".into());
    let holder = text(&vbank["holder_name"]).unwrap_or_else(|| "holder unknown".into());
    let due = text(&vbank["due_at"])
        .or_else(|| text(&data["due_at"]))
        .map_or_else(
            || "(deadline unknown)".into(),
            |d| timefmt::db_local(&d, zone),
        );
    format!("transfer {amount} to {bank} {account} ({holder}) by {due}")
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
        let m = signed(&e, &[&secret], 1_700_000_000);
        let names: Vec<&str> = m.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
        );
        assert_eq!(m.headers[0].1, e.id);
    }

    fn key(bytes: &[u8]) -> WebhookSecret {
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        WebhookSecret::from_text(&text, "test").unwrap()
    }

    #[test]
    fn the_previous_key_signs_until_its_deadline_and_not_from_it() {
        let (new, old) = (key(&[1; 32]), key(&[2; 32]));
        let until: DateTime<Utc> = "2026-12-06T00:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let exposed = |keys: Vec<&WebhookSecret>| -> Vec<Vec<u8>> {
            keys.iter().map(|k| k.expose().to_vec()).collect()
        };
        let both = vec![vec![1u8; 32], vec![2u8; 32]];
        assert_eq!(
            exposed(keys_in_effect(
                &new,
                Some((&old, until)),
                at("2026-12-05T23:59:59.999Z")
            )),
            both
        );
        assert_eq!(
            exposed(keys_in_effect(&new, Some((&old, until)), until)),
            [vec![1u8; 32]]
        );
        assert_eq!(
            exposed(keys_in_effect(&new, None, at("2026-01-01T00:00:00Z"))),
            [vec![1u8; 32]]
        );
        // Two signatures, the new one first, space-separated.
        let header = signature_header(&[&new, &old], "evt_1", 1, b"{}");
        assert_eq!(
            header,
            format!(
                "{} {}",
                signature(&new, "evt_1", 1, b"{}"),
                signature(&old, "evt_1", 1, b"{}")
            )
        );
    }

    proptest::proptest! {
        /// Whatever the keys, the attempt's time and the deadline: the header
        /// verifies (with the reference library) with the current key always,
        /// with the previous one exactly while the attempt is before the
        /// deadline, and never with a key that is neither.
        #[test]
        fn every_header_verifies_with_each_key_in_effect_and_no_other(
            current in proptest::collection::vec(proptest::num::u8::ANY, 16..64),
            previous in proptest::collection::vec(proptest::num::u8::ANY, 16..64),
            stranger in proptest::collection::vec(proptest::num::u8::ANY, 16..64),
            at_ms in 1_600_000_000_000i64..1_900_000_000_000,
            until_offset_ms in -10_000_000i64..10_000_000,
            rotating in proptest::bool::ANY,
            data in "[a-z0-9 ]{0,40}",
        ) {
            proptest::prop_assume!(current != previous && current != stranger && previous != stranger);
            let (new, old) = (key(&current), key(&previous));
            let at = DateTime::<Utc>::from_timestamp_millis(at_ms).unwrap();
            let until = at + chrono::Duration::milliseconds(until_offset_ms);
            let keys = keys_in_effect(&new, rotating.then_some((&old, until)), at);
            let e = event("issuance.status_changed", &serde_json::json!({ "note": data }).to_string());
            // The reference library checks the timestamp against its clock.
            let now = Utc::now().timestamp();
            let m = signed(&e, &keys, now);
            let mut headers = http::HeaderMap::new();
            for (name, value) in &m.headers {
                headers.insert(*name, value.parse().unwrap());
            }
            let verifies = |bytes: &[u8]| {
                standardwebhooks::Webhook::from_bytes(bytes.to_vec())
                    .unwrap()
                    .verify(&m.body, &headers)
                    .is_ok()
            };
            let previous_in_effect = rotating && at < until;
            proptest::prop_assert!(verifies(&current));
            proptest::prop_assert_eq!(verifies(&previous), previous_in_effect);
            proptest::prop_assert!(!verifies(&stranger));
            let count = m.headers[2].1.split(' ').count();
            proptest::prop_assert_eq!(count, 1 + usize::from(previous_in_effect));
        }
    }

    #[test]
    fn slack_lines_say_what_happened() {
        let seoul = chrono_tz::Asia::Seoul;
        let e = event(
            "issuance.status_changed",
            r#"{"from_status":"READY","to_status":"DONE","amount":10000,"anomaly":null}"#,
        );
        assert_eq!(
            slack_text(&e, seoul),
            "Issuance 1000001: READY -> DONE, amount 10,000 KRW"
        );
        let low = event(
            "balance.low",
            r#"{"balance":400000,"threshold":500000,"expiring_30d":1000}"#,
        );
        assert_eq!(
            slack_text(&low, seoul),
            "Point balance 400,000 KRW is below the threshold 500,000 KRW (1,000 KRW expiring within 30 days)"
        );
        let disabled = event(
            "sink.disabled",
            r#"{"sink":"shop","reason":"every attempt failed for 5d (disable_after)"}"#,
        );
        assert_eq!(
            slack_text(&disabled, seoul),
            "Webhook sink shop was disabled: every attempt failed for 5d (disable_after). \
             Nothing more is sent to it until `issuance-watcher sinks enable shop`"
        );
        let suspended = event(
            "top_up.suspended",
            r#"{"reason":"top-up charge request 4 (30000 KRW) is of unknown outcome (TIMEOUT): a charge may exist","request_id":4}"#,
        );
        assert!(
            slack_text(&suspended, seoul).starts_with(
                "The top-up rule is suspended: top-up charge request 4 (30000 KRW) is of unknown outcome"
            ) && slack_text(&suspended, seoul).contains("`issuance-watcher top-up resume`")
        );
        let body: Value = serde_json::from_slice(&slack(&e, seoul).body).unwrap();
        assert!(body["text"].as_str().unwrap().contains("DONE"));
        let ping = super::super::ping::test_event("ops", "2026-12-05T10:00:00Z".parse().unwrap());
        assert_eq!(
            slack_text(&ping, seoul),
            "webhook.test: a test message from issuance-watcher to sink ops, sent 2026-12-05 19:00:00 KST: this sink works"
        );
    }

    #[test]
    fn charge_events_say_what_to_do_with_amounts_grouped_and_deadlines_in_kst() {
        let seoul = chrono_tz::Asia::Seoul;
        let created = event(
            "charge.created",
            r#"{"request_id":7,"issuance_id":"1796","amount":500000,"status":"READY","forced":false,
                "vbank":{"due_at":"2026-12-06T14:59:00.000Z","account_number":"110-123-456789",
                         "bank_name":"신한은행","holder_name":"번개장터"},"problem":null}"#,
        );
        assert_eq!(
            slack_text(&created, seoul),
            "Transfer 500,000 KRW to 신한은행 110-123-456789 (번개장터) by 2026-12-06 23:59:00 KST — charge request 7, issuance 1796"
        );
        let waited = event(
            "charge.created",
            r#"{"request_id":7,"issuance_id":"1796","amount":2880000,"status":"WAITED","forced":false,"vbank":null,"problem":null}"#,
        );
        assert_eq!(
            slack_text(&waited, seoul),
            "Charge of 2,880,000 KRW asked for (charge request 7, issuance 1796, WAITED): the account to transfer to is being prepared and follows when the charge is READY"
        );
        let refused = event(
            "charge.refused",
            r#"{"request_id":8,"amount":1500000,"http_status":400,"code":"INSUFFICIENT_LIMIT","reason":"over the monthly limit"}"#,
        );
        assert_eq!(
            slack_text(&refused, seoul),
            "Charge request 8 (1,500,000 KRW) was refused by the API: HTTP 400 INSUFFICIENT_LIMIT: over the monthly limit — nothing was created"
        );
        let unknown = event(
            "charge.unknown",
            r#"{"request_id":9,"amount":500000,"http_status":500,"code":"SERVER_ERROR","message":"HTTP 500"}"#,
        );
        assert_eq!(
            slack_text(&unknown, seoul),
            "Charge request 9 (500,000 KRW): outcome unknown (SERVER_ERROR: HTTP 500) — a charge may exist: check the partner console before charging again; resolve with `issuance-watcher charges resolve 9 --issuance ID` or `--none`"
        );
    }

    #[test]
    fn what_a_payer_acts_on_names_the_amount_account_and_deadline_in_kst() {
        let seoul = chrono_tz::Asia::Seoul;
        let vbank = r#""vbank":{"due_at":"2026-12-06T14:59:59.000Z","account_number":"265408488763","bank_name":"하나은행","holder_name":"번개장터"}"#;
        let pay =
            "transfer 70,000 KRW to 하나은행 265408488763 (번개장터) by 2026-12-06 23:59:59 KST";
        let ready = event(
            "issuance.status_changed",
            &format!(
                r#"{{"from_status":"WAITED","to_status":"READY","amount":70000,"anomaly":null,{vbank}}}"#
            ),
        );
        assert_eq!(
            slack_text(&ready, seoul),
            format!("Issuance 1000001: WAITED -> READY: {pay}")
        );
        let due = event(
            "issuance.due_soon",
            &format!(
                r#"{{"lead":"3h","amount":70000,"due_at":"2026-12-06T14:59:59.000Z",{vbank}}}"#
            ),
        );
        assert_eq!(
            slack_text(&due, seoul),
            format!("Issuance 1000001 is still READY and due within 3h: {pay}")
        );
        let overdue = event(
            "issuance.overdue",
            &format!(r#"{{"amount":70000,"due_at":"2026-12-06T14:59:59.000Z",{vbank}}}"#),
        );
        assert_eq!(
            slack_text(&overdue, seoul),
            format!("Issuance 1000001 is past its deadline and still READY: {pay}")
        );
        let bare = event(
            "issuance.overdue",
            r#"{"due_at":"2026-12-06T14:59:59.000Z"}"#,
        );
        assert_eq!(
            slack_text(&bare, seoul),
            "Issuance 1000001 is past its deadline and still READY: transfer the amount (unknown) to (bank unknown) (account unknown) (holder unknown) by 2026-12-06 23:59:59 KST"
        );
    }
}
