//! The `issuance-watcher` binary as a child process.
//!
//! Every child starts from an empty environment: a developer's `RUST_LOG`,
//! `NOTIFY_SOCKET`, `CREDENTIALS_DIRECTORY` or `ISSUANCE_WATCHER__…` variables
//! would otherwise change what the test observes. A test adds what it needs.
//! A long-running daemon's stderr goes to a file, so it can be read while the
//! daemon runs and a chatty log can never fill a pipe and block it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::wait::{EVERY, poll, poll_blocking};

pub const BIN: &str = env!("CARGO_BIN_EXE_issuance-watcher");

/// `issuance-watcher --config CONFIG`, with an empty environment.
pub fn command(config: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.env_clear().arg("--config").arg(config);
    command
}

/// Starts `command` with stdout piped and returns it with the first line it
/// printed (an address it announces, the head of a listing), failing the test
/// (after killing it) if none came within 10 s. The rest of its stdout is
/// never read: the pipe closes once the line is in, as `| head -1` would close it.
pub fn first_line(command: &mut Command, stderr: Stdio) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let _ = line_tx.send(read.map(|_| line));
    });
    let first = poll_blocking(
        &format!("a first line from {command:?}"),
        Duration::from_secs(10),
        EVERY,
        || match line_rx.try_recv() {
            Ok(read) => Ok(read.unwrap()),
            Err(_) => Err("no line yet".to_owned()),
        },
    );
    match first {
        Ok(line) => (child, line),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{e}");
        }
    }
}

/// Runs a one-shot command (`add`, `migrate`, `check-config`, ...) to completion.
pub fn cli(config: &Path, args: &[&str]) -> Output {
    command(config).args(args).output().unwrap()
}

/// Runs `command` to completion, its output captured, failing the test (after
/// killing it) if it has not exited by itself within `limit`: for commands that
/// would hang if a check were broken (a FIFO read, a follower that opened).
pub fn output_within(command: &mut Command, limit: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish_within(child, &format!("{command:?}"), limit)
}

/// Waits for `child` (`what`) to exit by itself and returns its output,
/// failing the test (after killing it, with what it wrote to stderr) if it has
/// not within `limit`. Its output is read after it exits: for commands that
/// print less than a pipe holds.
pub fn finish_within(mut child: Child, what: &str, limit: Duration) -> Output {
    let exited = poll_blocking(&format!("{what} to exit"), limit, EVERY, || {
        match child.try_wait().unwrap() {
            Some(status) => Ok(status),
            None => Err("still running".to_owned()),
        }
    });
    if let Err(e) = exited {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("{e}; its stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    child.wait_with_output().unwrap()
}

/// [`cli`], failing the test if the command has not exited within 10 s.
pub fn cli_within(config: &Path, args: &[&str]) -> Output {
    output_within(command(config).args(args), Duration::from_secs(10))
}

/// Runs `issuance-watcher --config CONFIG migrate` and asserts it succeeded.
pub fn migrate(config: &Path) {
    let out = cli(config, &["migrate"]);
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How to start `issuance-watcher run`: where its stderr goes and what it sees.
pub struct Spawn {
    command: Command,
    log: PathBuf,
}

impl Spawn {
    /// The daemon on `config`, logging to a fresh file next to it.
    pub fn new(config: &Path) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = config.parent().unwrap_or(Path::new("."));
        let mut command = command(config);
        command
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        Self {
            command,
            log: dir.join(format!("stderr-{n}.log")),
        }
    }

    /// Where stderr goes (created or truncated).
    pub fn log(mut self, path: &Path) -> Self {
        self.log = path.to_owned();
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn envs<'a>(mut self, vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        self.command.envs(vars);
        self
    }

    /// `RUST_LOG` for the daemon (unset by default: its own default filter).
    pub fn rust_log(self, filter: &str) -> Self {
        self.env("RUST_LOG", filter)
    }

    pub fn spawn(mut self) -> Daemon {
        let stderr = std::fs::File::create(&self.log).unwrap();
        let child = self.command.stderr(stderr).spawn().unwrap();
        Daemon {
            child: Some(child),
            log: self.log,
        }
    }
}

/// A running daemon; killed (SIGKILL) and reaped if still running when dropped.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// `issuance-watcher run` on `config` with the defaults of [`Spawn`].
    pub fn start(config: &Path) -> Self {
        Spawn::new(config).spawn()
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the child is still owned")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the child is still owned").id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    pub fn running(&mut self) -> bool {
        self.child().try_wait().unwrap().is_none()
    }

    /// Sends SIGTERM (what systemd sends to stop it).
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends the signal `name` (`TERM`, `HUP`, `STOP`, `CONT`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGKILL (a crash, `kill -9`) and reap.
    pub fn kill9(&mut self) {
        let child = self.child();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The exit status if the daemon has exited; what a wait for its exit sees.
    fn exited(&mut self) -> Result<ExitStatus, String> {
        self.child()
            .try_wait()
            .unwrap()
            .ok_or_else(|| "still running".to_owned())
    }

    /// Waits for the daemon to exit by itself, blocking the thread; fails the
    /// test with its log if it has not within `limit`.
    pub fn wait_blocking(&mut self, limit: Duration) -> ExitStatus {
        let exited = poll_blocking("the daemon to exit", limit, EVERY, || self.exited());
        exited.unwrap_or_else(|e| panic!("{e}; its log:\n{}", self.log()))
    }

    /// Waits for the daemon to exit by itself without blocking the runtime;
    /// fails the test with its log if it has not within `limit`.
    pub async fn wait(&mut self, limit: Duration) -> ExitStatus {
        let exited = poll("the daemon to exit", limit, EVERY, async || self.exited()).await;
        exited.unwrap_or_else(|e| panic!("{e}; its log:\n{}", self.log()))
    }

    /// Waits (up to `limit`) until the daemon has logged that it started: its
    /// database exists and is migrated from then on. Panics if it exits first.
    pub async fn started(&mut self, limit: Duration) {
        let started = poll("the daemon to log its start", limit, EVERY, async || {
            if self.log().contains("issuance-watcher started") {
                return Ok(());
            }
            assert!(
                self.running(),
                "the daemon exited before it started: {}",
                self.log()
            );
            Err("no start logged yet".to_owned())
        })
        .await;
        started.unwrap_or_else(|e| panic!("{e}; its log:\n{}", self.log()));
    }

    /// Waits for the daemon to exit by itself; returns its exit code.
    pub async fn exits_within(&mut self, limit: Duration) -> Option<i32> {
        self.wait(limit).await.code()
    }

    /// SIGTERM, then asserts a clean exit (status 0 within 10 s, no panic);
    /// returns the whole log.
    pub async fn stop(mut self) -> String {
        self.sigterm();
        let code = self.exits_within(Duration::from_secs(10)).await;
        let log = self.log();
        assert_eq!(code, Some(0), "{log}");
        assert!(!log.contains("panicked"), "{log}");
        log
    }

    /// Hands the child over to a caller that manages it itself (no kill on drop).
    pub fn into_child(mut self) -> Child {
        self.child.take().expect("the child is still owned")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(None) = child.try_wait()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
