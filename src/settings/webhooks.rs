//! `[[webhooks]]`: the sinks events are delivered to, and their secrets.
//!
//! A sink's secret is a secret like the API's: its own type, read from the
//! file (`secret`), a file (`secret_file`, found and read by the same code as
//! `api.secret_key_file`: a systemd credential of that name first, never a
//! FIFO), decoded once, redacted in `Debug` and whenever the settings are
//! rendered. A Slack-format sink is unsigned and its URL is the secret: it is
//! redacted too. A URL with `user:password@` is refused, as for `api.base_url`.
//! Errors name the key (`webhooks[1].url`), never a secret value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use sha2::Digest as _;

use super::error::SettingsError;
use super::key_bytes::KeyBytes;
use super::secret_file;
use super::userinfo;
use crate::domain::EventType;

/// How a sink's requests look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkFormat {
    /// Standard Webhooks: the event as JSON, signed (`webhook-id`,
    /// `webhook-timestamp`, `webhook-signature`).
    #[default]
    Standard,
    /// `{"text": "..."}` for Slack-compatible incoming webhooks; unsigned.
    Slack,
}

/// One `[[webhooks]]` entry, as configured.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The sink's name in the database, logs and metrics. Default: the URL's
    /// host and a short hash of the URL. Name a sink to keep its backlog and
    /// history when its URL changes.
    #[serde(default)]
    pub name: Option<String>,
    pub url: String,
    /// `whsec_` + Base64 of the key.
    #[serde(default)]
    pub secret: Option<SecretString>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// The event types this sink receives (default: all).
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub format: SinkFormat,
    /// Total time allowed for one delivery attempt.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How long an event is retried before it is given up (`events --failed`).
    #[serde(default = "default_horizon", with = "humantime_serde")]
    pub retry_horizon: Duration,
    /// `/healthz` turns 503 once deliveries have failed for this long.
    #[serde(default = "default_unhealthy_after", with = "humantime_serde")]
    pub unhealthy_after: Duration,
    /// Deliveries in flight at once (never two of one issuance).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// The first retry's delay; each further one is 4 times longer, up to
    /// `backoff_max` (with +-25 % jitter), until `retry_horizon`.
    #[serde(default = "default_backoff_first", with = "humantime_serde")]
    pub backoff_first: Duration,
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(15)
}
fn default_horizon() -> Duration {
    Duration::from_secs(3 * 24 * 3600)
}
fn default_unhealthy_after() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_concurrency() -> usize {
    8
}
fn default_backoff_first() -> Duration {
    Duration::from_secs(5)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(6 * 3600)
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("name", &self.name())
            .field("url", &self.shown_url())
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .field("secret_file", &self.secret_file)
            .field("events", &self.events)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// The entry as `check-config` shows it: secret and Slack URL redacted.
#[derive(Serialize)]
struct Shown<'a> {
    name: String,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_file: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<&'a [String]>,
    format: SinkFormat,
    #[serde(with = "humantime_serde")]
    timeout: Duration,
    #[serde(with = "humantime_serde")]
    retry_horizon: Duration,
    #[serde(with = "humantime_serde")]
    unhealthy_after: Duration,
    concurrency: usize,
    #[serde(with = "humantime_serde")]
    backoff_first: Duration,
    #[serde(with = "humantime_serde")]
    backoff_max: Duration,
}

impl Serialize for WebhookSettings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Shown {
            name: self.name(),
            url: self.shown_url(),
            secret: self.secret.as_ref().map(|_| "[REDACTED]"),
            secret_file: self.secret_file.as_deref(),
            events: self.events.as_deref(),
            format: self.format,
            timeout: self.timeout,
            retry_horizon: self.retry_horizon,
            unhealthy_after: self.unhealthy_after,
            concurrency: self.concurrency,
            backoff_first: self.backoff_first,
            backoff_max: self.backoff_max,
        }
        .serialize(s)
    }
}

/// A sink's signing key: the bytes `whsec_<base64>` stands for.
#[derive(Debug)]
pub struct WebhookSecret(KeyBytes);

