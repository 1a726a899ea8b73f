//! The systemd notification protocol (`sd_notify`): `READY=1` once the daemon
//! is really ready, `STATUS=` lines, `WATCHDOG=1` pings while the scheduler
//! loop makes progress, `STOPPING=1` on shutdown.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op. Sending never
//! fails the daemon: a lost notification is logged and otherwise ignored.
//! The socket is read from the environment once, at start, so tests can point
//! a notifier at a socket of their own without touching process-wide variables.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::ops::health::Liveness;

/// The smallest ping interval used, whatever `WATCHDOG_USEC` says.
const MIN_PING_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Message {
    Ready(String),
    Status(String),
    Watchdog,
    Stopping,
}

/// A handle on the service manager's notification socket.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<PathBuf>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, and `WATCHDOG_USEC` / `WATCHDOG_PID` (the watchdog is
    /// on only when `WATCHDOG_PID` is unset or names this process).
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty());
        Self::with_socket(socket.map(PathBuf::from), sd_notify::watchdog_enabled())
    }

    /// A notifier that sends to `socket` (none: sends nothing), expecting pings
    /// within `watchdog` if given.
    pub fn with_socket(socket: Option<PathBuf>, watchdog: Option<Duration>) -> Self {
        Self {
            watchdog: watchdog.filter(|_| socket.is_some()),
            socket,
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// The watchdog timeout systemd expects pings within, if it set one.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// `READY=1` with a first status line.
    pub async fn ready(&self, status: String) {
        self.send(Message::Ready(status)).await;
    }

    pub async fn status(&self, status: String) {
        self.send(Message::Status(status)).await;
    }

    pub async fn watchdog_ping(&self) {
        self.send(Message::Watchdog).await;
    }

    pub async fn stopping(&self) {
        self.send(Message::Stopping).await;
    }

    async fn send(&self, message: Message) {
        let Some(socket) = self.socket.clone() else {
            return;
        };
        // The socket send is blocking (a full queue would block): keep it off the runtime.
        let sent = tokio::task::spawn_blocking({
            let message = message.clone();
            move || {
                let line = |s: &str| s.replace(['\n', '\r'], " ");
                match &message {
                    Message::Ready(s) => {
                        let s = line(s);
                        notify(&socket, &[NotifyState::Ready, NotifyState::Status(&s)])
                    }
                    Message::Status(s) => notify(&socket, &[NotifyState::Status(&line(s))]),
                    Message::Watchdog => notify(&socket, &[NotifyState::Watchdog]),
                    Message::Stopping => notify(
                        &socket,
                        &[NotifyState::Stopping, NotifyState::Status("stopping")],
                    ),
                }
            }
        })
        .await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => match message {
                Message::Ready(_) | Message::Stopping => {
                    warn!(error = %e, "cannot notify systemd")
                }
                _ => debug!(error = %e, "cannot notify systemd"),
            },
            Err(e) => debug!(error = %e, "the notification task failed"),
        }
    }
}

/// One datagram, one `KEY=VALUE` line per state, as `sd_notify(3)` sends it.
/// `socket` is a path or, starting with `@`, a name in Linux's abstract
/// namespace (what systemd hands to services in some containers and chroots).
fn notify(socket: &Path, states: &[NotifyState<'_>]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt as _;
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::net::SocketAddr;

    let message: String = states.iter().map(|s| format!("{s}\n")).collect();
    let datagram = UnixDatagram::unbound()?;
    match socket.as_os_str().as_bytes().strip_prefix(b"@") {
        Some(name) => datagram.connect_addr(&SocketAddr::from_abstract_name(name)?)?,
        None => datagram.connect(socket)?,
    }
    let sent = datagram.send(message.as_bytes())?;
    if sent != message.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "incomplete notification",
        ));
    }
    Ok(())
}

