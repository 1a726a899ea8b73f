//! Which daemon sends a sink: several daemons on one database each run this
//! loop for every configured sink, and only the one that holds the sink
//! (`store::holders`) runs its worker. The others keep trying to take it, every
//! [`TAKE_RETRY`]: a dead holder's sink is taken at once (its owner lock is
//! free), a frozen one's once its hold ran out (the sink's `lease`).
//!
//! The holder renews its hold and starts attempts only while it is fresh
//! (`hold`); its writes are fenced as well, so whatever it had under way
//! when it froze is not recorded once another daemon took over.

use std::sync::Arc;

use chrono::Utc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::hold::{Holding, TAKE_RETRY};
use super::sinks::{Sink, Sinks, disabled_reason};
use super::worker::{Stopped, Worker};
use crate::domain::timefmt::from_db;
use crate::ops::progress::Progress;
use crate::store::Store;

/// How often a daemon that does not hold a sink mirrors its health (the
/// holder's verdict, from the sink's row) for its own `/healthz`.
const MIRROR_EVERY: u32 = 10;

impl Sinks {
    /// Starts, for each sink, the loop that holds it and runs its worker
    /// while held (`hold_and_deliver`); they stop when `token` is cancelled.
    pub fn start(
        &self,
        store: &Store,
        progress: &Arc<Progress>,
        token: &CancellationToken,
    ) -> TaskTracker {
        let tracker = TaskTracker::new();
        for sink in &self.0 {
            tracker.spawn(hold_and_deliver(
                sink.clone(),
                store.clone(),
                progress.clone(),
                token.clone(),
            ));
        }
        tracker.close();
        tracker
    }
}

/// Takes sink `sink` whenever nobody else may send it and runs its worker
/// while held, until `token` is cancelled; then hands the sink back.
async fn hold_and_deliver(
    sink: Arc<Sink>,
    store: Store,
    progress: Arc<Progress>,
    token: CancellationToken,
) {
    let name = sink.name.clone();
    let lease = sink.lease;
    let mut tries: u32 = 0;
    crate::ops::metrics::sink_held(&name, false);
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
/// follow the sink's row as the holder (or an operator) left it: failing
/// or not, disabled or not.
async fn mirror_health(store: &Store, progress: &Progress, name: &str) {
    let row = match store.sink(name).await {
        Ok(Some(row)) => row,
        Ok(None) => return,
        Err(e) => {
            debug!(sink = %name, error = %e, "cannot read the sink");
            return;
        }
    };
    match row.failing_since.as_deref().and_then(from_db) {
        Some(since) => progress.sinks.failed(
            name,
            since,
            row.last_problem.as_deref().unwrap_or("failing"),
        ),
        None => progress.sinks.delivered(name),
    }
    let disabled = row
        .disabled_at
        .as_deref()
        .map(|at| disabled_reason(&row.disabled_reason, at));
    progress.sinks.set_disabled(name, disabled);
}
