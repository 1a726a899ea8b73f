//! Typed settings, layered: built-in defaults (the example file, compiled in),
//! then the TOML file, then `ISSUANCE_WATCHER__SECTION__KEY` environment variables.
//!
//! Loading validates everything once, so the rest of the program holds values
//! that are known good (a parsed URL, a time zone, a decoded secret) and no call
//! site assembles raw fields.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use chrono_tz::Tz;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize, Serializer};

/// The example configuration, which doubles as the built-in defaults.
pub const DEFAULTS_TOML: &str = include_str!("../config/issuance-watcher.toml");
/// Where `--config` points when it is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/issuance-watcher/config.toml";
/// Environment variables starting with this (then `__SECTION__KEY`) override the file.
pub const ENV_PREFIX: &str = "ISSUANCE_WATCHER";
/// The credential name looked up in `$CREDENTIALS_DIRECTORY` when no secret is configured.
pub const CREDENTIAL_NAME: &str = "secret_key";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid configuration: `{key}`: {reason}")]
    Key { key: &'static str, reason: String },
}

fn key_error(key: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Key {
        key,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub api: ApiSettings,
    pub database: DatabaseSettings,
    pub poll: PollSettings,
    pub flags: FlagSettings,
    pub log: LogSettings,
    #[serde(default)]
    pub http: HttpSettings,
    /// `$CREDENTIALS_DIRECTORY` at load time (systemd `LoadCredential=`).
    #[serde(skip)]
    pub credentials_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    pub base_url: String,
    #[serde(default)]
    pub access_key: String,
    #[serde(default, serialize_with = "redact")]
    pub secret_key: Option<SecretString>,
    #[serde(default)]
    pub secret_key_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "tz_serde")]
    pub timezone: Tz,
    pub max_body_bytes: usize,
    pub requests_per_second: f64,
    pub concurrency: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub path: PathBuf,
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PollSettings {
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    pub ready_divisor: u32,
    pub fresh_divisor: u32,
    #[serde(with = "humantime_serde")]
    pub after_due_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub overdue_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    #[serde(with = "humantime_serde")]
    pub not_found_grace: Duration,
    #[serde(with = "humantime_serde")]
    pub auth_pause: Duration,
    #[serde(with = "humantime_serde")]
    pub auth_pause_max: Duration,
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    #[serde(with = "humantime_serde")]
    pub startup_spread: Duration,
    #[serde(with = "humantime_serde")]
    pub idle_recheck: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlagSettings {
    #[serde(with = "humantime_serde")]
    pub due_soon_lead: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
}

/// The optional HTTP listener for `/healthz` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// `host:port` to listen on; empty (the default) keeps the listener off.
    #[serde(default)]
    pub listen: String,
}

impl HttpSettings {
    /// The address to listen on, or `None` when the listener is off.
    pub fn listen_addr(&self) -> Result<Option<std::net::SocketAddr>, SettingsError> {
        let listen = self.listen.trim();
        if listen.is_empty() {
            return Ok(None);
        }
        listen.parse().map(Some).map_err(|_| {
            key_error(
                "http.listen",
                format!("{listen:?} is not an address:port such as 127.0.0.1:9187"),
            )
        })
    }
}

/// The secret key, decoded from its Base64 text: the bytes the JWT is signed with.
pub struct SigningSecret(SecretBox<[u8]>);

impl SigningSecret {
    pub fn from_base64(text: &str) -> Result<Self, SettingsError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| {
                key_error(
                    "api.secret_key",
                    "is not valid Base64 (the value is not shown)",
                )
            })?;
        if bytes.is_empty() {
            return Err(key_error("api.secret_key", "is empty"));
        }
        Ok(Self(SecretBox::new(bytes.into_boxed_slice())))
    }

    /// The one place the secret is exposed: signing a token.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret([REDACTED])")
    }
}

