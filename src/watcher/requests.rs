//! The daemon's second loop, beside the polling one: it performs the charge
//! requests other programs insert into `charge_requests` (one at a time, each
//! at most once: see `charges.rs`), makes requests of dead performers
//! `unknown`, and polls the balance every `balance.interval`, after which the
//! top-up rule may ask for a charge (`top_up_step.rs`). Its API
//! requests take their turn in the same global rate as the polls.

use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::balance::crossed_below;
use super::charges::{Charger, perform};
use super::scheduler::Watcher;
use crate::store::Topic;

/// How often requests in flight of vanished performers are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

impl Watcher {
    /// Runs until `shutdown`; a request already claimed is finished first
    /// (its answer recorded), so a clean stop never leaves one `sending`.
    pub async fn run_requests(&self, shutdown: CancellationToken) {
        let ctx = self.context();
        let settings = &ctx.settings;
        let store = self.store();
        let charger = Charger {
            store,
            client: &ctx.client,
            settings,
            clock: ctx.clock,
            pacer: Some(&ctx.pacer),
        };
        // A request without a recorded answer this long after it was sent
        // (and whose performer's liveness cannot be read) is given up on.
        let stale_after = crate::domain::time::span(
            settings.api.timeout.saturating_mul(2) + Duration::from_secs(60),
        );
        let mut last_balance = store.last_balance().await.unwrap_or_else(|e| {
            warn!(error = %e, "cannot read the last balance");
            None
        });
        let mut next_balance = Instant::now();
        let mut next_sweep = Instant::now();
        let recheck = settings.poll.idle_recheck.max(Duration::from_millis(100));
        // Requests other programs insert, at once on PostgreSQL.
        let mut wake_up = store.wake_up(Topic::Charges);
        // Nothing is sent before this daemon is known alive (its ownership):
        // should it die after sending, its requests must be seen as a dead
        // sender's and made `unknown` at once.
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = ctx.progress.ownership() => {}
        }
        // A suspension recorded before this start is reported at once.
        self.note_top_up_suspension().await;
        while !shutdown.is_cancelled() {
            if Instant::now() >= next_sweep {
                let now = Utc::now();
                let swept = tokio::select! {
                    () = shutdown.cancelled() => return,
                    swept = store.sweep_charge_requests(now, now - stale_after) => swept,
                };
                match swept {
                    Ok(0) => {}
                    Ok(n) => {
                        warn!(
                            requests = n,
                            "charge requests whose performer died before recording an answer are now `unknown`: a charge may exist for each; check before asking again"
                        )
                    }
                    Err(e) => warn!(error = %e, "cannot look for abandoned charge requests"),
                }
                next_sweep = Instant::now() + SWEEP_EVERY;
            }
            // Look with a read first (cancellable at shutdown); claim only
            // then, and never abandon a claim: a claimed request is sent and
            // its answer recorded before this loop looks at `shutdown` again.
            loop {
                let pending = tokio::select! {
                    () = shutdown.cancelled() => return,
                    pending = store.any_pending_charge_request() => pending,
                };
                match pending {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        warn!(error = %e, "cannot look for charge requests");
                        break;
                    }
                }
                match store.claim_charge_request(Utc::now()).await {
                    Ok(Some(request)) => {
                        info!(
                            request = request.id,
                            amount = request.amount,
                            "performing a charge request from the database"
                        );
                        let _ = perform(&charger, request).await;
                        self.note_top_up_suspension().await;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(error = %e, "cannot claim a charge request");
                        break;
                    }
                }
                if shutdown.is_cancelled() {
                    return;
                }
            }
            if let Some(interval) = settings.balance.interval
                && Instant::now() >= next_balance
            {
                next_balance = Instant::now() + interval;
                let asked_at = ctx.clock.now();
                let answer = tokio::select! {
                    () = shutdown.cancelled() => return,
                    answer = async {
                        ctx.pacer.acquire().await;
                        ctx.client.balance().await
                    } => answer,
                };
                match answer {
                    Ok(balance) => {
                        crate::ops::metrics::balance(balance.balance, balance.expiring_30d);
                        let threshold = settings.balance.low_threshold;
                        let low = crossed_below(last_balance, balance.balance, threshold)
                            .then_some(threshold);
                        let recorded = tokio::select! {
                            () = shutdown.cancelled() => return,
                            recorded = store.record_balance(
                                ctx.clock.now(),
                                balance.balance,
                                balance.expiring_30d,
                                low,
                            ) => recorded,
                        };
                        match recorded {
                            Ok(()) => {
                                last_balance = Some(balance.balance);
                                if low.is_some() {
                                    warn!(
                                        balance = balance.balance,
                                        threshold, "point balance fell below balance.low_threshold"
                                    );
                                    ctx.progress.events_committed();
                                }
                                if settings.top_up.enabled()
                                    && self.top_up_step(balance.balance, asked_at).await
                                {
                                    // Its request is performed at once, below.
                                    continue;
                                }
                            }
                            Err(e) => warn!(error = %e, "cannot record the balance"),
                        }
                    }
                    Err(e) => warn!(error = %e, "cannot read the point balance"),
                }
            }
            let wake = match settings.balance.interval {
                Some(_) => next_balance.min(Instant::now() + recheck),
                None => Instant::now() + recheck,
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wake_up.changed() => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}
