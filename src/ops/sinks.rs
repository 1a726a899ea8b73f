//! How the webhook sinks are doing, as their delivery workers report it: for
//! `/healthz` (a sink failing longer than its `unhealthy_after`, or disabled)
//! and the `STATUS=` line (the backlog). A short-held mutex: the workers and
//! the readers only ever copy a few fields in or out.

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

    pub fn set_pending(&self, name: &str, pending: i64) {
        self.with(name, |s| s.pending = pending);
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
        health.set_pending("shop", 3);
        assert_eq!(health.pending(), 3);
    }
}
