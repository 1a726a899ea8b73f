//! Layering (defaults, file, environment) and validation, once, at load.

use std::path::{Path, PathBuf};

use super::error::{Problem, SettingsError};
use super::schema::{self, human, sink};
use super::sections::Settings;
use super::webhook_parse;

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
        let config = builder
            .build()
            .map_err(|e| SettingsError::Invalid(e.to_string()))?;
        // Every key checked against the schema first, the `[[webhooks]]`
        // entries parsed beside them, so that all problems are reported
        // together, each with its key path and where it was set.
        let mut root =
            config::Source::collect(&config).map_err(|e| SettingsError::Invalid(e.to_string()))?;
        let (webhooks, sink_problems) = webhook_parse::parse(root.get(sink::LIST), ENV_PREFIX);
        let mut problems = schema::check(&root, ENV_PREFIX);
        problems.extend(sink_problems);
        if !problems.is_empty() {
            return Err(SettingsError::Problems(problems));
        }
        let secret_origin = schema::origin_of(&root, "api", "secret_key", ENV_PREFIX);
        let origins = root.clone();
        root.remove(sink::LIST);
        let mut settings: Settings = config::Value::new(None, config::ValueKind::Table(root))
            .try_deserialize()
            .map_err(|e| SettingsError::Invalid(e.to_string()))?;
        settings.webhooks = webhooks;
        settings.credentials_dir = credentials_dir;
        settings.secret_origin = secret_origin;
        let engine = settings.database.resolve_engine(
            &origins,
            settings.credentials_dir.as_deref(),
            ENV_PREFIX,
        );
        match (engine.is_empty(), settings.validate(&origins)) {
            (true, rules) => rules?,
            (false, Ok(())) => return Err(SettingsError::Problems(engine)),
            (false, Err(rules)) => return Err(SettingsError::Problems(engine).and(rules)),
        }
        Ok(settings)
    }

    /// What the schema cannot see: rules between keys, and the listen address.
    /// Every broken rule is reported, not just the first, with where the key
    /// it names was set (`root`: the merged layers).
    fn validate(&self, root: &config::Map<String, config::Value>) -> Result<(), SettingsError> {
        let (api, poll) = (&self.api, &self.poll);
        let mut problems = Vec::new();
        let mut rule = |broken: bool, key: &str, reason: String| {
            if broken {
                let (section, name) = key.split_once('.').unwrap_or((key, ""));
                let origin = schema::origin_of(root, section, name, ENV_PREFIX);
                problems.push(Problem::new(key.to_owned(), reason, origin.as_deref()));
            }
        };
        rule(
            poll.max_interval < poll.interval,
            "poll.max_interval",
            format!(
                "must not be shorter than poll.interval ({})",
                human(poll.interval)
            ),
        );
        rule(
            poll.auth_pause_max < poll.auth_pause,
            "poll.auth_pause_max",
            format!(
                "must not be shorter than poll.auth_pause ({})",
                human(poll.auth_pause)
            ),
        );
        rule(
            poll.lease <= api.timeout,
            "poll.lease",
            format!(
                "must be longer than api.timeout ({}): a lease shorter than a poll lets another daemon poll the same issuance",
                human(api.timeout)
            ),
        );
        let top_up = &self.top_up;
        if top_up.enabled() {
            rule(
                self.balance.interval.is_none(),
                "top_up.below",
                "the top-up rule needs balance.interval: it acts on polled balances".to_owned(),
            );
            rule(
                top_up.to <= top_up.below,
                "top_up.to",
                format!(
                    "must be above top_up.below ({}): the charge brings the balance back to it",
                    top_up.below
                ),
            );
            rule(
                top_up.largest_amount() > self.charge.max_amount,
                "top_up.to",
                format!(
                    "a charge from a balance of 0 would be {} KRW, above charge.max_amount ({}): it would be refused unsent",
                    top_up.largest_amount(),
                    self.charge.max_amount
                ),
            );
        }
        if let Err(SettingsError::Key { key, reason }) = self.http.listen_addr() {
            rule(true, key, reason);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError::Problems(problems))
        }
    }

    /// The effective settings as TOML, secret redacted (for `check-config`).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::{SECRET, with_credentials};
    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Loads `text` as the config file (with credentials) and returns the error it must cause.
    fn load_error(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, text);
        Settings::load_with_env(Some(&path), with_credentials())
            .unwrap_err()
            .to_string()
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
        let err = load_error("[poll]\ninterval = \"soon\"\n");
        assert!(err.contains("poll.interval"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let err = load_error("[poll]\nintreval = \"5s\"\n");
        assert!(err.contains("intreval"), "{err}");
    }

    #[test]
    fn a_broken_sink_and_a_broken_poll_key_are_one_list_with_origins() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "[poll]\ninterval = \"soon\"\n[[webhooks]]\nurl = \"ftp://x/\"\nevents = [\"nope\"]\nsecret_file = \"/s\"\n",
        );
        let mut vars = with_credentials();
        vars.push(("ISSUANCE_WATCHER__POLL__MAX_INTERVAL".into(), "0s".into()));
        let Err(SettingsError::Problems(problems)) = Settings::load_with_env(Some(&path), vars)
        else {
            panic!("refused with problems");
        };
        let file = path.display().to_string();
        let found: Vec<(&str, Option<&str>)> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.origin.as_deref()))
            .collect();
        assert_eq!(
            found,
            [
                ("poll.interval", Some(file.as_str())),
                (
                    "poll.max_interval",
                    Some("the environment: ISSUANCE_WATCHER__POLL__MAX_INTERVAL")
                ),
                ("webhooks[0].url", Some(file.as_str())),
                ("webhooks[0].events", Some(file.as_str())),
            ],
            "{problems:?}"
        );
    }

    #[test]
    fn a_sinks_secret_file_is_not_read_at_load() {
        // Commands that do not deliver work without the sinks' secret files.
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "[[webhooks]]\nurl = \"https://x/\"\nsecret_file = \"/nonexistent/secret\"\n",
        );
        let s = Settings::load_with_env(Some(&path), with_credentials()).unwrap();
        let problem = s.webhooks[0].signing(0, None).unwrap_err();
        assert_eq!(problem.key, "webhooks[0].secret_file");
        assert_eq!(
            problem.origin.as_deref(),
            Some(path.display().to_string().as_str())
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
    fn rendered_settings_never_contain_the_secret() {
        let s = Settings::load_with_env(None, with_credentials()).unwrap();
        let text = s.to_redacted_toml();
        assert!(
            !text.contains(SECRET) && text.contains("[REDACTED]"),
            "{text}"
        );
        assert!(!format!("{s:?}").contains(SECRET));
    }

    #[test]
    fn a_top_up_rule_needs_the_balance_poll_a_target_above_it_and_fits_max_amount() {
        let err =
            load_error("[top_up]\nbelow = 500000\nto = 500000\n[charge]\nmax_amount = 400000\n");
        for said in [
            "top_up.below",
            "needs balance.interval",
            "must be above top_up.below (500000)",
            "a charge from a balance of 0 would be 500000 KRW, above charge.max_amount (400000)",
        ] {
            assert!(err.contains(said), "{said:?} not in {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "[balance]\ninterval = \"10m\"\n[top_up]\nbelow = 500000\nto = 3000000\nstep = 10000\n",
        );
        let s = Settings::load_with_env(Some(&path), with_credentials()).unwrap();
        let said = s.top_up.describe(s.balance.interval);
        assert!(
            said.starts_with("when a balance polled every 10m is below 500000 KRW, ask for one charge that brings it back to 3000000 KRW"),
            "{said}"
        );
        assert!(
            said.contains("at most 2 a KST day and 20000000 KRW a KST month"),
            "{said}"
        );
        let off = Settings::load_with_env(None, with_credentials()).unwrap();
        assert_eq!(off.top_up.describe(None), "off (top_up.below = 0)");
    }
}
