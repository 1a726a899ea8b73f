//! One way to configure the daemon in tests: [`TestSettings`] holds a typed
//! [`Settings`], edited with closures, and produces it either in-process
//! ([`TestSettings::build`]) or as a TOML file for a child process
//! ([`TestSettings::write_toml`]).
//!
//! Both go through the daemon's own loader (defaults, then the file, then
//! `ISSUANCE_WATCHER__…` variables), so an in-process test runs with exactly
//! the settings a child process would read. `Settings` serialises its secret
//! redacted; the TOML written here puts the real Base64 text back, because the
//! file is the daemon's only source of it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use issuance_watcher::settings::{Settings, SinkKind, SinkSecret};
use secrecy::{ExposeSecret, SecretString};

/// The test secret, as issued: Base64 text (its decoded bytes sign tokens).
pub const SECRET_B64: &str = "aXNzdWFuY2Utd2F0Y2hlci10ZXN0LXZlY3Rvci1zZWNyZXQtMzJiIQ==";
/// The access key [`TestSettings::new`] configures.
pub const ACCESS_KEY: &str = "test-access-key";

/// The bytes a Base64 secret stands for.
pub fn decoded_secret(base64_text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(base64_text)
        .expect("test secrets are Base64")
}

/// Daemon settings under construction.
#[derive(Debug, Clone)]
pub struct TestSettings {
    settings: Settings,
}

impl TestSettings {
    /// The shipped defaults with only the API, the database and credentials set:
    /// for suites that want the production pacing except where they say otherwise.
    pub fn shipped(base_url: &str, db: &Path) -> Self {
        let mut settings =
            Settings::load_with_env(None, Vec::new()).expect("the shipped defaults load");
        settings.api.base_url = base_url.to_owned();
        settings.database = match super::engine::postgres_url() {
            Some(url) => issuance_watcher::settings::DatabaseSettings::postgres_at(&url)
                .expect("the test database's URL is valid"),
            None => issuance_watcher::settings::DatabaseSettings::sqlite(db.to_owned()),
        };
        Self { settings }.credentials(ACCESS_KEY, SECRET_B64)
    }

    /// Fast intervals for loopback tests (tens of milliseconds, pauses of a
    /// second or two) against `base_url`, the database at `db`, the test credentials.
    pub fn new(base_url: &str, db: &Path) -> Self {
        let ms = Duration::from_millis;
        Self::shipped(base_url, db).with(|s| {
            s.api.timeout = ms(2000);
            s.api.requests_per_second = 500.0;
            let p = &mut s.poll;
            p.interval = ms(50);
            p.max_interval = ms(400);
            p.backoff_max = ms(200);
            p.overdue_interval = ms(200);
            p.after_due_delay = ms(50);
            p.startup_spread = ms(100);
            p.idle_recheck = ms(100);
            p.lease = ms(5000);
            p.auth_pause = ms(1000);
            p.auth_pause_max = ms(2000);
            p.not_found_grace = ms(1000);
        })
    }

    /// Any change to the settings: `.with(|s| s.poll.lease = Duration::from_secs(3))`.
    pub fn with(mut self, edit: impl FnOnce(&mut Settings)) -> Self {
        edit(&mut self.settings);
        self
    }

    pub fn credentials(self, access_key: &str, secret_base64: &str) -> Self {
        self.with(|s| {
            s.api.access_key = access_key.to_owned();
            s.api.secret_key = Some(SecretString::from(secret_base64.to_owned()));
        })
    }

    /// The settings as the daemon would load them from [`Self::to_toml`]
    /// (validated), with `env` (`ISSUANCE_WATCHER__…` pairs) layered on top.
    pub fn build_with_env(&self, env: &[(&str, &str)]) -> Settings {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), self.to_toml()).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::load_with_env(Some(file.path()), env).expect("test settings are valid")
    }

    pub fn build(&self) -> Settings {
        self.build_with_env(&[])
    }

    /// The whole configuration as TOML, secret included (not validated, so a
    /// test can write a broken value on purpose).
    pub fn to_toml(&self) -> String {
        let mut value = toml::Value::try_from(&self.settings).expect("settings serialise");
        if let Some(secret) = &self.settings.api.secret_key {
            value["api"]
                .as_table_mut()
                .expect("an [api] table")
                .insert("secret_key".into(), secret.expose_secret().into());
        }
        // The sinks render their secrets and Slack URLs redacted too.
        if let Some(list) = value.get_mut("webhooks").and_then(|v| v.as_array_mut()) {
            for (entry, sink) in list.iter_mut().zip(&self.settings.webhooks) {
                let table = entry.as_table_mut().expect("a [[webhooks]] table");
                table.insert("url".into(), sink.url.to_string().into());
                let whsec = |secret: &issuance_watcher::settings::WebhookSecret| {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(secret.expose());
                    toml::Value::from(format!("whsec_{encoded}"))
                };
                if let SinkKind::Standard { secret, previous } = &sink.kind {
                    if let SinkSecret::Inline(secret) = secret {
                        table.insert("secret".into(), whsec(secret));
                    }
                    if let Some(SinkSecret::Inline(previous)) = previous.as_ref().map(|p| &p.secret)
                    {
                        table.insert("previous_secret".into(), whsec(previous));
                    }
                }
            }
        }
        toml::to_string(&value).expect("settings render as TOML")
    }

    /// Adds a signed `[[webhooks]]` sink named `name` posting to `url`, with
    /// retries quick enough for tests; `edit` changes anything else.
    pub fn webhook(
        self,
        name: &str,
        url: &str,
        edit: impl FnOnce(&mut issuance_watcher::settings::WebhookSettings),
    ) -> Self {
        let mut sink: issuance_watcher::settings::WebhookSettings = toml::from_str(&format!(
            "name = {name:?}\nurl = {url:?}\nsecret = {:?}\nbackoff_first = \"100ms\"\nbackoff_max = \"1s\"\ntimeout = \"2s\"\nunhealthy_after = \"1s\"\n",
            super::receiver::WEBHOOK_SECRET
        ))
        .expect("a valid sink");
        edit(&mut sink);
        self.with(|s| s.webhooks.push(sink))
    }

    /// Writes [`Self::to_toml`] to `path` and returns the path.
    pub fn write_toml(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.to_toml()).unwrap();
        path.to_owned()
    }
}

/// Settings for in-process tests: the given API, `dir/watcher.db`, fast intervals.
/// `overrides` are extra `ISSUANCE_WATCHER__...` variables (later wins).
pub fn settings(base_url: &str, dir: &Path, overrides: &[(&str, &str)]) -> Settings {
    TestSettings::new(base_url, &dir.join("watcher.db")).build_with_env(overrides)
}
