//! Which daemon sends a sink: several daemons on one database each run this
//! loop for every configured sink, and only the one that holds the sink
//! (`store::holders`) runs its worker. The others keep trying to take it, every
//! [`TAKE_RETRY`]: a dead holder's sink is taken at once (its owner lock is
//! free), a frozen one's once its hold ran out (the sink's `lease`).
//!
//! The holder renews its hold every quarter of the lease, and only sends while
//! its last renewal is younger than three quarters of it ([`Holding::valid`],
//! on the monotonic clock, which runs on while a process is stopped): so a
//! daemon that resumes after a freeze starts no attempt before it knows it
//! still holds the sink. Its writes are fenced as well, so whatever it had
//! under way when it froze is not recorded once another daemon took over.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::sinks::Sink;
use super::worker::{Stopped, Worker};
use crate::ops::progress::Progress;
use crate::store::{SinkHold, Store};

/// How often a daemon that does not hold a sink tries to take it.
pub const TAKE_RETRY: Duration = Duration::from_millis(500);
/// How often a daemon that does not hold a sink mirrors its health (the
/// holder's verdict, from the sink's row) for its own `/healthz`.
const MIRROR_EVERY: u32 = 10;

/// A sink held by this daemon, and what its hold's age allows.
#[derive(Debug)]
pub struct Holding {
    pub hold: SinkHold,
    lease: Duration,
    /// Until when attempts may start (three quarters of the lease after the
    /// last renewal began).
    valid_until: Instant,
    /// When to renew next.
    renew_at: Instant,
    /// Another daemon holds the sink now.
    pub lost: bool,
}

impl Holding {
    fn new(hold: SinkHold, taken_at: Instant, lease: Duration) -> Self {
        Self {
            hold,
            lease,
            valid_until: taken_at + lease * 3 / 4,
            renew_at: taken_at + lease / 4,
            lost: false,
        }
    }

    /// Whether attempts may start now.
    pub fn valid(&self) -> bool {
        !self.lost && Instant::now() < self.valid_until
    }

    /// Until when attempts started now may be sent.
    pub fn valid_until(&self) -> Instant {
        self.valid_until
    }

    /// When the loop must run next to renew in time.
    pub fn renew_at(&self) -> Instant {
        self.renew_at
    }

    /// Renews the hold when due; marks it lost when another daemon took it.
    pub async fn keep(&mut self, store: &Store) {
        let now = Instant::now();
        if self.lost || now < self.renew_at {
            return;
        }
        match store.renew_sink(&self.hold, Utc::now() + self.lease).await {
            Ok(true) => {
                self.valid_until = now + self.lease * 3 / 4;
                self.renew_at = now + self.lease / 4;
            }
            Ok(false) => self.lost = true,
            Err(e) => {
                // Not renewed: attempts stop once the last renewal is too
                // old; the next try comes soon.
                debug!(sink = %self.hold.sink, error = %e, "cannot renew the hold on the sink; retrying");
                self.renew_at = now + TAKE_RETRY.min(self.lease / 8);
            }
        }
    }
}

/// Takes sink `sink` whenever nobody else may send it and runs its worker
/// while held, until `token` is cancelled; then hands the sink back.
pub async fn hold_and_deliver(
    sink: Arc<Sink>,
    store: Store,
    progress: Arc<Progress>,
    token: CancellationToken,
) {
    let name = sink.name.clone();
    let lease = sink.lease;
    let mut tries: u32 = 0;
    while !token.is_cancelled() {
        let taken_at = Instant::now();
        let now = Utc::now();
        match store.take_sink(&name, now, now + lease).await {
            Ok(Some(hold)) => {
                info!(sink = %name, fence = hold.fence, "holding the webhook sink: this daemon sends its deliveries");
                crate::ops::metrics::sink_held(&name, true);
                let holding = Holding::new(hold, taken_at, lease);
                let stopped = Worker::new(&sink, &store, &progress, &token, holding)
                    .run()
                    .await;
                crate::ops::metrics::sink_held(&name, false);
                match stopped {
                    Stopped::Cancelled(hold) => {
                        if let Err(e) = store.release_sink(&hold).await {
                            debug!(sink = %name, error = %e, "cannot hand the sink back; another daemon takes it when its hold runs out");
                        }
                        return;
                    }
                    Stopped::Lost => {
                        warn!(sink = %name, "another daemon holds the webhook sink now (this one was stopped or cut off too long) and sends its deliveries; trying to take it back");
                    }
                }
            }
            Ok(None) => {
                tries = tries.wrapping_add(1);
                if tries % MIRROR_EVERY == 1 {
                    mirror_health(&store, &progress, &name).await;
                }
            }
            Err(e) => debug!(sink = %name, error = %e, "cannot take the webhook sink; retrying"),
        }
        tokio::select! {
            () = token.cancelled() => {}
            () = tokio::time::sleep(TAKE_RETRY) => {}
        }
    }
}

/// While another daemon sends the sink, this one's `/healthz` and metrics
/// follow the holder's verdict as recorded in the sink's row.
async fn mirror_health(store: &Store, progress: &Progress, name: &str) {
    match store.sink(name).await {
        Ok(Some(row)) => match row
            .failing_since
            .as_deref()
            .and_then(crate::domain::timefmt::from_db)
        {
            Some(since) => progress.sinks.failed(
                name,
                since,
                row.last_problem.as_deref().unwrap_or("failing"),
            ),
            None => progress.sinks.delivered(name),
        },
        Ok(None) => {}
        Err(e) => debug!(sink = %name, error = %e, "cannot read the sink"),
    }
}
