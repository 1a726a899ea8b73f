//! What the `.deb` ships beside the daemon, checked here without installing it
//! (`.ci/deb-check` installs it): `--version`, the generated completions and
//! man pages, and the monitoring files in `config/monitoring/` (alert rules
//! checked and unit-tested by `promtool`, from Debian's `prometheus` package,
//! and a Grafana dashboard). Where promtool is missing its checks fail under CI
//! (`.ci/run` installs it) and are skipped elsewhere (see `tests/support`).
//! `tests/prometheus.rs` runs the rules in a real Prometheus against a daemon.

use crate::support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_issuance-watcher");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The commands a user sees in `--help` (the hidden `generate` is not one).
const COMMANDS: &[&str] = &[
    "run",
    "migrate",
    "check-config",
    "add",
    "list",
    "show",
    "flags",
    "status",
    "events",
    "simulate",
    "demo",
];

#[test]
fn version_names_the_package_version_and_the_git_commit() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let prefix = format!("issuance-watcher {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = version
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("--version says {version:?}"));
    // In a git checkout (CI's is one) it is HEAD's commit; elsewhere `unknown`.
    let head = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(head) => assert_eq!(commit, head, "--version: {version}"),
        None => assert_eq!(commit, "unknown", "--version: {version}"),
    }
}

#[test]
fn completions_and_man_pages_cover_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let completions = dir.path().join("completions");
    let man = dir.path().join("man");
    for (what, into) in [("completions", &completions), ("man", &man)] {
        let out = Command::new(BIN)
            .args(["generate", what])
            .arg(into)
            .output()
            .unwrap();
        assert!(out.status.success(), "generate {what}: {}", text(&out));
    }
    for file in [
        "issuance-watcher.bash",
        "_issuance-watcher",
        "issuance-watcher.fish",
    ] {
        let script = std::fs::read_to_string(completions.join(file)).unwrap();
        for command in COMMANDS {
            assert!(script.contains(command), "{file} lacks `{command}`");
        }
        assert!(
            script.contains("--json") && script.contains("--config"),
            "{file} lacks options"
        );
    }
    let main = std::fs::read_to_string(man.join("issuance-watcher.1")).unwrap();
    assert!(main.contains(".TH issuance-watcher 1"), "{main}");
    assert!(
        main.contains(env!("CARGO_PKG_VERSION")),
        "no version on the page"
    );
    for command in COMMANDS {
        let page = man.join(format!("issuance-watcher-{command}.1"));
        assert!(page.is_file(), "no man page {}", page.display());
    }
    assert!(
        !man.join("issuance-watcher-generate.1").exists(),
        "the hidden `generate` got a man page"
    );
    let status = std::fs::read_to_string(man.join("issuance-watcher-status.1")).unwrap();
    assert!(status.contains("json"), "{status}");
}

/// `promtool ARGS`, or `None` when it is missing outside CI.
fn promtool(args: &[&str]) -> Option<Output> {
    support::require(
        Command::new("promtool")
            .args(args)
            .current_dir(repo("config/monitoring"))
            .output()
            .map_err(|e| {
                format!("`promtool` is not available ({e}); install Debian's `prometheus` package")
            }),
    )
}

#[test]
fn alert_rules_pass_promtool_check() {
    let Some(out) = promtool(&["check", "rules", "issuance-watcher.rules.yml"]) else {
        return;
    };
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("SUCCESS"), "{}", text(&out));
}

#[test]
fn alert_rules_pass_their_promtool_unit_tests() {
    let Some(out) = promtool(&["test", "rules", "issuance-watcher.rules.test.yml"]) else {
        return;
    };
    assert!(out.status.success(), "{}", text(&out));
}

/// The alert names in the rules file (`- alert: NAME` lines).
fn alerts() -> Vec<String> {
    read("config/monitoring/issuance-watcher.rules.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|name| name.trim().to_owned())
        .collect()
}

#[test]
fn every_alert_operators_rely_on_exists_and_has_unit_tests() {
    let alerts = alerts();
    for wanted in [
        "IssuanceWatcherCredentialsRefused",
        "IssuanceWatcherNoSuccessfulPoll",
        "IssuanceWatcherDueSoon",
        "IssuanceWatcherOverdue",
        "IssuanceWatcherWalGrowing",
        "IssuanceWatcherDown",
        "IssuanceWatcherUnknownCharge",
        "IssuanceWatcherSinkDisabled",
    ] {
        assert!(alerts.iter().any(|a| a == wanted), "no alert {wanted}");
    }
    let tests = read("config/monitoring/issuance-watcher.rules.test.yml");
    for alert in &alerts {
        // A case where it fires (exp_alerts with labels) and one where it does not.
        let cases: Vec<&str> = tests
            .split("- eval_time:")
            .filter(|case| case.contains(&format!("alertname: {alert}\n")))
            .collect();
        assert!(
            cases.iter().any(|c| c.contains("exp_labels:")),
            "{alert}: no test case in which it fires"
        );
        assert!(
            cases.iter().any(|c| c.contains("exp_alerts: []")),
            "{alert}: no test case in which it stays quiet"
        );
    }
}

/// Every `issuance_watcher_*` metric the daemon declares (src/ops/metrics.rs).
fn declared_metrics() -> BTreeSet<String> {
    read("src/ops/metrics.rs")
        .lines()
        .filter_map(|l| {
            let (_, rest) = l
                .trim()
                .strip_prefix("pub const ")?
                .split_once(": &str = \"")?;
            let name = rest.strip_suffix("\";")?;
            name.starts_with("issuance_watcher_")
                .then(|| name.to_owned())
        })
        .collect()
}

/// The `issuance_watcher_*` names used in `text`, without the histogram series
/// suffixes (`_bucket`, `_sum`, `_count`) when the base name is a histogram.
fn used_metrics(text: &str, declared: &BTreeSet<String>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("issuance_watcher_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| declared.contains(*b)))
            .unwrap_or(name);
        used.insert(base.to_owned());
        rest = &tail[end..];
    }
    used
}

#[test]
fn rules_and_dashboard_use_only_metrics_the_daemon_exports() {
    let declared = declared_metrics();
    assert!(declared.len() >= 15, "{declared:?}");
    for file in [
        "config/monitoring/issuance-watcher.rules.yml",
        "config/monitoring/grafana-dashboard.json",
    ] {
        let used = used_metrics(&read(file), &declared);
        assert!(!used.is_empty(), "{file} uses no metric");
        let unknown: Vec<_> = used.difference(&declared).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses unknown metrics {unknown:?}"
        );
    }
}

#[test]
fn the_dashboard_is_importable_grafana_json() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("config/monitoring/grafana-dashboard.json"))
            .expect("the dashboard is valid JSON");
    assert_eq!(dashboard["uid"], "issuance-watcher");
    assert!(dashboard["title"].is_string());
    // A data source variable: importing asks nothing, any Prometheus can be picked.
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "{variables:?}"
    );
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    let declared = declared_metrics();
    let mut shown = BTreeSet::new();
    for panel in panels {
        assert!(ids.insert(panel["id"].as_i64().unwrap()), "duplicate id");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}: no query", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            assert!(
                expr.contains("job=\"issuance-watcher\""),
                "{}: {expr} is not limited to the job",
                panel["title"]
            );
            shown.extend(used_metrics(expr, &declared));
        }
    }
    // Every metric the daemon exports has a panel.
    let missing: Vec<_> = declared.difference(&shown).collect();
    assert!(missing.is_empty(), "metrics without a panel: {missing:?}");
}