/// Pings the watchdog every quarter timeout, but only while `liveness` says the
/// scheduler loop makes progress: a stalled loop stops the pings and systemd
/// restarts the daemon. Returns at once when systemd set no watchdog.
///
/// A quarter, not the half `sd_watchdog_enabled(3)` suggests: each wait starts
/// after a send, so pings every half timeout would arrive a little later than
/// that, and a busy machine would push them towards the deadline.
pub async fn watchdog(notifier: Arc<Notifier>, liveness: Liveness, token: CancellationToken) {
    let Some(timeout) = notifier.watchdog_timeout() else {
        return;
    };
    let every = (timeout / 4).max(MIN_PING_EVERY);
    info!(timeout = ?timeout, "systemd watchdog enabled");
    let mut stalled = false;
    loop {
        // Not started yet (the first turn comes right after READY=1): no ping, no alarm.
        let started = liveness.progress().last_loop().is_some();
        match liveness.loop_problem(Utc::now()).filter(|_| started) {
            None if !started => {}
            None => {
                if stalled {
                    info!("the scheduler loop makes progress again: watchdog pings resume");
                    stalled = false;
                }
                notifier.watchdog_ping().await;
            }
            Some(problem) => {
                if !stalled {
                    error!(
                        problem,
                        "withholding watchdog pings: systemd will restart the daemon if this lasts"
                    );
                    stalled = true;
                }
            }
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Instant;

    use super::*;
    use crate::ops::progress::Progress;

    #[tokio::test]
    async fn an_abstract_notify_socket_gets_the_message_too() {
        use std::os::linux::net::SocketAddrExt as _;
        use std::os::unix::net::SocketAddr;

        let name = format!("issuance-watcher-test-{}", std::process::id());
        let manager =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        manager
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let notifier = Notifier::with_socket(Some(PathBuf::from(format!("@{name}"))), None);
        notifier.ready("started".to_owned()).await;
        let mut buf = [0u8; 256];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            "READY=1\nSTATUS=started\n"
        );
    }

    /// A fake service manager: binds `notify.sock` in `dir` and hands on every
    /// datagram with the instant it arrived.
    fn listen(dir: &Path) -> (PathBuf, mpsc::Receiver<(Instant, String)>) {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx.send((Instant::now(), message)).is_err() {
                    break;
                }
            }
        });
        (path, rx)
    }

    fn pings(rx: &mpsc::Receiver<(Instant, String)>) -> Vec<Instant> {
        rx.try_iter()
            .filter(|(_, m)| m == "WATCHDOG=1\n")
            .map(|(at, _)| at)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pings_come_within_half_the_timeout_while_the_loop_turns_and_stop_when_it_stalls() {
        let dir = tempfile::tempdir().unwrap();
        let (socket, rx) = listen(dir.path());
        let timeout = Duration::from_millis(1000);
        let stall_after = Duration::from_millis(300);
        let notifier = Arc::new(Notifier::with_socket(Some(socket), Some(timeout)));
        let progress = Arc::new(Progress::default());
        let liveness = Liveness::new(progress.clone(), stall_after);
        let token = CancellationToken::new();
        let dog = tokio::spawn(watchdog(notifier, liveness, token.clone()));

        // Before the loop's first turn: nothing to vouch for yet.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let early = pings(&rx);
        assert!(
            early.is_empty(),
            "pinged before the loop ever turned: {early:?}"
        );

        let turning = CancellationToken::new();
        let turner = tokio::spawn({
            let (progress, turning) = (progress.clone(), turning.clone());
            async move {
                loop {
                    progress.loop_turned();
                    tokio::select! {
                        () = turning.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(20)) => {}
                    }
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(2500)).await;
        turning.cancel();
        turner.await.unwrap();
        let stopped_at = Instant::now();
        let while_turning = pings(&rx);
        assert!(while_turning.len() >= 5, "{} pings", while_turning.len());
        let largest_gap = while_turning.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(
            largest_gap < timeout / 2,
            "{largest_gap:?} between two pings, the timeout is {timeout:?}"
        );

        tokio::time::sleep(Duration::from_millis(2000)).await;
        token.cancel();
        dog.await.unwrap();
        // The loop counts as stalled `stall_after` after its last turn; one ping
        // already under way may still land, then nothing.
        let quiet_from = stopped_at + stall_after + timeout / 4 + Duration::from_millis(150);
        let late: Vec<_> = pings(&rx)
            .into_iter()
            .filter(|at| *at > quiet_from)
            .map(|at| at - stopped_at)
            .collect();
        assert!(
            late.is_empty(),
            "pings after the loop stopped turning: {late:?}"
        );
    }
}
