//! The configured sinks: each built from its `[[webhooks]]` entry (secret
//! decoded, client built), registered in the database before the first
//! poll, and started (`holding`: the loop that holds the sink and runs its
//! worker while held).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use super::message::{Message, keys_in_effect, signed, slack};
use super::schedule::{Answer, Backoff};
use super::sender::Sender;
use crate::domain::EventType;
use crate::domain::timefmt::{from_db, local};
use crate::ops::progress::Progress;
use crate::settings::{Problem, Settings, SettingsError, Signing};
use crate::store::{DueDelivery, Store, StoreError};

/// A configured sink, its secret decoded and its client built.
#[derive(Debug)]
pub struct Sink {
    pub name: String,
    /// The URL as logs may show it.
    pub(super) shown_url: String,
    /// Signed with its key, or Slack text.
    pub(super) signing: Signing,
    pub(super) types: Vec<EventType>,
    pub(super) backoff: Backoff,
    pub(super) concurrency: usize,
    pub(super) unhealthy_after: Duration,
    /// Failing continuously this long disables the sink (`None`: never).
    pub(super) disable_after: Option<Duration>,
    /// How long its delivery log and delivered deliveries are kept.
    pub attempts_retention: Duration,
    pub(super) sender: Sender,
    /// The zone of the instants in Slack texts (`api.timezone`).
    pub(super) zone: chrono_tz::Tz,
    /// How long a hold on the sink lasts unless renewed (`holding`).
    pub lease: Duration,
}

impl Sink {
    /// The URL as logs may show it (a Slack URL redacted, a query hidden).
    pub fn shown_url(&self) -> &str {
        &self.shown_url
    }

    /// One attempt at `delivery` at time `at`: its message (signed with the
    /// sink's secret, or Slack text) posted once; the answer and the time taken.
    pub async fn send(&self, delivery: &DueDelivery, at: DateTime<Utc>) -> (Answer, Duration) {
        let (answer, took, _) = self.send_logged(delivery, at).await;
        (answer, took)
    }

    /// [`Sink::send`], with the first KiB of the answer's body, sanitised,
    /// for the delivery log.
    pub async fn send_logged(
        &self,
        delivery: &DueDelivery,
        at: DateTime<Utc>,
    ) -> (Answer, Duration, Option<String>) {
        let message = message_for(self, delivery, at);
        let started = std::time::Instant::now();
        let (answer, response) = self.sender.post(&message).await;
        (answer, started.elapsed(), response)
    }
}

/// Every configured sink.
#[derive(Debug, Default)]
pub struct Sinks(pub(super) Vec<Arc<Sink>>);

