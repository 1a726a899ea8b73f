//! `events ping`: a `webhook.test` message sent once to each selected sink,
//! outside the outbox (no row in `events`, no database at all), through the
//! very path a delivery takes: the sink as the daemon builds it, its message
//! signed with the sink's secret (or Slack text), one POST classified into an
//! [`Answer`]. What an integrator checks first: does the receiver verify, and
//! what does it answer, how fast.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::schedule::Answer;
use super::sinks::Sinks;
use crate::domain::timefmt::to_db;
use crate::store::DueDelivery;

/// The type of the test message (not an outbox event type: never stored).
pub const TEST_EVENT_TYPE: &str = "webhook.test";

/// A `webhook.test` event for `sink` at `now`, with a fresh `evt_…` id (the
/// form of the outbox's ids: `evt_` and 32 lowercase hex digits).
pub fn test_event(sink: &str, now: DateTime<Utc>) -> DueDelivery {
    let at = to_db(now);
    let data = serde_json::json!({
        "message": "A test message from issuance-watcher: if this arrived verified, the sink works.",
        "sent_at": at,
        "sink": sink,
    });
    DueDelivery {
        seq: 0,
        id: format!("evt_{}", uuid::Uuid::new_v4().simple()),
        event_type: TEST_EVENT_TYPE.to_owned(),
        issuance_id: String::new(),
        occurred_at: at.clone(),
        data: data.to_string(),
        attempts: 0,
        created_at: at,
    }
}

/// One sink's answer to the test message.
#[derive(Debug, Clone)]
pub struct Pinged {
    pub sink: String,
    /// The URL as logs may show it (never a secret).
    pub shown_url: String,
    /// The message's `webhook-id`.
    pub id: String,
    pub answer: Answer,
    pub took: Duration,
}

impl Pinged {
    /// Answered with a 2xx.
    pub fn ok(&self) -> bool {
        self.answer.problem().is_none()
    }
}

/// Sends the test message once to the sink named `only`, or to every sink,
/// one after the other in the configuration's order. An unknown name, or no
/// sink at all, is refused (naming the configured ones) before anything is sent.
pub async fn ping(sinks: &Sinks, only: Option<&str>) -> Result<Vec<Pinged>, String> {
    let names = sinks.names();
    let selected: Vec<_> = sinks
        .iter()
        .filter(|s| only.is_none_or(|name| s.name == name))
        .collect();
    if selected.is_empty() {
        return Err(match only {
            _ if names.is_empty() => {
                "no `[[webhooks]]` sink is configured: nothing to send a test message to".to_owned()
            }
            Some(name) => format!(
                "no `[[webhooks]]` sink is named {name:?} (configured: {})",
                names.join(", ")
            ),
            None => unreachable!("every sink is selected without a name"),
        });
    }
    let mut pinged = Vec::with_capacity(selected.len());
    for sink in selected {
        let at = Utc::now();
        let event = test_event(&sink.name, at);
        let (answer, took) = sink.send(&event, at).await;
        pinged.push(Pinged {
            sink: sink.name.clone(),
            shown_url: sink.shown_url().to_owned(),
            id: event.id,
            answer,
            took,
        });
    }
    Ok(pinged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::{signature, standard_body};
    use crate::settings::WebhookSecret;

    #[test]
    fn the_test_event_is_a_standard_webhooks_payload_with_a_fresh_outbox_style_id() {
        let now = "2026-12-05T10:00:00Z".parse().unwrap();
        let a = test_event("shop", now);
        let b = test_event("shop", now);
        assert_ne!(a.id, b.id);
        let hex = a.id.strip_prefix("evt_").unwrap();
        assert_eq!(hex.len(), 32);
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let body: serde_json::Value = serde_json::from_slice(&standard_body(&a)).unwrap();
        assert_eq!(body["type"], "webhook.test");
        assert_eq!(body["timestamp"], "2026-12-05T10:00:00.000Z");
        assert_eq!(body["data"]["sink"], "shop");
        assert_eq!(body["data"]["sent_at"], "2026-12-05T10:00:00.000Z");
        assert!(body["data"]["message"].as_str().unwrap().contains("test"));
        // Signed as any event is.
        let secret =
            WebhookSecret::from_text("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "t").unwrap();
        let m = crate::deliver::message::signed(&a, &[&secret], 1_700_000_000);
        assert_eq!(m.headers[0], ("webhook-id", a.id.clone()));
        assert_eq!(
            m.headers[2].1,
            signature(&secret, &a.id, 1_700_000_000, &m.body)
        );
    }

    #[tokio::test]
    async fn an_unknown_sink_or_none_configured_is_refused_naming_the_known_ones() {
        let none = Sinks::default();
        let e = ping(&none, None).await.unwrap_err();
        assert!(e.contains("no `[[webhooks]]` sink is configured"), "{e}");
        let e = ping(&none, Some("shop")).await.unwrap_err();
        assert!(e.contains("no `[[webhooks]]` sink is configured"), "{e}");
    }
}
