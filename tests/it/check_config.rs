//! `check-config` as an operator meets it: every problem at once, each with its
//! key path, where it was set and what is expected in words; settings that
//! would make `run` panic or misbehave refused by name; the secret's source
//! shown, never the secret.

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

#[test]
fn a_fifo_as_the_secret_file_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("secret_fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo");
    let path = write(
        &dir,
        &format!(
            "{CREDENTIALS}secret_key_file = {:?}\n",
            fifo.display().to_string()
        ),
    );
    let mut child = Command::new(BIN)
        .env_clear()
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("check-config hangs on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`api.secret_key_file`") && err.contains("not a regular file"),
        "{err}"
    );
}