impl Sinks {
    /// Builds the sinks of `[[webhooks]]`, reading their secrets; every
    /// problem (of every sink) is reported, each naming its key.
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let credentials = settings.credentials_dir.as_deref();
        let mut sinks = Vec::new();
        let mut problems = Vec::new();
        for (i, w) in settings.webhooks.iter().enumerate() {
            let signing = match w.signing(i, credentials) {
                Ok(signing) => signing,
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            };
            let sender = match Sender::new(w.url.clone(), w.timeout) {
                Ok(sender) => sender,
                Err(e) => {
                    let reason = format!("cannot build an HTTP client: {}", e.without_url());
                    problems.push(Problem::new(
                        format!("webhooks[{i}]"),
                        reason,
                        w.origin.as_deref(),
                    ));
                    continue;
                }
            };
            sinks.push(Arc::new(Sink {
                name: w.name.clone(),
                shown_url: w.shown_url(),
                signing,
                types: w.events.clone(),
                backoff: Backoff {
                    first: w.backoff_first,
                    max: w.backoff_max,
                    horizon: w.retry_horizon,
                },
                concurrency: w.concurrency,
                unhealthy_after: w.unhealthy_after,
                disable_after: w.disable_after,
                attempts_retention: w.attempts_retention,
                sender,
                zone: settings.api.timezone,
                lease: w.lease,
            }));
        }
        if !problems.is_empty() {
            return Err(SettingsError::Problems(problems));
        }
        Ok(Self(sinks))
    }

    /// Each signed sink's name and where its secret was found, with its
    /// rotation if it has one, as of `now` (for `check-config`; never a secret).
    pub fn secret_sources(&self, now: DateTime<Utc>) -> Vec<(&str, String)> {
        self.0
            .iter()
            .filter_map(|s| match &s.signing {
                Signing::Standard {
                    source, previous, ..
                } => {
                    let mut note = format!("secret from {source} (not shown)");
                    if let Some(p) = previous {
                        let until = local(p.until, s.zone);
                        note.push_str(&match now < p.until {
                            true => format!(
                                "; previous secret from {} (not shown) accepted until {until}",
                                p.source
                            ),
                            false => format!(
                                "; previous secret from {} (not shown) no longer used since {until}: \
                                 remove it and previous_until",
                                p.source
                            ),
                        });
                    }
                    Some((s.name.as_str(), note))
                }
                Signing::Slack => None,
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each sink's name and `attempts_retention` (what the daemon prunes by).
    pub fn retentions(&self) -> Vec<(String, Duration)> {
        self.0
            .iter()
            .map(|s| (s.name.clone(), s.attempts_retention))
            .collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|s| s.name.clone()).collect()
    }

    /// Every sink, in the order of the configuration.
    pub fn iter(&self) -> impl Iterator<Item = &Sink> {
        self.0.iter().map(|s| s.as_ref())
    }

    /// Registers each sink in the database (a new one starts after the newest
    /// event) before anything is polled, so no event of this run is missed.
    pub async fn register(&self, store: &Store, progress: &Progress) -> Result<(), StoreError> {
        for sink in &self.0 {
            let row = store.register_sink(&sink.name).await?;
            progress.sinks.register(&sink.name, sink.unhealthy_after);
            if let Some(at) = &row.disabled_at {
                let reason = disabled_reason(&row.disabled_reason, at);
                error!(sink = %sink.name, reason, "webhook sink is disabled: nothing is sent to it until `issuance-watcher sinks enable NAME`");
                progress.sinks.set_disabled(&sink.name, Some(reason));
            }
            // Failing before a restart is failing now (`/healthz`, metrics),
            // since the recorded time, until a 2xx.
            if let Some(since) = row.failing_since.as_deref().and_then(from_db) {
                let problem = row.last_problem.as_deref().unwrap_or("failing");
                progress.sinks.failed(&sink.name, since, problem);
            }
            info!(sink = %sink.name, url = %sink.shown_url, after_seq = row.admitted_seq, "delivering events to webhook sink");
            if let Signing::Standard {
                previous: Some(p), ..
            } = &sink.signing
            {
                let until = local(p.until, sink.zone);
                match Utc::now() < p.until {
                    true => {
                        info!(sink = %sink.name, previous_until = %until, "secret rotation: signing with the current and the previous secret until previous_until, then with the current one only")
                    }
                    false => {
                        warn!(sink = %sink.name, previous_until = %until, "secret rotation over: the previous secret is no longer used; remove previous_secret(_file) and previous_until")
                    }
                }
            }
        }
        Ok(())
    }
}

pub(super) fn disabled_reason(reason: &Option<String>, at: &str) -> String {
    format!("{} since {at}", reason.as_deref().unwrap_or("disabled"))
}

pub(super) fn message_for(sink: &Sink, delivery: &DueDelivery, at: DateTime<Utc>) -> Message {
    match &sink.signing {
        Signing::Standard {
            secret, previous, ..
        } => {
            let previous = previous.as_ref().map(|p| (p.secret.as_ref(), p.until));
            let keys = keys_in_effect(secret, previous, at);
            signed(delivery, &keys, at.timestamp())
        }
        Signing::Slack => slack(delivery, sink.zone),
    }
}
