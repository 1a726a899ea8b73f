//! The typed settings tree: one struct per TOML table, unknown keys refused,
//! the secret redacted whenever the tree is rendered.

use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};

use super::cadence::QuietHours;
use super::charge::{BalanceSettings, ChargeSettings, TopUpSettings};
use super::error::{SettingsError, key_error};
use super::ladder::LeadLadder;
use super::postgres::PostgresTarget;
use super::webhooks::WebhookSettings;

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
    #[serde(default)]
    pub charge: ChargeSettings,
    #[serde(default)]
    pub balance: BalanceSettings,
    /// `[top_up]`: the rule that asks for a charge when the balance is low.
    #[serde(default)]
    pub top_up: TopUpSettings,
    /// `[[webhooks]]`: where events are delivered (none by default).
    #[serde(default)]
    pub webhooks: Vec<WebhookSettings>,
    /// `$CREDENTIALS_DIRECTORY` at load time (systemd `LoadCredential=`).
    #[serde(skip)]
    pub credentials_dir: Option<PathBuf>,
    /// Where `api.secret_key` was set (a file, `the environment: VAR`), if it was.
    #[serde(skip)]
    pub secret_origin: Option<String>,
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

/// `[database]`: SQLite at `path`, or PostgreSQL when `url` is set
/// ([`DatabaseSettings::postgres`]; the engine is chosen in `postgres`).
/// Built by loading, or by [`DatabaseSettings::sqlite`] and
/// [`DatabaseSettings::postgres_at`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// SQLite's file. With PostgreSQL it holds the built-in default, unused.
    pub path: PathBuf,
    /// SQLite only: how long a statement waits for another program's lock.
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
    /// SQLite only: warn once when the write-ahead log grows past this many bytes (0: never).
    pub wal_warn_bytes: u64,
    /// `database.url` as set (no password: the schema refuses one).
    #[serde(default)]
    pub(super) url: Option<String>,
    /// `database.password_file` as set.
    #[serde(default)]
    pub(super) password_file: Option<PathBuf>,
    /// The engine, resolved from `url` and `password_file` at load.
    #[serde(skip)]
    pub(super) postgres: Option<PostgresTarget>,
}

/// The keys of the engine in use, so that `check-config`'s output, read
/// back as a configuration file, chooses the same engine (`path` and `url`
/// together would be refused).
impl Serialize for DatabaseSettings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut t = s.serialize_struct("DatabaseSettings", 4)?;
        match &self.postgres {
            Some(pg) => {
                t.serialize_field("url", &pg.shown())?;
                if let Some(file) = &self.password_file {
                    t.serialize_field("password_file", file)?;
                }
            }
            None => t.serialize_field("path", &self.path)?,
        }
        let busy_timeout = humantime::format_duration(self.busy_timeout).to_string();
        t.serialize_field("busy_timeout", &busy_timeout)?;
        t.serialize_field("wal_warn_bytes", &self.wal_warn_bytes)?;
        t.end()
    }
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
    /// READY cadence outside the quiet hours (see `settings/cadence.rs`).
    #[serde(with = "humantime_serde")]
    pub ready_interval: Duration,
    pub quiet_hours: QuietHours,
    #[serde(with = "humantime_serde")]
    pub quiet_interval: Duration,
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
    /// One lead or a ladder of them (`["24h", "3h", "30m"]`).
    pub due_soon_lead: LeadLadder,
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

/// The optional HTTP listener for `/healthz`, `/metrics` and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// `host:port` to listen on; empty (the default) keeps the listener off.
    #[serde(default)]
    pub listen: String,
    /// A file holding the dashboard's admin token (see `admin_token.rs`);
    /// unset: the dashboard is read-only.
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
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
