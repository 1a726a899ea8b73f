//! Which database engine the settings choose, and where: SQLite at
//! `database.path` (the default), or PostgreSQL when `database.url` is set
//! ([`PostgresTarget`]). Exactly one: a configuration that sets both (`path`
//! anywhere but the built-in defaults) is refused. Over `sections`,
//! `postgres`, `schema` and `secret_file`; `load` uses it.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use super::error::{Problem, SettingsError, key_error};
use super::postgres::PostgresTarget;
use super::schema;
use super::secret_file::{self, Located};
use super::sections::DatabaseSettings;

impl DatabaseSettings {
    /// Some when `database.url` selects PostgreSQL; None: SQLite at `path`.
    /// (`path` then still holds its built-in default: do not open it.)
    pub fn postgres(&self) -> Option<&PostgresTarget> {
        self.postgres.as_ref()
    }

    /// SQLite at `path`, for tests and tools: `busy_timeout` 5 s, the WAL
    /// warning off (both fields can be changed after).
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            busy_timeout: std::time::Duration::from_secs(5),
            wal_warn_bytes: 0,
            url: None,
            password_file: None,
            postgres: None,
        }
    }

    /// PostgreSQL at `url`, checked like `database.url`, its password from
    /// libpq's environment (`PGPASSWORD`, `PGPASSFILE`), for tests and tools.
    /// `path` is empty.
    pub fn postgres_at(url: &str) -> Result<Self, SettingsError> {
        let target =
            PostgresTarget::parse(url).map_err(|reason| key_error("database.url", reason))?;
        Ok(Self {
            url: Some(target.shown()),
            postgres: Some(target),
            ..Self::sqlite(PathBuf::new())
        })
    }

    /// Where the database is, as shown to people: the SQLite file's path or
    /// the server's URL (never a password).
    pub fn shown(&self) -> String {
        match self.postgres() {
            Some(target) => target.shown(),
            None => self.path.display().to_string(),
        }
    }

    /// "SQLite at PATH" or "PostgreSQL at URL (password from ...)": which
    /// engine and where, for `check-config` and the logs.
    pub fn engine_shown(&self) -> String {
        match &self.postgres {
            Some(pg) => format!(
                "PostgreSQL at {}, password from {} (not shown)",
                pg.shown(),
                pg.password_source()
            ),
            None => format!("SQLite at {}", self.path.display()),
        }
    }

    /// Resolves the engine after load: `database.url` (checked by the schema)
    /// into a [`PostgresTarget`], its password file read; both engines set,
    /// or a password file without a URL, refused. `root`: the merged layers,
    /// for where each key was set.
    pub(super) fn resolve_engine(
        &mut self,
        root: &config::Map<String, config::Value>,
        credentials: Option<&Path>,
        env_prefix: &str,
    ) -> Vec<Problem> {
        let origin = |name: &str| schema::origin_of(root, "database", name, env_prefix);
        let problem = |name: &str, reason: String| {
            Problem::new(format!("database.{name}"), reason, origin(name).as_deref())
        };
        let Some(url) = self.url.as_deref() else {
            return match &self.password_file {
                Some(_) => vec![problem(
                    "password_file",
                    "applies only to PostgreSQL: set database.url too, or remove it".to_owned(),
                )],
                None => Vec::new(),
            };
        };
        // `path` has a built-in default; only a `path` set by the user (in a
        // file or the environment) competes with `url`.
        if let Some(path_origin) = origin("path") {
            return vec![problem(
                "url",
                format!(
                    "and database.path ({}) are both set: set one, database.url for PostgreSQL \
                     or database.path for SQLite",
                    shown_origin(&path_origin)
                ),
            )];
        }
        let mut target = match PostgresTarget::parse(url) {
            Ok(target) => target,
            Err(reason) => return vec![problem("url", reason)],
        };
        if let Some(configured) = &self.password_file {
            match read_password(configured, credentials) {
                Ok(password) => target.password = Some(password),
                Err(reason) => return vec![problem("password_file", reason)],
            }
        }
        self.postgres = Some(target);
        Vec::new()
    }
}

/// `in FILE` or `from the environment: VAR`, as a problem says it.
fn shown_origin(origin: &str) -> String {
    if origin.starts_with("the environment") {
        format!("from {origin}")
    } else {
        format!("in {origin}")
    }
}

