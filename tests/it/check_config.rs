//! `check-config` as an operator meets it: every problem at once, each with its
//! key path, where it was set and what is expected in words; settings that
//! would make `run` panic or misbehave refused by name; the secret's source
//! shown, never the secret; the same for the webhook sinks' secrets and URLs.

use crate::common;

use std::process::{Command, Output, Stdio};

use common::{BIN, SECRET_B64, assert_no_secret};

fn check(config: &std::path::Path, env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .env_clear()
        .envs(env.iter().copied())
        .arg("--config")
        .arg(config)
        .arg("check-config")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("my.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const CREDENTIALS: &str = "[api]\naccess_key = \"ak\"\n";

/// A config with the credentials, its secret read from the file `secret`.
fn with_secret_file(dir: &tempfile::TempDir, secret: &std::path::Path) -> std::path::PathBuf {
    write(
        dir,
        &format!(
            "{CREDENTIALS}secret_key_file = {:?}\n",
            secret.display().to_string()
        ),
    )
}

#[test]
fn every_problem_is_reported_at_once_with_its_key_origin_and_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "[api]\naccess_key = \"ak\"\nbase_url = \"http://127.0.0.1/p?x=1\"\n\
         [poll]\nintervall = \"5s\"\nbackoff_max = 5\nlease = \"10000000000h\"\n\
         [database]\npath = \":memory:\"\nbusy_timeout = \"25d\"\n[pol]\nx = 1\n",
    );
    let out = check(
        &path,
        &[
            ("ISSUANCE_WATCHER__API__SECRET_KEY", SECRET_B64),
            ("ISSUANCE_WATCHER__LOG__FORMAT", "xml"),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    let file = path.display().to_string();
    for expected in [
        "8 problems",
        "`poll.intervall` (in ",
        "unknown key; did you mean `poll.interval`?",
        "`poll.backoff_max`",
        "a duration such as \"5s\"",
        "needs a unit",
        "`poll.lease`",
        "out of range: must be from 1ms to 1d",
        "`database.busy_timeout`",
        "from 0ms to 1h",
        "`database.path`",
        "in-memory",
        "`api.base_url`",
        "query or fragment",
        "`log.format` (from the environment: ISSUANCE_WATCHER__LOG__FORMAT)",
        "\"text\" or \"json\"",
        "`pol`",
        "did you mean `poll`?",
        &file,
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert_no_secret("check-config's errors", &err);
}

/// One style for every section: a broken `[[webhooks]]` entry is reported in
/// the same list as a broken `[poll]` key, each problem with its key path and
/// where it was set, by `check-config` and by `run` alike.
#[test]
fn a_broken_webhook_entry_and_a_broken_poll_key_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let secret = common::WEBHOOK_SECRET;
    let path = write(
        &dir,
        &format!(
            "{CREDENTIALS}secret_key = \"{SECRET_B64}\"\n[poll]\ninterval = \"soon\"\n\
             [[webhooks]]\nname = \"shop\"\nurl = \"https://shop.example/hooks\"\nsecret = {secret:?}\n\
             [[webhooks]]\nurl = \"not a url\"\nevents = [\"issuance.paid\", \"issuance.due_soon\"]\n\
             secret = {secret:?}\ntimout = \"5s\"\nconcurrency = 1000\n\
             [[webhooks]]\nname = \"chat\"\nurl = \"https://hooks.slack.com/services/T/B/SLACKSECRET\"\n\
             format = \"slack\"\nsecret = {secret:?}\n"
        ),
    );
    let file = path.display().to_string();
    for command in ["check-config", "run"] {
        let out = exits_by_itself(
            &path,
            command,
            &[("ISSUANCE_WATCHER__POLL__LEASE", "10000000000h")],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{command}: {err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{command}: {err}"
        );
        for expected in [
            "7 problems".to_owned(),
            format!("`poll.interval` (in {file}): expected a duration such as \"5s\""),
            "`poll.lease` (from the environment: ISSUANCE_WATCHER__POLL__LEASE): \"10000000000h\" is out of range".to_owned(),
            format!("`webhooks[1].url` (in {file}): is not a URL"),
            format!("`webhooks[1].events` (in {file}): unknown event type \"issuance.paid\": expected a list of event types"),
            format!("`webhooks[1].timout` (in {file}): unknown key; did you mean `webhooks[1].timeout`?"),
            format!("`webhooks[1].concurrency` (in {file}): 1000 is out of range: must be from 1 to 256"),
            format!("`webhooks[2].secret` (in {file}): a format = \"slack\" sink is unsigned"),
        ] {
            assert!(err.contains(&expected), "{command}: missing {expected:?} in:\n{err}");
        }
        assert!(!err.contains("SLACKSECRET"), "{command}: {err}");
        assert_no_secret(&format!("{command}'s errors"), &err);
    }
}

#[test]
fn each_duration_that_made_run_panic_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for key in [
        "lease",
        "max_interval",
        "backoff_max",
        "startup_spread",
        "auth_pause_max",
    ] {
        let path = write(
            &dir,
            &format!("{CREDENTIALS}[poll]\n{key} = \"10000000000h\"\n"),
        );
        for command in ["check-config", "run"] {
            let out = Command::new(BIN)
                .env_clear()
                .env("ISSUANCE_WATCHER__API__SECRET_KEY", SECRET_B64)
                .arg("--config")
                .arg(&path)
                .arg(command)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{command} {key}: {err}");
            assert!(
                err.contains(&format!("`poll.{key}`")) && err.contains("out of range"),
                "{command} {key}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

#[test]
fn check_config_says_where_the_secret_came_from_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, CREDENTIALS);
    let from_env = check(&path, &[("ISSUANCE_WATCHER__API__SECRET_KEY", SECRET_B64)]);
    let text = String::from_utf8_lossy(&from_env.stdout).into_owned();
    assert!(from_env.status.success(), "{}", stderr(&from_env));
    assert!(
        text.contains("api.secret_key, from the environment: ISSUANCE_WATCHER__API__SECRET_KEY"),
        "{text}"
    );
    assert_no_secret("check-config", &text);

    let secret = dir.path().join("secret_key");
    std::fs::write(&secret, SECRET_B64).unwrap();
    let path = with_secret_file(&dir, &secret);
    let from_file = check(&path, &[]);
    let text = String::from_utf8_lossy(&from_file.stdout).into_owned();
    assert!(
        text.contains(&format!(
            "the file {} (api.secret_key_file)",
            secret.display()
        )),
        "{text}"
    );
    assert_no_secret("check-config", &text);

    let credentials = tempfile::tempdir().unwrap();
    std::fs::write(credentials.path().join("secret_key"), SECRET_B64).unwrap();
    let path = write(&dir, CREDENTIALS);
    let from_credential = check(
        &path,
        &[(
            "CREDENTIALS_DIRECTORY",
            credentials.path().to_str().unwrap(),
        )],
    );
    let text = String::from_utf8_lossy(&from_credential.stdout).into_owned();
    assert!(text.contains("the systemd credential"), "{text}");
}

#[test]
fn a_bad_secret_file_is_reported_against_secret_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret_key");
    std::fs::write(&secret, "*** not base64 ***").unwrap();
    let path = with_secret_file(&dir, &secret);
    let out = check(&path, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`api.secret_key_file`") && err.contains("Base64"),
        "{err}"
    );
    assert!(!err.contains("not base64 ***"), "{err}");
}

/// A FIFO at `dir/name` (a real one: `mkfifo`).
fn fifo(dir: &tempfile::TempDir, name: &str) -> std::path::PathBuf {
    let fifo = dir.path().join(name);
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo");
    fifo
}

/// `issuance-watcher --config CONFIG COMMAND`, which must exit by itself
/// within 10 s (it is killed and the test fails otherwise).
fn exits_by_itself(config: &std::path::Path, command: &str, env: &[(&str, &str)]) -> Output {
    common::daemon::output_within(
        Command::new(BIN)
            .env_clear()
            .envs(env.iter().copied())
            .arg("--config")
            .arg(config)
            .arg(command),
        std::time::Duration::from_secs(10),
    )
}

#[test]
fn a_fifo_as_the_secret_file_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(&dir, "secret_fifo");
    let path = with_secret_file(&dir, &fifo);
    let out = exits_by_itself(&path, "check-config", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`api.secret_key_file`") && err.contains("not a regular file"),
        "{err}"
    );
}

/// A config with the API credentials and one `[[webhooks]]` sink `shop`: `sink`
/// is the rest of its table.
fn with_sink(dir: &tempfile::TempDir, sink: &str) -> std::path::PathBuf {
    write(
        dir,
        &format!(
            "{CREDENTIALS}secret_key = \"{SECRET_B64}\"\n[[webhooks]]\nname = \"shop\"\n{sink}\n"
        ),
    )
}

#[test]
fn a_fifo_as_a_webhook_secret_file_is_refused_by_check_config_and_run_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(&dir, "webhook_secret");
    let path = with_sink(
        &dir,
        &format!(
            "url = \"https://shop.example/hooks\"\nsecret_file = {:?}",
            fifo.display().to_string()
        ),
    );
    for command in ["check-config", "run"] {
        let out = exits_by_itself(&path, command, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{command}: {err}");
        assert!(
            err.contains("`webhooks[0].secret_file`") && err.contains("not a regular file"),
            "{command}: {err}"
        );
    }
}

#[test]
fn a_webhook_url_with_a_user_and_password_is_refused_without_showing_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = with_sink(
        &dir,
        &format!(
            "url = \"https://hookuser:hunter2pass@shop.example/hooks\"\nsecret = {:?}",
            common::WEBHOOK_SECRET
        ),
    );
    for command in ["check-config", "run"] {
        let out = exits_by_itself(&path, command, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{command}: {err}");
        assert!(
            err.contains(
                &format!(
                    "`webhooks[0].url` (in {}): must not carry a user name or password (the value is not shown)",
                    path.display()
                )
            ),
            "{command}: {err}"
        );
        let shown = format!("{err}{}", String::from_utf8_lossy(&out.stdout));
        assert!(
            !shown.contains("hunter2pass") && !shown.contains("hookuser"),
            "{command}: {shown}"
        );
    }
}

/// The README's webhook secret under systemd: the file root made (0600) at
/// `/etc/issuance-watcher/webhook_secret`, handed over by `LoadCredential=` as
/// `$CREDENTIALS_DIRECTORY/webhook_secret`. The configured path and a bare
/// name both resolve to the credential, which wins over an unreadable or
/// stale file at the path.
#[test]
fn a_webhook_secret_file_is_read_from_the_systemd_credential_of_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = tempfile::tempdir().unwrap();
    let credential = credentials.path().join("webhook_secret");
    std::fs::write(&credential, format!("{}\n", common::WEBHOOK_SECRET)).unwrap();
    let env = [(
        "CREDENTIALS_DIRECTORY",
        credentials.path().to_str().unwrap(),
    )];
    // What is at the path, if anything, is not what the service may read.
    let at_path = dir.path().join("webhook_secret");
    std::fs::write(&at_path, "*** root's copy, unreadable for the service ***").unwrap();
    for configured in [
        "/etc/issuance-watcher/webhook_secret".to_owned(),
        "webhook_secret".to_owned(),
        at_path.display().to_string(),
    ] {
        let path = with_sink(
            &dir,
            &format!("url = \"https://shop.example/hooks\"\nsecret_file = {configured:?}"),
        );
        let out = exits_by_itself(&path, "check-config", &env);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{configured}: {}", stderr(&out));
        assert!(
            text.contains(&format!(
                "# Webhook sink shop: secret from the systemd credential {} ($CREDENTIALS_DIRECTORY) (webhooks[0].secret_file) (not shown).",
                credential.display()
            )),
            "{configured}: {text}"
        );
        assert!(
            !text.contains(common::WEBHOOK_SECRET.trim_start_matches("whsec_")),
            "{text}"
        );
    }
    // Without the credential, the bare name is a file that is not there.
    let path = with_sink(
        &dir,
        "url = \"https://shop.example/hooks\"\nsecret_file = \"no_such_secret\"",
    );
    let out = exits_by_itself(&path, "check-config", &env);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "`webhooks[0].secret_file` (in {}): no_such_secret does not exist, nor",
            path.display()
        )),
        "{err}"
    );
}