impl Settings {
    /// Loads defaults, then `file` (an explicitly named file must exist; the
    /// default path may be absent), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// Like [`Settings::load`], with the environment given explicitly (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULTS_TOML,
            config::FileFormat::Toml,
        ));
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(SettingsError::MissingFile(path.to_owned()));
                }
                builder =
                    builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
            }
            None => {
                builder = builder.add_source(
                    config::File::with_name(DEFAULT_CONFIG_PATH)
                        .format(config::FileFormat::Toml)
                        .required(false),
                );
            }
        }
        let env: config::Map<String, String> = env.into_iter().collect();
        let credentials_dir = env.get("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .source(Some(env)),
        );
        let mut settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| SettingsError::Invalid(e.to_string()))?;
        settings.credentials_dir = credentials_dir;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let api = &self.api;
        let url = reqwest::Url::parse(&api.base_url)
            .map_err(|e| key_error("api.base_url", format!("is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(key_error(
                "api.base_url",
                "must be an http(s) URL with a host",
            ));
        }
        positive(api.timeout, "api.timeout")?;
        positive(api.connect_timeout, "api.connect_timeout")?;
        if api.max_body_bytes < 1024 {
            return Err(key_error("api.max_body_bytes", "must be at least 1024"));
        }
        if !(api.requests_per_second.is_finite() && api.requests_per_second > 0.0) {
            return Err(key_error(
                "api.requests_per_second",
                "must be a positive number",
            ));
        }
        if api.concurrency == 0 || api.concurrency > 4096 {
            return Err(key_error("api.concurrency", "must be between 1 and 4096"));
        }
        let poll = &self.poll;
        positive(poll.interval, "poll.interval")?;
        positive(poll.lease, "poll.lease")?;
        positive(poll.idle_recheck, "poll.idle_recheck")?;
        positive(poll.overdue_interval, "poll.overdue_interval")?;
        positive(poll.auth_pause, "poll.auth_pause")?;
        if poll.max_interval < poll.interval {
            return Err(key_error(
                "poll.max_interval",
                "must not be shorter than poll.interval",
            ));
        }
        if poll.ready_divisor == 0 {
            return Err(key_error("poll.ready_divisor", "must be at least 1"));
        }
        if poll.fresh_divisor == 0 {
            return Err(key_error("poll.fresh_divisor", "must be at least 1"));
        }
        if poll.lease <= api.timeout {
            return Err(key_error("poll.lease", "must be longer than api.timeout"));
        }
        self.http.listen_addr()?;
        if self.database.path.as_os_str().is_empty() {
            return Err(key_error("database.path", "is required"));
        }
        Ok(())
    }

    /// Checks the credentials, which only commands that talk to the API need
    /// (the database commands work without them).
    pub fn validate_credentials(&self) -> Result<(), SettingsError> {
        if self.api.access_key.trim().is_empty() {
            return Err(key_error("api.access_key", "is required"));
        }
        self.signing_secret().map(drop)
    }

    /// Resolves and decodes the secret key: `api.secret_key`, else `api.secret_key_file`
    /// (also looked up in `$CREDENTIALS_DIRECTORY`), else the `secret_key` credential.
    pub fn signing_secret(&self) -> Result<SigningSecret, SettingsError> {
        let credentials = self.credentials_dir.as_deref();
        if let Some(secret) = &self.api.secret_key {
            return SigningSecret::from_base64(secret.expose_secret());
        }
        let path = match &self.api.secret_key_file {
            Some(path) if path.exists() => path.clone(),
            Some(path) => credentials
                .and_then(|dir| path.file_name().map(|name| dir.join(name)))
                .filter(|p| p.exists())
                .ok_or_else(|| {
                    key_error("api.secret_key_file", format!("{} does not exist", path.display()))
                })?,
            None => credentials
                .map(|dir| dir.join(CREDENTIAL_NAME))
                .filter(|p| p.exists())
                .ok_or_else(|| {
                    key_error(
                        "api.secret_key",
                        "is required (or api.secret_key_file, or a `secret_key` systemd credential)",
                    )
                })?,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            key_error(
                "api.secret_key_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        SigningSecret::from_base64(&text)
    }

    /// The effective settings as TOML, secret redacted (for `check-config`).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }
}

fn positive(value: Duration, key: &'static str) -> Result<(), SettingsError> {
    if value.is_zero() {
        return Err(key_error(key, "must be longer than zero"));
    }
    Ok(())
}

fn redact<S: Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_str("[REDACTED]"),
        None => s.serialize_none(),
    }
}