impl WebhookSecret {
    /// From `whsec_<base64>` (the prefix may be left out). `key` names the
    /// setting in errors; the value never appears in one.
    pub fn from_text(text: &str, key: &str) -> Result<Self, SettingsError> {
        let text = text.trim();
        let encoded = text.strip_prefix("whsec_").unwrap_or(text);
        let bytes = KeyBytes::decode(encoded).ok_or_else(|| {
            invalid(
                key,
                "is not `whsec_` followed by Base64 (the value is not shown)",
            )
        })?;
        if bytes.expose().len() < 16 {
            return Err(invalid(
                key,
                "is too short: a webhook secret needs at least 16 bytes (24 to 64 recommended)",
            ));
        }
        Ok(Self(bytes))
    }

    /// The one place the key is exposed: computing a signature.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }
}

fn invalid(key: &str, reason: impl std::fmt::Display) -> SettingsError {
    SettingsError::Invalid(format!("`{key}`: {reason}"))
}

impl WebhookSettings {
    /// The configured name, else `<host>-<8 hex of the URL's SHA-256>`.
    pub fn name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let hash = sha2::Sha256::digest(self.url.as_bytes());
        let short: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
        let host = reqwest::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "webhook".to_owned());
        format!("{host}-{short}")
    }

    /// The URL as logs and `check-config` may show it: a Slack URL (itself the
    /// secret) redacted, another without its query (which may carry a token)
    /// and without a user name or password (refused at load anyway).
    pub fn shown_url(&self) -> String {
        match (
            self.format,
            reqwest::Url::parse(&self.url).map(userinfo::stripped),
        ) {
            (SinkFormat::Slack, _) => "[REDACTED]".to_owned(),
            (SinkFormat::Standard, Ok(mut url)) => {
                if url.query().is_some() {
                    url.set_query(Some("[REDACTED]"));
                }
                url.to_string()
            }
            (SinkFormat::Standard, Err(_)) => "[not a URL]".to_owned(),
        }
    }

    /// The parsed URL (validated at load).
    pub fn parsed_url(&self) -> Result<reqwest::Url, SettingsError> {
        reqwest::Url::parse(&self.url).map_err(|_| invalid("webhooks[].url", "is not a URL"))
    }

    /// The event types this sink receives.
    pub fn event_types(&self) -> Vec<EventType> {
        match &self.events {
            None => EventType::ALL.to_vec(),
            Some(names) => names.iter().filter_map(|n| n.parse().ok()).collect(),
        }
    }

    /// The signing key (`None` for an unsigned Slack sink): `secret`, else
    /// `secret_file` (see `secret_file`: the credential of that file name in
    /// `$CREDENTIALS_DIRECTORY` first). `index` is the entry's place in the list.
    pub fn signing_secret(
        &self,
        index: usize,
        credentials_dir: Option<&Path>,
    ) -> Result<Option<WebhookSecret>, SettingsError> {
        Ok(self
            .secret_with_source(index, credentials_dir)?
            .map(|(secret, _)| secret))
    }

    /// Where the signing key comes from, for `check-config` (`None` for an
    /// unsigned Slack sink): `webhooks[N].secret`, or the file or credential
    /// read. Reads and checks the key like [`Self::signing_secret`].
    pub fn secret_source(
        &self,
        index: usize,
        credentials_dir: Option<&Path>,
    ) -> Result<Option<String>, SettingsError> {
        Ok(self
            .secret_with_source(index, credentials_dir)?
            .map(|(_, source)| source))
    }

    fn secret_with_source(
        &self,
        index: usize,
        credentials_dir: Option<&Path>,
    ) -> Result<Option<(WebhookSecret, String)>, SettingsError> {
        if self.format == SinkFormat::Slack {
            return Ok(None);
        }
        let key = |field: &str| format!("webhooks[{index}].{field}");
        if let Some(secret) = &self.secret {
            let secret = WebhookSecret::from_text(secret.expose_secret(), &key("secret"))?;
            return Ok(Some((secret, key("secret"))));
        }
        let Some(path) = &self.secret_file else {
            return Err(invalid(
                &key("secret"),
                "is required for a signed sink (or secret_file; format = \"slack\" is unsigned)",
            ));
        };
        let located = secret_file::locate(path, credentials_dir)
            .map_err(|reason| invalid(&key("secret_file"), reason))?;
        let text =
            secret_file::read(&located).map_err(|reason| invalid(&key("secret_file"), reason))?;
        let secret = WebhookSecret::from_text(&text, &key("secret_file"))?;
        Ok(Some((
            secret,
            format!("{located} ({})", key("secret_file")),
        )))
    }
}

