//! Layering (defaults, file, environment) and validation, once, at load.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{SettingsError, key_error};
use super::sections::Settings;

/// The example configuration, which doubles as the built-in defaults.
pub const DEFAULTS_TOML: &str = include_str!("../../config/issuance-watcher.toml");
/// Where `--config` points when it is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/issuance-watcher/config.toml";
/// Environment variables starting with this (then `__SECTION__KEY`) override the file.
pub const ENV_PREFIX: &str = "ISSUANCE_WATCHER";

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
        super::webhooks::validate(&self.webhooks)?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::super::testing::{SECRET, with_credentials};
    use super::*;

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
        assert_eq!(
            s.flags.due_soon_lead.rungs(),
            [Duration::from_secs(6 * 3600)]
        );
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
