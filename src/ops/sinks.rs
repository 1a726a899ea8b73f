//! How the webhook sinks are doing, as their delivery workers report it: for
//! `/healthz` (a sink failing longer than its `unhealthy_after`, or disabled),
//! the `STATUS=` line and the backlog gauges. A short-held mutex: the workers
//! and the readers only ever copy a few fields in or out.
//!
//! The backlog (pending events, the oldest one's time) is read from the
//! database by the refresher in `ops::tasks`, not by the workers, which sleep
//! through long pauses. It keeps the oldest event's *instant*, not its age:
//! the age is computed when read ([`SinkHealth::backlogs`]), so a scrape always
//! sees it current.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SinkState {
    /// Since when every attempt has failed (`None`: the last one succeeded).
    failing_since: Option<DateTime<Utc>>,
    last_problem: Option<String>,
    /// Why the sink is disabled (410 Gone), if it is.
    disabled: Option<String>,
    unhealthy_after: Duration,
    /// Events not yet delivered.
    pending: i64,
    /// When the oldest undelivered event happened (`None`: nothing pending).
    oldest: Option<DateTime<Utc>>,
}

/// A sink's backlog at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct BacklogNow {
    pub sink: String,
    pub pending: i64,
    /// Age of the oldest undelivered event (zero when none).
    pub oldest_age: Duration,
    /// Whether nothing is sent to it (410 Gone, `sinks disable`, `disable_after`).
    pub disabled: bool,
}

/// The sinks by name.
#[derive(Debug, Default)]
pub struct SinkHealth {
    sinks: Mutex<BTreeMap<String, SinkState>>,
}

impl SinkHealth {
    fn with<T>(&self, name: &str, f: impl FnOnce(&mut SinkState) -> T) -> T {
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        f(sinks.entry(name.to_owned()).or_default())
    }

    pub fn register(&self, name: &str, unhealthy_after: Duration) {
        self.with(name, |s| s.unhealthy_after = unhealthy_after);
    }

    pub fn delivered(&self, name: &str) {
        self.with(name, |s| {
            s.failing_since = None;
            s.last_problem = None;
        });
    }

    pub fn failed(&self, name: &str, now: DateTime<Utc>, problem: &str) {
        self.with(name, |s| {
            s.failing_since.get_or_insert(now);
            s.last_problem = Some(problem.to_owned());
        });
    }

    pub fn set_disabled(&self, name: &str, reason: Option<String>) {
        self.with(name, |s| s.disabled = reason);
    }

    /// The backlog as last read from the database.
    pub fn set_backlog(&self, name: &str, pending: i64, oldest: Option<DateTime<Utc>>) {
        self.with(name, |s| {
            s.pending = pending;
            s.oldest = oldest;
        });
    }

    /// The registered sinks' names.
    pub fn names(&self) -> Vec<String> {
        let sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        sinks.keys().cloned().collect()
    }

    /// Each sink's backlog with the oldest event's age at `now`.
    pub fn backlogs(&self, now: DateTime<Utc>) -> Vec<BacklogNow> {
        let sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        sinks
            .iter()
            .map(|(name, s)| BacklogNow {
                sink: name.clone(),
                pending: s.pending,
                oldest_age: s
                    .oldest
                    .and_then(|t| (now - t).to_std().ok())
                    .unwrap_or_default(),
                disabled: s.disabled.is_some(),
            })
            .collect()
    }

    /// Events not yet delivered, over all sinks.
    pub fn pending(&self) -> i64 {
        let sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        sinks.values().map(|s| s.pending).sum()
    }

    /// Why the sinks are unhealthy at `now`, if they are (each problem once).
    pub fn problem(&self, now: DateTime<Utc>) -> Option<String> {
        let sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        let problems: Vec<String> = sinks
            .iter()
            .filter_map(|(name, s)| {
                if let Some(reason) = &s.disabled {
                    return Some(format!("webhook sink `{name}` is disabled ({reason})"));
                }
                let since = s.failing_since?;
                let limit = crate::domain::time::span(s.unhealthy_after);
                (now - since > limit).then(|| {
                    format!(
                        "webhook sink `{name}` has been failing for {} s ({}; {} events pending)",
                        (now - since).num_seconds(),
                        s.last_problem.as_deref().unwrap_or("no answer"),
                        s.pending
                    )
                })
            })
            .collect();
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_failing_longer_than_its_threshold_or_disabled_is_a_problem() {
        let health = SinkHealth::default();
        health.register("shop", Duration::from_secs(60));
        let t0 = Utc::now();
        health.failed("shop", t0, "HTTP 503");
        health.failed("shop", t0 + chrono::Duration::seconds(30), "HTTP 503");
        assert_eq!(health.problem(t0 + chrono::Duration::seconds(59)), None);
        let problem = health.problem(t0 + chrono::Duration::seconds(61)).unwrap();
        assert!(
            problem.contains("`shop`") && problem.contains("HTTP 503"),
            "{problem}"
        );
        health.delivered("shop");
        assert_eq!(health.problem(t0 + chrono::Duration::hours(1)), None);
        health.set_disabled("shop", Some("410 Gone".into()));
        assert!(health.problem(t0).unwrap().contains("disabled"));
        health.set_backlog("shop", 3, Some(t0));
        assert_eq!(health.pending(), 3);
    }

    #[test]
    fn the_oldest_age_is_computed_when_read_not_when_the_backlog_was() {
        let health = SinkHealth::default();
        health.register("shop", Duration::from_secs(60));
        let t0 = Utc::now();
        health.set_backlog("shop", 2, Some(t0));
        let age_at = |secs| health.backlogs(t0 + chrono::Duration::seconds(secs))[0].oldest_age;
        assert_eq!(age_at(10), Duration::from_secs(10));
        assert_eq!(age_at(70), Duration::from_secs(70));
        health.set_backlog("shop", 0, None);
        assert_eq!(age_at(70), Duration::ZERO);
        assert_eq!(health.names(), ["shop"]);
    }
}