/// Checks every entry (everything but reading secret files, which only the
/// daemon and `check-config` need): URLs, formats, event names, ranges, names.
pub fn validate(webhooks: &[WebhookSettings]) -> Result<(), SettingsError> {
    let mut names = std::collections::HashSet::new();
    for (i, w) in webhooks.iter().enumerate() {
        let key = |field: &str| format!("webhooks[{i}].{field}");
        let shown = |reason: &str| match w.format {
            SinkFormat::Slack => reason.to_owned(),
            SinkFormat::Standard => format!("{reason} ({})", w.shown_url()),
        };
        match reqwest::Url::parse(&w.url) {
            Ok(url) if userinfo::present(&url) => {
                return Err(invalid(&key("url"), userinfo::REFUSED));
            }
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            Ok(_) => {
                return Err(invalid(
                    &key("url"),
                    shown("must be an http(s) URL with a host"),
                ));
            }
            Err(e) => return Err(invalid(&key("url"), format!("is not a URL: {e}"))),
        }
        match w.format {
            SinkFormat::Slack if w.secret.is_some() || w.secret_file.is_some() => {
                return Err(invalid(
                    &key("secret"),
                    "a format = \"slack\" sink is unsigned: remove secret / secret_file",
                ));
            }
            SinkFormat::Standard if w.secret.is_some() && w.secret_file.is_some() => {
                return Err(invalid(
                    &key("secret"),
                    "set secret or secret_file, not both",
                ));
            }
            SinkFormat::Standard if w.secret.is_none() && w.secret_file.is_none() => {
                return Err(invalid(
                    &key("secret"),
                    "is required for a signed sink (or secret_file; format = \"slack\" is unsigned)",
                ));
            }
            _ => {}
        }
        if let Some(secret) = &w.secret {
            WebhookSecret::from_text(secret.expose_secret(), &key("secret"))?;
        }
        if let Some(events) = &w.events {
            if events.is_empty() {
                return Err(invalid(
                    &key("events"),
                    "must name at least one event type (leave it out for all)",
                ));
            }
            for name in events {
                name.parse::<EventType>()
                    .map_err(|e| invalid(&key("events"), e))?;
            }
        }
        let name = w.name();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid(
                &key("name"),
                "must be 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        if !names.insert(name.clone()) {
            return Err(invalid(
                &key("name"),
                format!("{name:?} is used by another sink"),
            ));
        }
        for (field, value) in [
            ("timeout", w.timeout),
            ("retry_horizon", w.retry_horizon),
            ("unhealthy_after", w.unhealthy_after),
            ("backoff_first", w.backoff_first),
            ("backoff_max", w.backoff_max),
        ] {
            if value.is_zero() {
                return Err(invalid(&key(field), "must be longer than zero"));
            }
        }
        if w.timeout > Duration::from_secs(300) {
            return Err(invalid(&key("timeout"), "must be at most 5m"));
        }
        if w.retry_horizon > Duration::from_secs(365 * 24 * 3600) {
            return Err(invalid(&key("retry_horizon"), "must be at most a year"));
        }
        if w.backoff_max < w.backoff_first {
            return Err(invalid(
                &key("backoff_max"),
                "must not be shorter than backoff_first",
            ));
        }
        if w.backoff_max > Duration::from_secs(7 * 24 * 3600) {
            return Err(invalid(&key("backoff_max"), "must be at most 7 days"));
        }
        if !(1..=256).contains(&w.concurrency) {
            return Err(invalid(&key("concurrency"), "must be between 1 and 256"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Base64 of 32 bytes `0..32`.
    const WHSEC: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn parse(text: &str) -> Result<Vec<WebhookSettings>, String> {
        #[derive(Deserialize)]
        struct File {
            webhooks: Vec<WebhookSettings>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(&file.webhooks).map_err(|e| e.to_string())?;
        Ok(file.webhooks)
    }

    #[test]
    fn a_signed_sink_with_defaults() {
        let sinks = parse(&format!(
            "[[webhooks]]\nurl = \"https://shop.example/hooks?token=abc\"\nsecret = \"{WHSEC}\"\n"
        ))
        .unwrap();
        let sink = &sinks[0];
        assert_eq!(sink.event_types(), EventType::ALL);
        assert_eq!(sink.timeout, Duration::from_secs(15));
        assert!(sink.name().starts_with("shop.example-"), "{}", sink.name());
        let secret = sink.signing_secret(0, None).unwrap().unwrap();
        assert_eq!(secret.expose(), (0u8..32).collect::<Vec<_>>());
        let shown = format!("{sink:?} {}", toml::to_string(sink).unwrap());
        assert!(
            !shown.contains(WHSEC) && !shown.contains("token=abc"),
            "{shown}"
        );
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }

    #[test]
    fn broken_entries_name_their_key_and_never_the_secret() {
        let cases = [
            (
                "url = \"not a url\"\nsecret = \"whsec_AAAA\"",
                "webhooks[0].url",
            ),
            (
                "url = \"ftp://x/\"\nsecret = \"whsec_AAAA\"",
                "webhooks[0].url",
            ),
            ("url = \"https://x/\"", "webhooks[0].secret"),
            (
                "url = \"https://x/\"\nsecret = \"whsec_%%%secretvalue\"",
                "webhooks[0].secret",
            ),
            (
                "url = \"https://x/\"\nsecret = \"whsec_AAAA\"",
                "webhooks[0].secret",
            ),
            (
                "url = \"https://hooks.slack.com/services/T/B/X\"\nformat = \"slack\"\nsecret = \"whsec_AAAA\"",
                "webhooks[0].secret",
            ),
        ];
        for (entry, key) in cases {
            let err = parse(&format!("[[webhooks]]\n{entry}\n")).unwrap_err();
            assert!(err.contains(key), "{entry}: {err}");
            assert!(!err.contains("secretvalue"), "{err}");
        }
        let events = format!(
            "[[webhooks]]\nurl = \"https://x/\"\nsecret = \"{WHSEC}\"\nevents = [\"issuance.paid\"]\n"
        );
        assert!(parse(&events).unwrap_err().contains("webhooks[0].events"));
        let twice = format!(
            "[[webhooks]]\nname = \"a\"\nurl = \"https://x/\"\nsecret = \"{WHSEC}\"\n[[webhooks]]\nname = \"a\"\nurl = \"https://y/\"\nsecret = \"{WHSEC}\"\n"
        );
        assert!(parse(&twice).unwrap_err().contains("webhooks[1].name"));
    }

    #[test]
    fn a_url_with_a_user_or_password_is_refused_without_showing_it() {
        for url in [
            "https://hookuser:hunter2pass@shop.example/hooks",
            "https://hookuser@shop.example/hooks",
            "ftp://hookuser:hunter2pass@shop.example/",
        ] {
            let err = parse(&format!(
                "[[webhooks]]\nurl = {url:?}\nsecret = \"{WHSEC}\"\n"
            ))
            .unwrap_err();
            assert!(
                err.contains("`webhooks[0].url`: must not carry a user name or password"),
                "{url}: {err}"
            );
            assert!(
                !err.contains("hunter2pass") && !err.contains("hookuser"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_slack_url_is_a_secret_and_a_secret_file_is_found_among_credentials() {
        let slack = parse(
            "[[webhooks]]\nurl = \"https://hooks.slack.com/services/T0/B0/SECRETPART\"\nformat = \"slack\"\n",
        )
        .unwrap();
        let shown = format!("{:?} {}", slack[0], toml::to_string(&slack[0]).unwrap());
        assert!(!shown.contains("SECRETPART"), "{shown}");
        assert!(slack[0].signing_secret(0, None).unwrap().is_none());

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hook_secret"), format!("{WHSEC}\n")).unwrap();
        let filed = parse(
            "[[webhooks]]\nurl = \"https://x/\"\nsecret_file = \"/etc/issuance-watcher/hook_secret\"\n",
        )
        .unwrap();
        let err = filed[0].signing_secret(3, None).unwrap_err().to_string();
        assert!(err.contains("webhooks[3].secret_file"), "{err}");
        assert!(
            filed[0]
                .signing_secret(3, Some(dir.path()))
                .unwrap()
                .is_some()
        );
    }
}
