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

/// The README's lines that follow the one containing `start`, up to `end`
/// (both excluded).
fn readme_block(start: &str, end: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("the README exists");
    let mut lines = readme.lines().skip_while(|l| !l.contains(start));
    assert!(
        lines.next().is_some(),
        "the README has no line with {start:?}"
    );
    lines
        .take_while(|l| !l.starts_with(end))
        .map(str::to_owned)
        .collect()
}

/// The one README line that starts with `start` and contains `needle`, trimmed.
fn readme_line(start: &str, needle: &str) -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("the README exists");
    let found: Vec<&str> = readme
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(start) && l.contains(needle))
        .collect();
    assert_eq!(found.len(), 1, "README lines with {needle:?}: {found:#?}");
    found[0].to_owned()
}

/// The README's webhook secret under systemd fits together: the file it makes
/// is the one the drop-in hands over; the credential's name is the file name
/// of the `secret_file` its sink example configures (a `secret_file` is looked
/// up in `$CREDENTIALS_DIRECTORY` under its file name); the drop-in, applied
/// to the shipped unit, verifies; and the daemon then resolves that
/// `secret_file` from the credential.
#[test]
fn the_readmes_webhook_secret_drop_in_fits_the_unit_and_the_config() {
    let drop_in = readme_block("webhook-secret.conf <<'EOF'", "EOF");
    assert_eq!(drop_in[0], "[Service]", "{drop_in:#?}");
    let (name, source) = drop_in
        .iter()
        .find_map(|l| l.strip_prefix("LoadCredential="))
        .and_then(|v| v.split_once(':'))
        .expect("the drop-in has LoadCredential=NAME:PATH");
    let made = readme_line("install ", "/dev/null /etc/issuance-watcher/webhook_secret");
    assert!(made.ends_with(&format!(" {source}")), "{made}");
    assert!(
        made.starts_with("install -m 0600 -o root -g root "),
        "{made}"
    );
    let configured = readme_line("secret_file = ", "/etc/issuance-watcher/");
    let secret_file = configured
        .split('"')
        .nth(1)
        .expect("secret_file = \"PATH\"");
    assert_eq!(
        secret_file, source,
        "the sink's secret_file is the handed-over file"
    );
    assert_eq!(
        Path::new(secret_file).file_name().unwrap().to_str(),
        Some(name),
        "the credential's name is the secret_file's file name"
    );

    // Applied to the shipped unit: `verify` reads drop-ins beside the unit
    // (it complains about a bad one: checked first, so the pass means something).
    let unit = unit_text().replace(
        "\nExecStart=/usr/bin/issuance-watcher ",
        &format!("\nExecStart={BIN} "),
    );
    let with_drop_in = |text: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("issuance-watcher.service"), &unit).unwrap();
        let drop_ins = dir.path().join("issuance-watcher.service.d");
        std::fs::create_dir(&drop_ins).unwrap();
        std::fs::write(drop_ins.join("webhook-secret.conf"), text).unwrap();
        dir
    };
    let broken = with_drop_in("[Service]\nLoadCredential=webhook_secret:not/absolute\n");
    let unit_path = broken.path().join("issuance-watcher.service");
    if let Some(out) = run_tool(
        "systemd-analyze",
        &["verify".as_ref(), unit_path.as_os_str()],
    ) {
        assert!(
            text(&out).contains("not valid"),
            "verify ignores drop-ins: {}",
            text(&out)
        );
    }
    let good = with_drop_in(&format!("{}\n", drop_in.join("\n")));
    assert_verifies(&good.path().join("issuance-watcher.service"));

    // What the service then sees: the credential, under that name.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(name),
        "whsec_dGVzdC13ZWJob29rLXNlY3JldC0zMi1ieXRlcyEhIQ==\n",
    )
    .unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\naccess_key = \"ak\"\nsecret_key = \"c2VjcmV0\"\n\
             [[webhooks]]\nname = \"shop\"\nurl = \"https://shop.example/hooks\"\nsecret_file = {secret_file:?}\n"
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .env_clear()
        .env("CREDENTIALS_DIRECTORY", dir.path())
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "secret from the systemd credential {}",
            dir.path().join(name).display()
        )),
        "{}",
        text(&out)
    );
}
