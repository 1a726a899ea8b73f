//! The database engine: SQLite at `database.path` (the default), or
//! PostgreSQL when `database.url` is set. Exactly one: a configuration that
//! sets both (`path` anywhere but the built-in defaults) is refused.
//!
//! The password never sits in the URL (the schema refuses one there). It
//! comes from `database.password_file` (found like every secret file, also in
//! `$CREDENTIALS_DIRECTORY`), read once at load and held as a secret that is
//! zeroed when dropped; without that key, from libpq's environment as sqlx
//! reads it when [`PostgresTarget::connect_options`] is called: `PGPASSWORD`,
//! else the first matching line of the file `PGPASSFILE` names, else of
//! `~/.pgpass` (sqlx-postgres 0.9 `PgConnectOptions::new_without_pgpass` and
//! `apply_pgpass`). The other `PG*` variables (`PGHOST`, `PGPORT`, `PGUSER`,
//! `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`, ...) fill in what the URL
//! leaves out, as with libpq. A leaf; `database.rs` chooses the engine with it.

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;

use super::schema;
use super::secret_file::Located;

/// Where PostgreSQL is and how to log in: a URL without a password, and the
/// password from `database.password_file` if one is set. `Debug` shows the
/// URL and where the password came from, never the password.
#[derive(Clone)]
pub struct PostgresTarget {
    /// Checked by the schema: a `postgres://` URL sqlx parses, no password.
    url: reqwest::Url,
    /// From `database.password_file`, read at load (`database.rs`).
    pub(super) password: Option<(SecretString, Located)>,
}

impl PostgresTarget {
    /// `url` as the schema accepts it (`database.url`), no password yet.
    pub(super) fn parse(url: &str) -> Result<Self, String> {
        let url = schema::database_url(&config::ValueKind::String(url.to_owned()))?;
        Ok(Self {
            url,
            password: None,
        })
    }

    /// Options to connect with: host, port, user, database, `sslmode` and the
    /// other parameters as the URL says (libpq's `PG*` variables for what it
    /// leaves out), and the password from `database.password_file` if set,
    /// else `PGPASSWORD`, `PGPASSFILE` or `~/.pgpass` as sqlx reads them now.
    /// Never log these options: their `Debug` shows the password.
    pub fn connect_options(&self) -> PgConnectOptions {
        let options = match self.url.as_str().parse::<PgConnectOptions>() {
            Ok(options) => options,
            // Unreachable: the same text parsed at load, and parsing reads no
            // state that could change since. Connecting with only the
            // environment's settings would then fail to log in, not leak.
            Err(_) => PgConnectOptions::new(),
        };
        match &self.password {
            Some((password, _)) => options.password(password.expose_secret()),
            None => options,
        }
    }

    /// The URL as shown to people, never with a password:
    /// `postgres://watcher@db.example:5432/watch?sslmode=require`.
    pub fn shown(&self) -> String {
        let mut url = self.url.clone();
        // The schema refused a password; cleared again so that no future
        // path to a password here can show it.
        let _ = url.set_password(None);
        url.to_string()
    }

    /// Where the password comes from, for `check-config` (never the password).
    pub fn password_source(&self) -> String {
        match &self.password {
            Some((_, Located::Path(path))) => {
                format!("the file {} (database.password_file)", path.display())
            }
            Some((_, Located::Credential(path))) => format!(
                "the systemd credential {} ($CREDENTIALS_DIRECTORY, database.password_file)",
                path.display()
            ),
            None => "PGPASSWORD, PGPASSFILE or ~/.pgpass if any".to_owned(),
        }
    }
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("url", &self.shown())
            .field(
                "password",
                &self
                    .password
                    .as_ref()
                    .map(|(_, located)| format!("[REDACTED] from {}", located.path().display())),
            )
            .finish()
    }
}
