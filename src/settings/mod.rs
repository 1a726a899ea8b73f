//! Typed settings, layered: built-in defaults (the example file, compiled in),
//! then the TOML file, then `ISSUANCE_WATCHER__SECTION__KEY` environment variables.
//!
//! Loading validates everything once, so the rest of the program holds values
//! that are known good (a parsed URL, a time zone, a decoded secret) and no call
//! site assembles raw fields.
//!
//! The parts, each using only the ones before it: `error` (what a bad setting
//! says), `schema` (every key, what it accepts and its range, in one table,
//! and the parser of each kind; checked on the merged layers so that every
//! problem is reported at once), `webhooks` (the typed `[[webhooks]]` sinks),
//! `webhook_parse` (the sinks parsed from the merged layers by the schema's
//! table and parsers, their problems in the same list), `sections` (the typed
//! tree, one struct per TOML table), `load` (layering and validation) and
//! `secret` (finding and decoding the signing key, which only the commands that
//! talk to the API need), `postgres` (the database engine: SQLite at
//! `database.path` or PostgreSQL at `database.url`, its password file read). `ladder` (the due-soon lead ladder), `cadence` (the
//! quiet hours of the READY cadence) and `charge` (`[charge]`, `[balance]`, `[top_up]`) are
//! leaves that `sections` uses; `key_bytes` (a decoded, redacted key) is the
//! leaf under `secret` and `webhook_secret` (a sink's key), and `secret_file`
//! (finding a secret file, also among systemd credentials, and reading it
//! without hanging) the one under `secret` and `webhooks`; `userinfo` (no
//! `user:password@` in a URL setting) is the leaf under `schema` and `webhooks`.

mod admin_token;
mod cadence;
mod charge;
mod database;
mod error;
mod key_bytes;
mod ladder;
mod load;
mod postgres;
mod schema;
mod secret;
mod secret_file;
mod sections;
#[cfg(test)]
mod testing;
mod userinfo;
mod webhook_parse;
mod webhook_secret;
mod webhooks;

pub use admin_token::{AdminToken, MIN_ADMIN_TOKEN_CHARS};
pub use cadence::QuietHours;
pub use charge::{BalanceSettings, ChargeSettings, TopUpSettings, round_up};
pub use error::{Problem, SettingsError};
pub use ladder::LeadLadder;
pub use load::{DEFAULT_CONFIG_PATH, DEFAULTS_TOML, ENV_PREFIX};
pub use postgres::PostgresTarget;
pub use secret::{CREDENTIAL_NAME, SecretSource, SigningSecret};
pub use sections::{
    ApiSettings, DatabaseSettings, FlagSettings, HttpSettings, LogFormat, LogSettings,
    PollSettings, Settings,
};
pub use webhook_secret::WebhookSecret;
pub use webhooks::{
    DEFAULT_ATTEMPTS_RETENTION, Previous, PreviousSecret, Signing, SinkKind, SinkSecret,
    WebhookSettings,
};
