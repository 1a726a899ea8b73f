//! The systemd notification protocol (`sd_notify`, via the `sd-notify` crate):
//! `READY=1` once the daemon is really ready, `STATUS=` lines, `WATCHDOG=1`
//! pings while the scheduler loop makes progress, `STOPPING=1` on shutdown.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op. Sending never
//! fails the daemon: a lost notification is logged and otherwise ignored.

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

/// A handle on the service manager's notification socket, read from the environment once.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, and `WATCHDOG_USEC` / `WATCHDOG_PID` (the watchdog is
    /// on only when `WATCHDOG_PID` is unset or names this process).
    pub fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        Self {
            enabled,
            watchdog: sd_notify::watchdog_enabled().filter(|_| enabled),
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    pub fn enabled(&self) -> bool {
        self.enabled
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
        if !self.enabled {
            return;
        }
        // The socket send is blocking (a full queue would block): keep it off the runtime.
        let sent = tokio::task::spawn_blocking({
            let message = message.clone();
            move || {
                let line = |s: &str| s.replace(['\n', '\r'], " ");
                match &message {
                    Message::Ready(s) => {
                        let s = line(s);
                        sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(&s)])
                    }
                    Message::Status(s) => sd_notify::notify(&[NotifyState::Status(&line(s))]),
                    Message::Watchdog => sd_notify::notify(&[NotifyState::Watchdog]),
                    Message::Stopping => {
                        sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("stopping")])
                    }
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

/// Pings the watchdog every half timeout, but only while `liveness` says the
/// scheduler loop makes progress: a stalled loop stops the pings and systemd
/// restarts the daemon. Returns at once when systemd set no watchdog.
pub async fn watchdog(notifier: Arc<Notifier>, liveness: Liveness, token: CancellationToken) {
    let Some(timeout) = notifier.watchdog_timeout() else {
        return;
    };
    let every = (timeout / 2).max(MIN_PING_EVERY);
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
