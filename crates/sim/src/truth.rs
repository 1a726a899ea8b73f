//! What really happened, for tests to compare a client's beliefs against:
//! the status changes (ground truth, in simulated time), request counts, the
//! 429s sent and, when `record_requests` is on, every request's real arrival.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

use super::lifecycle::{Event, Status};

fn utc_millis<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// One status change: `from` is `None` for the creation (as WAITED).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TruthEvent {
    pub issuance_id: String,
    pub from: Option<Status>,
    pub to: Status,
    /// Simulated time, UTC.
    #[serde(serialize_with = "utc_millis")]
    pub at: DateTime<Utc>,
}

/// Turns one issuance's timeline into change records.
pub fn changes(issuance_id: &str, timeline: &[Event]) -> Vec<TruthEvent> {
    let mut from = None;
    timeline
        .iter()
        .map(|(at_ms, to)| TruthEvent {
            issuance_id: issuance_id.to_owned(),
            from: from.replace(to.clone()),
            to: to.clone(),
            at: DateTime::<Utc>::from_timestamp_millis(*at_ms).unwrap_or_default(),
        })
        .collect()
}

/// Requests served, counted once each when the response headers go out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub total_requests: u64,
    /// By HTTP status code (faults included).
    pub by_status_code: BTreeMap<u16, u64>,
    /// By issuance id, for requests naming an existing issuance (lookup and cancel).
    pub by_issuance: BTreeMap<String, u64>,
    /// Number of issuances held.
    pub issuances: usize,
}

/// One API request's real arrival (only with `record_requests`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    #[serde(serialize_with = "utc_millis")]
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// One 429 sent: when (real time) and the `Retry-After` seconds, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitRecord {
    #[serde(serialize_with = "utc_millis")]
    pub at: DateTime<Utc>,
    pub path: String,
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    total: u64,
    by_status: BTreeMap<u16, u64>,
    by_issuance: HashMap<u32, u64>,
    requests: Vec<RequestRecord>,
    rate_limits: Vec<RateLimitRecord>,
}

/// Shared counters behind one short-held mutex.
#[derive(Debug, Default)]
pub struct Recorder {
    inner: Mutex<Inner>,
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere must not take the statistics down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn served(&self, status: u16, issuance: Option<u32>, request: Option<RequestRecord>) {
        let mut inner = self.lock();
        inner.total += 1;
        *inner.by_status.entry(status).or_default() += 1;
        if let Some(seq) = issuance {
            *inner.by_issuance.entry(seq).or_default() += 1;
        }
        if let Some(record) = request {
            inner.requests.push(record);
        }
    }

    pub fn rate_limited(&self, record: RateLimitRecord) {
        self.lock().rate_limits.push(record);
    }

    pub fn stats(&self, id_of: impl Fn(u32) -> String, issuances: usize) -> Stats {
        let inner = self.lock();
        Stats {
            total_requests: inner.total,
            by_status_code: inner.by_status.clone(),
            by_issuance: inner
                .by_issuance
                .iter()
                .map(|(seq, n)| (id_of(*seq), *n))
                .collect(),
            issuances,
        }
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.clone()
    }

    pub fn rate_limits(&self) -> Vec<RateLimitRecord> {
        self.lock().rate_limits.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_chain_from_creation() {
        let events = changes("7", &[(0, Status::Waited), (1_500, Status::Ready)]);
        assert_eq!(events[0].from, None);
        assert_eq!(events[1].from, Some(Status::Waited));
        let json = serde_json::to_value(&events[1]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"issuanceId": "7", "from": "WAITED", "to": "READY", "at": "1970-01-01T00:00:01.500Z"})
        );
    }
}
