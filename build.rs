//! Build-time facts for the library.
//!
//! - `sqlx::migrate!` embeds the migrations at compile time; without the
//!   `rerun-if-changed` on their folders (`migrations/sqlite`, and
//!   `migrations/postgres` for the tests that embed it) a new migration file
//!   would not trigger a rebuild and would silently be missing.
//! - `ISSUANCE_WATCHER_GIT_COMMIT`: the short commit the binary was built from,
//!   for `--version` (so an operator can tell which build a host runs). Taken
//!   from `git rev-parse --short HEAD`; when that is not possible (a crate
//!   tarball, no git installed) it is `unknown`, unless the builder sets the
//!   variable `ISSUANCE_WATCHER_GIT_COMMIT` itself, which always wins.

use std::path::{Path, PathBuf};
use std::process::Command;

const COMMIT_VAR: &str = "ISSUANCE_WATCHER_GIT_COMMIT";

fn main() {
    println!("cargo:rerun-if-changed=migrations/sqlite");
    println!("cargo:rerun-if-changed=migrations/postgres");
    println!("cargo:rerun-if-env-changed={COMMIT_VAR}");
    let commit = std::env::var(COMMIT_VAR)
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env={COMMIT_VAR}={}", commit.trim());
}

/// The short commit of HEAD, and `rerun-if-changed` lines for the files that
/// change when HEAD moves (only existing ones: a missing path would make cargo
/// run this script on every build).
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let commit = git(&["rev-parse", "--short=10", "HEAD"])?;
    // A worktree has its own git dir (HEAD) and shares the common one (refs).
    let git_dir = git(&["rev-parse", "--git-dir"]).map(PathBuf::from);
    let common_dir = git(&["rev-parse", "--git-common-dir"]).map(PathBuf::from);
    let head_ref = git(&["symbolic-ref", "-q", "HEAD"]);
    let mut watched: Vec<PathBuf> = Vec::new();
    if let Some(dir) = &git_dir {
        watched.push(dir.join("HEAD"));
    }
    if let Some(dir) = common_dir.as_ref().or(git_dir.as_ref()) {
        if let Some(head_ref) = &head_ref {
            watched.push(dir.join(head_ref));
        }
        watched.push(dir.join("packed-refs"));
    }
    for path in watched.iter().filter(|p| Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Some(commit)
}
