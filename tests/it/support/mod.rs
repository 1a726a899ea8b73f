//! Prerequisites from outside the repository (a Debian package, a `mount` that
//! only root may do) for the tests that need them.
//!
//! Invariant: a test never passes without having checked what it names. Under
//! CI (`CI` set, as `.ci/run` is run) a missing prerequisite fails the test,
//! because `.ci/run` installs them and a skip there would hide a lost check.
//! Elsewhere the test stops early and says so on a `SKIPPED` line written
//! straight to the terminal: the test harness captures `eprintln!` and shows it
//! only for failing tests, which would make the skip silent.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::PathBuf;

/// Whether this is a CI run (`CI` set to anything but empty, `0` or `false`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// The value a test needs, or `None` when it is missing outside CI (the test
/// then returns at once). Panics under CI, naming the test and the reason.
pub fn require<T>(prerequisite: Result<T, String>) -> Option<T> {
    let reason = match prerequisite {
        Ok(value) => return Some(value),
        Err(reason) => reason,
    };
    // libtest names each test's thread after the test.
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    if in_ci() {
        panic!("{test}: {reason} (CI provides this: see .ci/run)");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {reason} (under CI=1 this fails)"
    );
    None
}

/// libfaketime's preload library for this machine's architecture (Debian's
/// `faketime` package puts it under `/usr/lib/<multiarch>/faketime/`).
/// `LIBFAKETIME` names another one.
pub fn libfaketime() -> Result<PathBuf, String> {
    const FILE: &str = "faketime/libfaketime.so.1";
    if let Some(path) = std::env::var_os("LIBFAKETIME") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("LIBFAKETIME={} does not exist", path.display()))
        };
    }
    // This architecture's multiarch directory first: a library of another
    // architecture would not be preloaded (the loader only warns).
    let arch = std::env::consts::ARCH;
    let mut candidates = vec![PathBuf::from(format!("/usr/lib/{arch}-linux-gnu/{FILE}"))];
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        let mut others: Vec<PathBuf> = entries
            .filter_map(|e| Some(e.ok()?.path().join(FILE)))
            .filter(|p| p.to_string_lossy().contains(arch))
            .collect();
        others.sort();
        candidates.extend(others);
    }
    candidates.push(PathBuf::from(format!("/usr/lib/{FILE}")));
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        format!("libfaketime ({FILE}) is not installed for {arch}: apt-get install faketime")
    })
}

/// `setpriv` as root, to run a command as the user and group `nobody` (65534)
/// without supplementary groups: root skips the permission checks a test of
/// "a user who cannot write this directory" or "cannot read this file" needs.
pub fn as_nobody() -> Result<std::process::Command, String> {
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("cannot run id: {e}"))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("running a command as another user needs root".into());
    }
    match std::process::Command::new("setpriv")
        .arg("--version")
        .output()
    {
        Ok(out) if out.status.success() => {}
        _ => return Err("setpriv (util-linux) is not installed".into()),
    }
    let mut command = std::process::Command::new("setpriv");
    command
        .env_clear()
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
    Ok(command)
}

/// Debian's `chromium` and its `chromedriver` (the `chromium-driver`
/// package), for the dashboard's browser tests. `CHROMEDRIVER` and
/// `CHROMIUM` name other ones.
pub fn chromium() -> Result<(PathBuf, PathBuf), String> {
    let find = |var: &str, default: &str, package: &str| {
        let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{} is missing (apt-get install {package})",
                path.display()
            ))
        }
    };
    Ok((
        find("CHROMEDRIVER", "/usr/bin/chromedriver", "chromium-driver")?,
        find("CHROMIUM", "/usr/bin/chromium", "chromium")?,
    ))
}
