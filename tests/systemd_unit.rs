//! The shipped systemd unit and sysusers file, checked with systemd's own tools
//! (`systemd-analyze`, `systemd-sysusers`, from Debian's `systemd` package).
//! Where the tools are missing the checks fail under CI (`.ci/run` installs
//! them) and are skipped elsewhere with a `SKIPPED` line (see `tests/support`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_issuance-watcher");
/// The exposure score the unit must not exceed (`systemd-analyze security`, 0–10, lower is better).
const MAX_EXPOSURE: f64 = 2.0;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/issuance-watcher.service")
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
    let Some(out) = run_tool("systemd-analyze", &["verify".as_ref(), path.as_os_str()]) else {
        return;
    };
    let output = text(&out);
    assert!(
        out.status.success() && output.trim().is_empty(),
        "systemd-analyze verify complained:\n{output}"
    );
}

#[test]
fn unit_security_exposure_is_at_most_2_0() {
    let unit = unit_path();
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
        .find_map(|l| l.split_once("Overall exposure level for issuance-watcher.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{output}"));
    eprintln!("systemd-analyze security --offline=yes: exposure {score}");
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
        "StateDirectoryMode=0770",
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
