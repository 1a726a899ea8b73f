//! `[[webhooks]]`: the sinks events are delivered to, and their secrets, as
//! typed values: a parsed URL, the event types, and the kind of sink, which
//! for a signed (standard) sink holds where its secret is, so that a signed
//! sink without one cannot be built. The entries are parsed from the file in
//! `webhook_parse`, which reports every problem with the others of the file.
//!
//! A sink's secret is a secret like the API's: its own type, decoded once,
//! redacted in `Debug` and whenever the settings are rendered; a secret file
//! (`secret_file`) is found and read by the same code as `api.secret_key_file`
//! (a systemd credential of that name first, never a FIFO). A Slack-format
//! sink is unsigned and its URL is the secret: it is redacted too.
//!
//! During a secret rotation a signed sink also holds the previous secret
//! (`previous_secret` or `previous_secret_file`, read by the same rules) and
//! the instant it stops being used (`previous_until`): until then each message
//! carries a signature with each (see `deliver::message::keys_in_effect`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use super::error::Problem;
use super::secret_file;
use super::userinfo;
use super::webhook_secret::WebhookSecret;
use crate::domain::EventType;

/// `attempts_retention` when not set, and for a sink the database knows but
/// the configuration no longer has.
pub const DEFAULT_ATTEMPTS_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// One `[[webhooks]]` entry, parsed.
#[derive(Clone)]
pub struct WebhookSettings {
    /// The sink's name in the database, logs and metrics: as configured, else
    /// the URL's host and a short hash of the URL as written. Name a sink to
    /// keep its backlog and history when its URL changes.
    pub name: String,
    pub url: reqwest::Url,
    /// Signed (standard, with its secret) or Slack.
    pub kind: SinkKind,
    /// The event types this sink receives (all unless configured).
    pub events: Vec<EventType>,
    /// Total time allowed for one delivery attempt.
    pub timeout: Duration,
    /// How long an event is retried before it is given up (`events --failed`).
    pub retry_horizon: Duration,
    /// `/healthz` turns 503 once deliveries have failed for this long.
    pub unhealthy_after: Duration,
    /// A sink failing continuously this long is disabled (once, with a
    /// `sink.disabled` event); `None`: never (the default).
    pub disable_after: Option<Duration>,
    /// How long its delivery log (`attempts`) and its delivered deliveries
    /// are kept (the daemon prunes older ones; undelivered ones never).
    pub attempts_retention: Duration,
    /// Deliveries in flight at once (never two of one issuance).
    pub concurrency: usize,
    /// The first retry's delay; each further one is 4 times longer, up to
    /// `backoff_max` (with +-25 % jitter), until `retry_horizon`.
    pub backoff_first: Duration,
    pub backoff_max: Duration,
    /// How long a daemon holds the sink (the one daemon sending its backlog)
    /// without renewing its hold before another may take it: a frozen
    /// daemon's hold (a dead one's is taken at once).
    pub lease: Duration,
    /// Where the entry was written (a file), for problems found only when its
    /// secret file is read.
    pub origin: Option<String>,
}

/// How a sink's requests look.
#[derive(Clone)]
pub enum SinkKind {
    /// Standard Webhooks: the event as JSON, signed (`webhook-id`,
    /// `webhook-timestamp`, `webhook-signature`) with `secret`, and with
    /// `previous` too while it is in effect.
    Standard {
        secret: SinkSecret,
        previous: Option<PreviousSecret>,
    },
    /// `{"text": "..."}` for Slack-compatible incoming webhooks; unsigned.
    Slack,
}

/// The secret a standard sink used before a rotation, still signed with
/// until `until` (exclusive), so receivers can switch at their own pace.
#[derive(Clone)]
pub struct PreviousSecret {
    /// `previous_secret` or `previous_secret_file`.
    pub secret: SinkSecret,
    /// `previous_until`: from this instant on, only the current secret signs.
    pub until: DateTime<Utc>,
}

/// Where a standard sink's signing key is.
#[derive(Clone)]
pub enum SinkSecret {
    /// `secret`, decoded at load.
    Inline(Arc<WebhookSecret>),
    /// `secret_file`, read by the commands that deliver or check (see
    /// [`WebhookSettings::signing`]), not by every command that loads settings.
    File(PathBuf),
}

/// A sink's kind with its secret read: what requests are built with.
#[derive(Debug, Clone)]
pub enum Signing {
    /// Signed with this key, found in `source` (`webhooks[N].secret`, or the
    /// file or credential read).
    Standard {
        secret: Arc<WebhookSecret>,
        source: String,
        /// The previous key during a rotation.
        previous: Option<Previous>,
    },
    Slack,
}

/// The previous key of a rotation, read.
#[derive(Debug, Clone)]
pub struct Previous {
    pub secret: Arc<WebhookSecret>,
    /// Where it was found, like [`Signing::Standard`]'s `source`.
    pub source: String,
    /// Signed with until this instant (exclusive).
    pub until: DateTime<Utc>,
}

impl SinkKind {
    /// The `format` word.
    pub fn format(&self) -> &'static str {
        match self {
            Self::Standard { .. } => "standard",
            Self::Slack => "slack",
        }
    }
}

impl WebhookSettings {
    /// The URL as logs and `check-config` may show it: a Slack URL (itself the
    /// secret) redacted, another without its query (which may carry a token)
    /// and without a user name or password (refused at load anyway).
    pub fn shown_url(&self) -> String {
        match self.kind {
            SinkKind::Slack => "[REDACTED]".to_owned(),
            SinkKind::Standard { .. } => {
                let mut url = userinfo::stripped(self.url.clone());
                if url.query().is_some() {
                    url.set_query(Some("[REDACTED]"));
                }
                url.to_string()
            }
        }
    }

