//! The shipped systemd unit and sysusers file, checked with systemd's own tools
//! (`systemd-analyze`, `systemd-sysusers`, from Debian's `systemd` package).
//! Where the tools are missing the checks fail under CI (`.ci/run` installs
//! them) and are skipped elsewhere with a `SKIPPED` line (see `tests/support`).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_issuance-watcher");
/// The exposure score the unit must not exceed (`systemd-analyze security`, 0–10, lower is better).
const MAX_EXPOSURE: f64 = 2.0;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/issuance-watcher.service")
}

/// The template unit, one watcher per account: `issuance-watcher@ACCOUNT.service`.
fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/issuance-watcher@.service")
}

fn sysusers_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/issuance-watcher.sysusers")
}

/// Runs `tool args`, or returns `None` when the tool is not installed and this
/// is not CI (see [`support::require`]).
fn run_tool(tool: &str, args: &[&std::ffi::OsStr]) -> Option<Output> {
    support::require(Command::new(tool).args(args).output().map_err(|e| {
        format!("`{tool}` is not available ({e}); install Debian's `systemd` package")
    }))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn unit_text() -> String {
    std::fs::read_to_string(unit_path()).expect("the unit file exists")
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    // `verify` checks that ExecStart= is executable, so verify a copy that runs the
    // binary just built instead of /usr/bin/issuance-watcher (the installed path).
    let original = unit_text();
    assert!(
        original.contains("\nExecStart=/usr/bin/issuance-watcher "),
        "ExecStart= should run /usr/bin/issuance-watcher"
    );
    let copy = original.replace(
        "\nExecStart=/usr/bin/issuance-watcher ",
        &format!("\nExecStart={BIN} "),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issuance-watcher.service");
    std::fs::write(&path, copy).unwrap();
    assert_verifies(&path);
}

/// `systemd-analyze verify` of the unit file at `unit` passes without a word
/// (skipped where the tool is missing, outside CI).
fn assert_verifies(unit: &Path) {
    let Some(out) = run_tool("systemd-analyze", &["verify".as_ref(), unit.as_os_str()]) else {
        return;
    };
    let output = text(&out);
    assert!(
        out.status.success() && output.trim().is_empty(),
        "systemd-analyze verify complained about {}:\n{output}",
        unit.display()
    );
}

#[test]
fn unit_security_exposure_is_at_most_2_0() {
    assert_exposure_at_most_2_0(&unit_path(), "issuance-watcher.service");
}

/// `systemd-analyze security --offline=yes` of the unit file at `unit`, whose
/// report names it `name`, is at most [`MAX_EXPOSURE`].
fn assert_exposure_at_most_2_0(unit: &Path, name: &str) {
    let Some(out) = run_tool(
        "systemd-analyze",
        &[
            "security".as_ref(),
            "--offline=yes".as_ref(),
            "--threshold=20".as_ref(),
            unit.as_os_str(),
        ],
    ) else {
        return;
    };
    let output = text(&out);
    assert!(
        out.status.success(),
        "exposure above 2.0 (or the analysis failed):\n{output}"
    );
    // Also read the score itself, so the message says what it is.
    let score: f64 = output
        .lines()
        .find_map(|l| l.split_once(&format!("Overall exposure level for {name}:")))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{output}"));
    eprintln!("systemd-analyze security --offline=yes {name}: exposure {score}");
    assert!(score <= MAX_EXPOSURE, "exposure {score} > {MAX_EXPOSURE}");
}

#[test]
fn sysusers_file_creates_the_fixed_user_and_group() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    let mut root_arg = std::ffi::OsString::from("--root=");
    root_arg.push(root.path());
    let file = sysusers_path();
    let Some(out) = run_tool(
        "systemd-sysusers",
        &[root_arg.as_os_str(), file.as_os_str()],
    ) else {
        return;
    };
    assert!(
        out.status.success(),
        "systemd-sysusers failed:\n{}",
        text(&out)
    );
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let group = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
    assert!(passwd.starts_with("issuance-watcher:x:"), "{passwd}");
    assert!(group.starts_with("issuance-watcher:x:"), "{group}");
}

#[test]
fn unit_has_the_settings_the_daemon_relies_on() {
    // Plain text checks that run everywhere, tools or not.
    let unit = unit_text();
    for line in [
        "Type=notify",
        "User=issuance-watcher",
        "Group=issuance-watcher",
        "StateDirectory=issuance-watcher",
        "StateDirectoryMode=2770",
        "UMask=0007",
        "ConfigurationDirectory=issuance-watcher",
        "LoadCredential=secret_key:/etc/issuance-watcher/secret_key",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=",
        "Restart=on-failure",
    ] {
        assert!(unit.lines().any(|l| l.trim() == line), "missing `{line}`");
    }
    assert!(
        unit.contains("After=time-sync.target"),
        "order after time-sync.target"
    );
    assert!(
        !unit.contains("DynamicUser=yes"),
        "a fixed user, not DynamicUser="
    );
    let watchdog = unit
        .lines()
        .find_map(|l| l.strip_prefix("WatchdogSec="))
        .expect("WatchdogSec= is set");
    let watchdog = humantime::parse_duration(watchdog.trim()).expect("WatchdogSec= parses");
    assert!(
        watchdog.as_secs() >= 10,
        "too tight a watchdog: {watchdog:?}"
    );
}

/// The template instantiated for account `shop-a`, running the binary just built
/// (`verify` checks that ExecStart= is executable, and refuses a bare template).
fn template_instance(dir: &Path) -> PathBuf {
    let template = std::fs::read_to_string(template_path()).expect("the template unit exists");
    assert!(
        template.contains("\nExecStart=/usr/bin/issuance-watcher "),
        "ExecStart= should run /usr/bin/issuance-watcher"
    );
    let path = dir.join("issuance-watcher@shop-a.service");
    std::fs::write(
        &path,
        template.replace(
            "\nExecStart=/usr/bin/issuance-watcher ",
            &format!("\nExecStart={BIN} "),
        ),
    )
    .unwrap();
    path
}

#[test]
fn template_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    assert_verifies(&template_instance(dir.path()));
}