/// The packaged layout as the service user meets it: root's file, mode 0600,
/// cannot be read by another user, and the error says how to hand it over;
/// with the credential (systemd makes it readable for the service), it works.
#[test]
fn the_service_user_reads_roots_webhook_secret_only_as_a_credential() {
    let Some(mut nobody) = crate::support::require(crate::support::as_nobody()) else {
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let etc = tempfile::tempdir().unwrap();
    mode(etc.path(), 0o755);
    let secret = etc.path().join("webhook_secret");
    std::fs::write(&secret, common::WEBHOOK_SECRET).unwrap();
    mode(&secret, 0o600);
    let path = with_sink(
        &etc,
        &format!(
            "url = \"https://shop.example/hooks\"\nsecret_file = {:?}",
            secret.display().to_string()
        ),
    );
    mode(&path, 0o644);
    let denied = nobody
        .arg(BIN)
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .unwrap();
    let err = stderr(&denied);
    assert_eq!(denied.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`webhooks[0].secret_file`")
            && err.contains("Permission denied")
            && err.contains(&format!(
                "LoadCredential=webhook_secret:{}",
                secret.display()
            )),
        "{err}"
    );

    let credentials = tempfile::tempdir().unwrap();
    mode(credentials.path(), 0o755);
    let credential = credentials.path().join("webhook_secret");
    std::fs::copy(&secret, &credential).unwrap();
    mode(&credential, 0o644);
    let handed_over = crate::support::as_nobody()
        .unwrap()
        .env("CREDENTIALS_DIRECTORY", credentials.path())
        .arg(BIN)
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(handed_over.status.success(), "{}", stderr(&handed_over));
}

/// `check-config` says which engine and where: SQLite at its file by default;
/// PostgreSQL at `database.url` (from the environment here), its password
/// from `database.password_file` found among the systemd credentials, never
/// shown; the rendered settings choose the same engine.
#[test]
fn check_config_names_the_database_engine_and_never_its_password() {
    let (dir, sqlite_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let secret = [("ISSUANCE_WATCHER__API__SECRET_KEY", SECRET_B64)];
    let sqlite = write(
        &sqlite_dir,
        &format!("{CREDENTIALS}[database]\npath = \"/srv/w.db\"\n"),
    );
    let out = check(&sqlite, &secret);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("\n# Database: SQLite at /srv/w.db.\n"),
        "{text}"
    );

    let credentials = tempfile::tempdir().unwrap();
    let password = credentials.path().join("db-password");
    std::fs::write(&password, format!("{}\n", common::DB_PASSWORD)).unwrap();
    let path = write(
        &dir,
        &format!(
            "{CREDENTIALS}[database]\npassword_file = \"/etc/issuance-watcher/db-password\"\n"
        ),
    );
    let url = "postgres://watcher@db.example:5432/watch?sslmode=require";
    let out = check(
        &path,
        &[
            secret[0],
            ("ISSUANCE_WATCHER__DATABASE__URL", url),
            (
                "CREDENTIALS_DIRECTORY",
                credentials.path().to_str().unwrap(),
            ),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = format!(
        "\n# Database: PostgreSQL at {url}, password from the systemd credential {} \
         ($CREDENTIALS_DIRECTORY, database.password_file) (not shown).\n",
        password.display()
    );
    assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    assert!(
        text.contains(&format!("url = \"{url}\"")) && !text.contains("path = "),
        "{text}"
    );
    assert_no_secret("check-config", &format!("{text}{}", stderr(&out)));

    // A password in the URL, or both engines: refused by name, nothing shown.
    let with_password = format!(
        "postgres://watcher:{}@db.example/watch",
        common::DB_PASSWORD
    );
    for (file, url, expected) in [
        (&path, with_password.as_str(), "must not carry a password"),
        (
            &sqlite,
            "postgres://watcher@db.example/watch",
            "are both set",
        ),
    ] {
        let out = check(file, &[secret[0], ("ISSUANCE_WATCHER__DATABASE__URL", url)]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("`database.url` (from the environment: ISSUANCE_WATCHER__DATABASE__URL)")
                && err.contains(expected),
            "{err}"
        );
        assert_no_secret(
            "check-config",
            &format!("{err}{}", String::from_utf8_lossy(&out.stdout)),
        );
    }
}

/// `database.url` is the database: a server that cannot be reached is an
/// error naming it, never replaced by the SQLite default in silence.
#[test]
fn a_postgres_url_is_not_served_by_sqlite_in_silence() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, CREDENTIALS);
    for command in ["migrate", "list"] {
        let out = Command::new(BIN)
            .env_clear()
            .env("ISSUANCE_WATCHER__API__SECRET_KEY", SECRET_B64)
            .env(
                "ISSUANCE_WATCHER__DATABASE__URL",
                "postgres://w@127.0.0.1:9/w",
            )
            .arg("--config")
            .arg(&path)
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{command}: {err}");
        assert!(
            err.contains("postgres://w@127.0.0.1:9/w"),
            "{command} names the server it could not reach: {err}"
        );
        assert!(
            !err.contains("watcher.db"),
            "{command} never opens the SQLite default: {err}"
        );
    }
}

#[test]
fn check_config_says_where_the_admin_token_is_read_and_refuses_a_short_one() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("ISSUANCE_WATCHER__API__SECRET_KEY", SECRET_B64)];
    let path = write(&dir, CREDENTIALS);
    let read_only = check(&path, &env);
    let text = String::from_utf8_lossy(&read_only.stdout).into_owned();
    assert!(text.contains("# Dashboard: read-only"), "{text}");

    let token = "an-admin-token-long-enough-42";
    let file = dir.path().join("admin_token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let config = format!(
        "{CREDENTIALS}[http]\nadmin_token_file = {:?}\n",
        file.display().to_string()
    );
    let path = write(&dir, &config);
    let out = check(&path, &env);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains(&format!(
            "# Dashboard admin token: the file {} (not shown)",
            file.display()
        )),
        "{text}"
    );
    assert!(!text.contains(token) && !stderr(&out).contains(token));

    std::fs::write(&file, "short").unwrap();
    let out = check(&path, &env);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("http.admin_token_file") && said.contains("at least 16"),
        "{said}"
    );
    assert!(
        !said.contains("short\n") && !said.contains("\"short\""),
        "{said}"
    );
}