    /// The signing key, read (a `secret_file`: the credential of that file
    /// name in `$CREDENTIALS_DIRECTORY` first, see `secret_file`), and the
    /// previous one of a rotation, read the same way. `index` is the entry's
    /// place in the list; a problem names `webhooks[N].secret_file` (or
    /// `previous_secret_file`, ...) and where the entry was written, never
    /// the secret. A previous secret equal to the current one is refused: it
    /// would double every signature for nothing.
    pub fn signing(
        &self,
        index: usize,
        credentials_dir: Option<&Path>,
    ) -> Result<Signing, Problem> {
        let (secret, previous) = match &self.kind {
            SinkKind::Slack => return Ok(Signing::Slack),
            SinkKind::Standard { secret, previous } => (secret, previous),
        };
        let (secret, source) = self.read_secret(index, secret, "", credentials_dir)?;
        let previous = match previous {
            None => None,
            Some(p) => {
                let (previous, previous_source) =
                    self.read_secret(index, &p.secret, "previous_", credentials_dir)?;
                if previous.expose() == secret.expose() {
                    let field = match p.secret {
                        SinkSecret::Inline(_) => "previous_secret",
                        SinkSecret::File(_) => "previous_secret_file",
                    };
                    return Err(Problem::new(
                        format!("webhooks[{index}].{field}"),
                        format!(
                            "is the same secret as the current one ({source}): a rotation needs \
                             a new secret; remove the previous one, or make a new current one"
                        ),
                        self.origin.as_deref(),
                    ));
                }
                Some(Previous {
                    secret: previous,
                    source: previous_source,
                    until: p.until,
                })
            }
        };
        Ok(Signing::Standard {
            secret,
            source,
            previous,
        })
    }

    /// One secret (the current one with `prefix` "", the previous one with
    /// "previous_"), read, and where it was found.
    fn read_secret(
        &self,
        index: usize,
        secret: &SinkSecret,
        prefix: &str,
        credentials_dir: Option<&Path>,
    ) -> Result<(Arc<WebhookSecret>, String), Problem> {
        let key = |field: &str| format!("webhooks[{index}].{prefix}{field}");
        let path = match secret {
            SinkSecret::Inline(secret) => return Ok((secret.clone(), key("secret"))),
            SinkSecret::File(path) => path,
        };
        let problem =
            |reason: String| Problem::new(key("secret_file"), reason, self.origin.as_deref());
        let located = secret_file::locate(path, credentials_dir).map_err(problem)?;
        let text = secret_file::read(&located).map_err(problem)?;
        let secret = WebhookSecret::parse(&text)
            .map_err(|reason| problem(format!("{}: {reason}", located.path().display())))?;
        Ok((
            Arc::new(secret),
            format!("{located} ({})", key("secret_file")),
        ))
    }
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("name", &self.name)
            .field("url", &self.shown_url())
            .field("kind", &self.kind)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SinkSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("[REDACTED]"),
            Self::File(path) => write!(f, "file {path:?}"),
        }
    }
}

impl std::fmt::Debug for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Standard { secret, previous } => {
                write!(f, "Standard {{ secret: {secret:?}")?;
                if let Some(p) = previous {
                    write!(f, ", previous: {:?} until {}", p.secret, p.until)?;
                }
                f.write_str(" }")
            }
            Self::Slack => f.write_str("Slack"),
        }
    }
}

/// The entry as `check-config` shows it: secret and Slack URL redacted. Read
/// back, it is the same entry (with the secret and URL put back).
#[derive(Serialize)]
struct Shown<'a> {
    name: &'a str,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_file: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret_file: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_until: Option<String>,
    events: Vec<&'static str>,
    format: &'static str,
    #[serde(with = "humantime_serde")]
    timeout: Duration,
    #[serde(with = "humantime_serde")]
    retry_horizon: Duration,
    #[serde(with = "humantime_serde")]
    unhealthy_after: Duration,
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    disable_after: Option<Duration>,
    #[serde(with = "humantime_serde")]
    attempts_retention: Duration,
    concurrency: usize,
    #[serde(with = "humantime_serde")]
    backoff_first: Duration,
    #[serde(with = "humantime_serde")]
    backoff_max: Duration,
    #[serde(with = "humantime_serde")]
    lease: Duration,
}

impl Serialize for WebhookSettings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ((secret, secret_file), previous) = match &self.kind {
            SinkKind::Standard { secret, previous } => (shown(secret), previous.as_ref()),
            SinkKind::Slack => ((None, None), None),
        };
        let (previous_secret, previous_secret_file) =
            previous.map_or((None, None), |p| shown(&p.secret));
        let previous_until = previous.map(|p| p.until.to_rfc3339());
        Shown {
            name: &self.name,
            url: self.shown_url(),
            secret,
            secret_file,
            previous_secret,
            previous_secret_file,
            previous_until,
            events: self.events.iter().map(|t| t.as_str()).collect(),
            format: self.kind.format(),
            timeout: self.timeout,
            retry_horizon: self.retry_horizon,
            unhealthy_after: self.unhealthy_after,
            disable_after: self.disable_after,
            attempts_retention: self.attempts_retention,
            concurrency: self.concurrency,
            backoff_first: self.backoff_first,
            backoff_max: self.backoff_max,
            lease: self.lease,
        }
        .serialize(s)
    }
}

/// `secret` as shown: `[REDACTED]` for an inline one, the path of a file.
fn shown(secret: &SinkSecret) -> (Option<&'static str>, Option<&Path>) {
    match secret {
        SinkSecret::Inline(_) => (Some("[REDACTED]"), None),
        SinkSecret::File(path) => (None, Some(path.as_path())),
    }
}