#[test]
fn template_unit_security_exposure_is_at_most_2_0() {
    let dir = tempfile::tempdir().unwrap();
    let instance = template_instance(dir.path());
    assert_exposure_at_most_2_0(&instance, "issuance-watcher@shop-a.service");
}

/// The lines in which the template may differ from the main unit: what names
/// the account. Everything else (hardening, watchdog, restarts) must be the same,
/// so that a fix to one unit cannot silently miss the other.
const INSTANCE_LINES: &[(&str, &str)] = &[
    (
        "Description=issuance-watcher (Bunjang point issuance watcher)",
        "Description=issuance-watcher for account %i (Bunjang point issuance watcher)",
    ),
    (
        "ExecStart=/usr/bin/issuance-watcher --config /etc/issuance-watcher/config.toml run",
        "ExecStart=/usr/bin/issuance-watcher --config /etc/issuance-watcher/%i.toml run",
    ),
    (
        "StateDirectory=issuance-watcher",
        "StateDirectory=issuance-watcher/%i",
    ),
    (
        "LoadCredential=secret_key:/etc/issuance-watcher/secret_key",
        "LoadCredential=secret_key:/etc/issuance-watcher/%i.secret_key",
    ),
    (
        "WorkingDirectory=/var/lib/issuance-watcher",
        "WorkingDirectory=/var/lib/issuance-watcher/%i",
    ),
    (
        "SyslogIdentifier=issuance-watcher",
        "SyslogIdentifier=issuance-watcher@%i",
    ),
];

/// The template's own line: each account's database in its own state directory.
const TEMPLATE_DATABASE: &str =
    "Environment=ISSUANCE_WATCHER__DATABASE__PATH=/var/lib/issuance-watcher/%i/watcher.db";

fn settings(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn template_unit_is_the_main_unit_with_the_account_filled_in() {
    let template = std::fs::read_to_string(template_path()).expect("the template unit exists");
    let expected: Vec<String> = settings(&unit_text())
        .into_iter()
        .flat_map(|line| {
            let mut out = vec![
                INSTANCE_LINES
                    .iter()
                    .find(|(main, _)| *main == line)
                    .map_or(line.clone(), |(_, instance)| (*instance).to_owned()),
            ];
            if line == "StateDirectory=issuance-watcher" {
                out.push(TEMPLATE_DATABASE.to_owned());
            }
            out
        })
        .collect();
    let actual = settings(&template);
    for (i, (want, got)) in expected.iter().zip(&actual).enumerate() {
        assert_eq!(want, got, "setting {i} of the template");
    }
    assert_eq!(expected.len(), actual.len(), "{actual:#?}");
    for (main, _) in INSTANCE_LINES {
        assert!(
            settings(&unit_text()).iter().any(|l| l == main),
            "the main unit no longer has `{main}`: update INSTANCE_LINES"
        );
    }
}