mod tz_serde {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(d)?;
        name.parse::<Tz>()
            .map_err(|_| serde::de::Error::custom(format!("unknown time zone {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "aXNzdWFuY2Utd2F0Y2hlci10ZXN0LXZlY3Rvci1zZWNyZXQtMzJiIQ==";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn with_credentials() -> Vec<(String, String)> {
        env(&[
            ("ISSUANCE_WATCHER__API__ACCESS_KEY", "ak"),
            ("ISSUANCE_WATCHER__API__SECRET_KEY", SECRET),
        ])
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_plus_credentials_are_enough() {
        let s = Settings::load_with_env(
            Some(Path::new("config/issuance-watcher.toml")),
            with_credentials(),
        )
        .unwrap();
        assert_eq!(s.api.base_url, "https://openapi.bunjang.co.kr");
        assert_eq!(s.api.timezone, chrono_tz::Asia::Seoul);
        assert_eq!(s.poll.interval, Duration::from_secs(2));
        assert_eq!(s.flags.due_soon_lead, Duration::from_secs(6 * 3600));
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "[poll]\ninterval = \"7s\"\n[database]\npath = \"/tmp/x.db\"\n",
        );
        let mut vars = with_credentials();
        vars.push(("ISSUANCE_WATCHER__POLL__INTERVAL".into(), "500ms".into()));
        let s = Settings::load_with_env(Some(&path), vars).unwrap();
        assert_eq!(s.poll.interval, Duration::from_millis(500));
        assert_eq!(s.database.path, PathBuf::from("/tmp/x.db"));
    }

    #[test]
    fn a_malformed_duration_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "[poll]\ninterval = \"soon\"\n");
        let err = Settings::load_with_env(Some(&path), with_credentials())
            .unwrap_err()
            .to_string();
        assert!(err.contains("poll.interval"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "[poll]\nintreval = \"5s\"\n");
        let err = Settings::load_with_env(Some(&path), with_credentials())
            .unwrap_err()
            .to_string();
        assert!(err.contains("intreval"), "{err}");
    }

    #[test]
    fn a_missing_access_key_names_its_key() {
        let settings =
            Settings::load_with_env(None, env(&[("ISSUANCE_WATCHER__API__SECRET_KEY", SECRET)]))
                .unwrap();
        let err = settings.validate_credentials().unwrap_err().to_string();
        assert!(err.contains("access_key"), "{err}");
    }

    #[test]
    fn a_secret_that_is_not_base64_is_refused_without_showing_it() {
        let vars = env(&[
            ("ISSUANCE_WATCHER__API__ACCESS_KEY", "ak"),
            ("ISSUANCE_WATCHER__API__SECRET_KEY", "not base64 at all!"),
        ]);
        let err = Settings::load_with_env(None, vars)
            .unwrap()
            .validate_credentials()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("api.secret_key") && !err.contains("not base64 at all"),
            "{err}"
        );
    }

    #[test]
    fn an_explicit_missing_file_is_an_error() {
        let err =
            Settings::load_with_env(Some(Path::new("/nonexistent/x.toml")), with_credentials())
                .unwrap_err();
        assert!(matches!(err, SettingsError::MissingFile(_)));
    }

    #[test]
    fn divisors_must_be_at_least_one() {
        for key in ["READY_DIVISOR", "FRESH_DIVISOR"] {
            let mut vars = with_credentials();
            vars.push((format!("ISSUANCE_WATCHER__POLL__{key}"), "0".into()));
            let err = Settings::load_with_env(None, vars).unwrap_err().to_string();
            assert!(
                err.contains(&format!("poll.{}", key.to_lowercase())),
                "{err}"
            );
        }
        let s = Settings::load_with_env(None, with_credentials()).unwrap();
        assert!(s.poll.fresh_divisor >= 1 && s.poll.ready_divisor >= 1);
    }

    #[test]
    fn a_bad_time_zone_is_refused() {
        let mut vars = with_credentials();
        vars.push((
            "ISSUANCE_WATCHER__API__TIMEZONE".into(),
            "Mars/Olympus".into(),
        ));
        let err = Settings::load_with_env(None, vars).unwrap_err().to_string();
        assert!(err.contains("Mars/Olympus"), "{err}");
    }

    #[test]
    fn the_secret_is_found_in_the_credentials_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret_key"), format!("{SECRET}\n")).unwrap();
        let credentials = dir.path().to_str().unwrap();
        let by_default_name = env(&[
            ("ISSUANCE_WATCHER__API__ACCESS_KEY", "ak"),
            ("CREDENTIALS_DIRECTORY", credentials),
        ]);
        let s = Settings::load_with_env(None, by_default_name).unwrap();
        assert_eq!(
            s.signing_secret().unwrap().expose(),
            b"issuance-watcher-test-vector-secret-32b!"
        );

        let by_configured_file = env(&[
            ("ISSUANCE_WATCHER__API__ACCESS_KEY", "ak"),
            (
                "ISSUANCE_WATCHER__API__SECRET_KEY_FILE",
                "/etc/issuance-watcher/secret_key",
            ),
            ("CREDENTIALS_DIRECTORY", credentials),
        ]);
        assert!(
            Settings::load_with_env(None, by_configured_file)
                .unwrap()
                .validate_credentials()
                .is_ok()
        );
    }

    #[test]
    fn rendered_settings_never_contain_the_secret() {
        let s = Settings::load_with_env(None, with_credentials()).unwrap();
        let text = s.to_redacted_toml();
        assert!(
            !text.contains(SECRET) && text.contains("[REDACTED]"),
            "{text}"
        );
        assert!(!format!("{s:?}").contains(SECRET));
    }
}