/// The password in the file `configured` names (also a systemd credential),
/// without its line ending. Errors never contain it.
fn read_password(
    configured: &Path,
    credentials: Option<&Path>,
) -> Result<(SecretString, Located), String> {
    let located = secret_file::locate(configured, credentials)?;
    let text = SecretString::from(secret_file::read(&located)?);
    let password = text.expose_secret().trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(format!("{} is empty", located.path().display()));
    }
    if password.contains(['\n', '\r']) {
        return Err(format!(
            "{} holds more than one line: put only the password in it (the content is not shown)",
            located.path().display()
        ));
    }
    Ok((SecretString::from(password.to_owned()), located))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use sqlx::postgres::PgSslMode;

    use super::super::Settings;
    use super::super::testing::with_credentials;
    use super::*;

    const URL_VAR: &str = "ISSUANCE_WATCHER__DATABASE__URL";
    const PASSWORD: &str = "hunter2-not-for-your-eyes";

    fn load(file: Option<&str>, vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let path = file.map(|text| {
            let path = dir.path().join("config.toml");
            std::fs::write(&path, text).unwrap();
            path
        });
        let mut env = with_credentials();
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Settings::load_with_env(path.as_deref(), env)
    }

    fn error(file: Option<&str>, vars: &[(&str, &str)]) -> String {
        load(file, vars).unwrap_err().to_string()
    }

    /// The password as sqlx would send it (`PgConnectOptions` has no getter;
    /// its `Debug` shows it, which is why it is never logged).
    fn password_sent(options: &sqlx::postgres::PgConnectOptions) -> Option<String> {
        let debug = format!("{options:?}");
        let start = debug.find("password: Some(\"")? + "password: Some(\"".len();
        Some(debug[start..][..debug[start..].find('"')?].to_owned())
    }

    #[test]
    fn the_default_is_sqlite_at_path() {
        let s = load(None, &[]).unwrap();
        assert!(s.database.postgres().is_none());
        assert_eq!(
            s.database.engine_shown(),
            "SQLite at /var/lib/issuance-watcher/watcher.db"
        );
    }

    #[test]
    fn the_environment_variable_selects_postgres_with_its_sslmode() {
        let url = "postgres://watcher@db.example:5432/watch?sslmode=require";
        let s = load(None, &[(URL_VAR, url)]).unwrap();
        let pg = s.database.postgres().expect("PostgreSQL selected");
        assert_eq!(pg.shown(), url);
        let options = pg.connect_options();
        assert_eq!(options.get_host(), "db.example");
        assert_eq!(options.get_port(), 5432);
        assert_eq!(options.get_username(), "watcher");
        assert_eq!(options.get_database(), Some("watch"));
        assert!(matches!(options.get_ssl_mode(), PgSslMode::Require));
        assert!(
            s.database.engine_shown().starts_with(&format!(
                "PostgreSQL at {url}, password from PGPASSWORD, PGPASSFILE or ~/.pgpass"
            )),
            "{}",
            s.database.engine_shown()
        );
        // `check-config`'s TOML, read back, chooses the same engine.
        let rendered = s.to_redacted_toml();
        assert!(
            rendered.contains(&format!("url = \"{url}\"")) && !rendered.contains("path ="),
            "{rendered}"
        );
        let again = load(Some(&rendered), &[]).unwrap();
        assert_eq!(again.database.postgres().unwrap().shown(), url);
    }

    #[test]
    fn path_and_url_both_set_are_refused_naming_both() {
        let url = "postgres://watcher@db.example/watch";
        let err = error(
            Some("[database]\npath = \"/srv/w.db\"\n"),
            &[(URL_VAR, url)],
        );
        assert!(
            err.contains(&format!("`database.url` (from the environment: {URL_VAR})"))
                && err.contains("database.path (in ")
                && err.contains("both set"),
            "{err}"
        );
        // Both from the environment, as the template unit sets the path.
        let err = error(
            None,
            &[
                (URL_VAR, url),
                ("ISSUANCE_WATCHER__DATABASE__PATH", "/srv/w.db"),
            ],
        );
        assert!(
            err.contains("database.path (from the environment: ISSUANCE_WATCHER__DATABASE__PATH)"),
            "{err}"
        );
        // The built-in default path does not count as set.
        assert!(load(Some(&format!("[database]\nurl = {url:?}\n")), &[]).is_ok());
    }

    #[test]
    fn a_malformed_url_or_another_scheme_is_refused_naming_the_key() {
        for (bad, expected) in [
            ("not a url", "is not a URL"),
            (
                "postgres://watcher@db.example:notaport/watch",
                "is not a URL",
            ),
            (
                "mysql://watcher@db.example/watch",
                "\"mysql\" is not PostgreSQL's scheme",
            ),
            (
                "sqlite:///var/lib/w.db",
                "\"sqlite\" is not PostgreSQL's scheme",
            ),
            (
                "postgres://db.example/watch?sslmode=sometimes",
                "sqlx can connect with",
            ),
            (
                "postgres://db.example/watch?sslmod=require",
                "unknown connect parameter \"sslmod\"",
            ),
        ] {
            let err = error(None, &[(URL_VAR, bad)]);
            assert!(
                err.contains(&format!("`database.url` (from the environment: {URL_VAR})"))
                    && err.contains(expected),
                "{bad}: {err}"
            );
        }
        let err = error(Some("[database]\nurl = 5432\n"), &[]);
        assert!(err.contains("`database.url` (in "), "{err}");
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_showing_it() {
        for bad in [
            format!("postgres://watcher:{PASSWORD}@db.example/watch"),
            format!("postgres://watcher@db.example/watch?password={PASSWORD}"),
            format!("mysql://watcher:{PASSWORD}@db.example/watch"),
            format!("postgres://watcher:{PASSWORD}@db.example:nope/watch"),
            format!("postgres://db.example/watch?pasword={PASSWORD}"),
        ] {
            let err = error(None, &[(URL_VAR, &bad)]);
            assert!(err.contains("`database.url`"), "{err}");
            assert!(!err.contains(PASSWORD), "{bad}: {err}");
        }
        for (bad, where_) in [
            (
                format!("postgres://watcher:{PASSWORD}@db.example/watch"),
                "user",
            ),
            (
                format!("postgres://db.example/w?sslmode=require&password={PASSWORD}"),
                "query",
            ),
        ] {
            let err = error(None, &[(URL_VAR, &bad)]);
            assert!(err.contains("must not carry a password"), "{where_}: {err}");
        }
        assert!(DatabaseSettings::postgres_at(&format!("postgres://u:{PASSWORD}@h/d")).is_err());
    }

    #[test]
    fn the_password_file_is_read_also_from_the_credentials_directory() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials");
        std::fs::create_dir(&credentials).unwrap();
        let at_path = dir.path().join("db-password");
        std::fs::write(&at_path, "at the path\n").unwrap();
        let url = "postgres://watcher@db.example/watch";
        let file = |path: &Path| {
            format!(
                "[database]\nurl = {url:?}\npassword_file = {:?}\n",
                path.display().to_string()
            )
        };

        let s = load(Some(&file(&at_path)), &[]).unwrap();
        let pg = s.database.postgres().unwrap();
        assert_eq!(
            password_sent(&pg.connect_options()).as_deref(),
            Some("at the path")
        );
        assert_eq!(
            pg.password_source(),
            format!("the file {} (database.password_file)", at_path.display())
        );

        // A credential of the same file name wins (systemd LoadCredential=).
        std::fs::write(credentials.join("db-password"), format!("{PASSWORD}\r\n")).unwrap();
        let credentials_dir = credentials.to_str().unwrap();
        let s = load(
            Some(&file(Path::new("/etc/issuance-watcher/db-password"))),
            &[("CREDENTIALS_DIRECTORY", credentials_dir)],
        )
        .unwrap();
        let pg = s.database.postgres().unwrap();
        assert_eq!(
            password_sent(&pg.connect_options()).as_deref(),
            Some(PASSWORD)
        );
        assert!(
            pg.password_source().contains("systemd credential"),
            "{}",
            pg.password_source()
        );
        // Never shown: not in Debug, the rendered TOML, the engine line, the URL.
        for shown in [
            format!("{s:?}"),
            format!("{pg:?}"),
            s.to_redacted_toml(),
            s.database.engine_shown(),
            pg.shown(),
        ] {
            assert!(!shown.contains(PASSWORD), "{shown}");
        }
        assert!(format!("{pg:?}").contains("[REDACTED]"), "{pg:?}");
    }

    #[test]
    fn a_password_file_that_is_missing_empty_or_alone_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let two_lines = dir.path().join("two");
        std::fs::write(&two_lines, format!("{PASSWORD}\nmore\n")).unwrap();
        let url = "postgres://watcher@db.example/watch";
        for (path, expected) in [
            (PathBuf::from("/nonexistent/db-password"), "does not exist"),
            (empty, "is empty"),
            (two_lines, "more than one line"),
        ] {
            let text = format!(
                "[database]\nurl = {url:?}\npassword_file = {:?}\n",
                path.display().to_string()
            );
            let err = error(Some(&text), &[]);
            assert!(
                err.contains("`database.password_file` (in ") && err.contains(expected),
                "{err}"
            );
            assert!(!err.contains(PASSWORD), "{err}");
        }
        let err = error(Some("[database]\npassword_file = \"/x\"\n"), &[]);
        assert!(err.contains("applies only to PostgreSQL"), "{err}");
    }

    #[test]
    fn without_a_password_file_libpq_environment_supplies_it() {
        let pg = DatabaseSettings::postgres_at("postgresql://watcher@127.0.0.1:5433/w").unwrap();
        let pg = pg.postgres().unwrap();
        assert_eq!(pg.connect_options().get_port(), 5433);
        // Nothing of ours set: sqlx reads PGPASSWORD / PGPASSFILE / ~/.pgpass itself.
        assert!(pg.password.is_none());
        let sqlite = DatabaseSettings::sqlite("/tmp/x.db");
        assert!(sqlite.postgres().is_none());
    }
}
