//! PostgreSQL: the wake-ups' listener (see `store/wake.rs`). One task per
//! store, started by the first [`PgStore::wake_up`], `LISTEN`s on a
//! connection of its own (`application_name` [`LISTENER_NAME`]) and wakes the
//! topic each notification names.
//!
//! sqlx's `PgListener` reconnects by itself, but silently: notifications sent
//! while it was disconnected are lost and nobody is told. So this task
//! reconnects itself instead (`eager_reconnect(false)`, a new listener each
//! time) and wakes every topic when the connection is lost (the loops look,
//! fail, and report the database as unreachable) and again once `LISTEN` is
//! in place on the new one (the loops read again: the catch-up).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio_util::sync::CancellationToken;

use super::PgStore;
use crate::store::wake::{Hub, Topic, WakeUp};

/// The channel the schema's triggers notify on.
pub const CHANNEL: &str = "issuance_watcher";

/// The listening session's `application_name`, as `pg_stat_activity` shows it.
pub const LISTENER_NAME: &str = "issuance-watcher listen";

/// Waits between attempts to connect again: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(2);
/// How long one attempt to connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl PgStore {
    /// Wake-ups on `topic`; the first call starts the listener.
    pub fn wake_up(&self, topic: Topic) -> WakeUp {
        let hub = self.wake.get_or_init(|| {
            let hub = Arc::new(Hub::new());
            tokio::spawn(listen(
                self.options.clone(),
                hub.clone(),
                self.stop_listening.clone(),
            ));
            hub
        });
        hub.subscribe(topic)
    }
}

/// Listens until `stop`, reconnecting as long as it takes.
async fn listen(options: PgConnectOptions, hub: Arc<Hub>, stop: CancellationToken) {
    let options = options.application_name(LISTENER_NAME);
    let mut retry = RETRY_FIRST;
    loop {
        let connected = tokio::select! {
            () = stop.cancelled() => return,
            connected = tokio::time::timeout(CONNECT_TIMEOUT, connect(&options)) => connected,
        };
        let (pool, mut listener) = match connected {
            Ok(Ok(connected)) => connected,
            outcome => {
                let error = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {CONNECT_TIMEOUT:?}"),
                };
                tracing::debug!(error = %error, retry_in = ?retry, "cannot listen for wake-ups");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(RETRY_LAST);
                continue;
            }
        };
        retry = RETRY_FIRST;
        tracing::debug!("listening for wake-ups");
        // Whatever was inserted while nobody listened: read it now.
        hub.wake_all();
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => {
                    drop(listener);
                    let _ = tokio::time::timeout(Duration::from_secs(1), pool.close()).await;
                    return;
                }
                next = listener.try_recv() => next,
            };
            match next {
                Ok(Some(notification)) => hub.notified(notification.payload()),
                outcome => {
                    let error = match outcome {
                        Err(e) => e.to_string(),
                        _ => "the connection was closed".to_owned(),
                    };
                    tracing::warn!(error = %error, "lost the database connection that listens for wake-ups; reconnecting");
                    // The loops look now: they find the database gone (and
                    // say so), or read what they may have missed.
                    hub.wake_all();
                    break;
                }
            }
        }
        drop(listener);
        drop(pool);
    }
}

/// A listener on a pool of one connection of its own, `LISTEN`ing.
async fn connect(options: &PgConnectOptions) -> Result<(PgPool, PgListener), sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    listener.listen(CHANNEL).await?;
    Ok((pool, listener))
}
