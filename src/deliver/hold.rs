//! A sink held by this daemon: its hold's fence, when to renew it, and
//! whether attempts may start. The holder renews every quarter of the
//! sink's `lease` and starts attempts only while its last renewal is younger
//! than three quarters of it, on the monotonic clock, which runs on while a
//! process is stopped: so a daemon that resumes after a freeze starts
//! nothing before it knows it still holds the sink.

use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;
use tracing::debug;

use crate::store::{SinkHold, Store};

/// How often a daemon that does not hold a sink tries to take it, and soon
/// after a failed renewal it tries again.
pub const TAKE_RETRY: Duration = Duration::from_millis(500);

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
    pub fn new(hold: SinkHold, taken_at: Instant, lease: Duration) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn attempts_start_for_three_quarters_of_the_lease_and_renewal_comes_at_a_quarter() {
        let taken = Instant::now();
        let lease = Duration::from_secs(4);
        let hold = SinkHold {
            sink: "shop".into(),
            fence: 1,
        };
        let mut holding = Holding::new(hold, taken, lease);
        assert_eq!(holding.renew_at() - taken, Duration::from_secs(1));
        assert_eq!(holding.valid_until() - taken, Duration::from_secs(3));
        assert!(holding.valid());
        // Not renewed (stopped, or the database away): no attempt starts
        // before another daemon could take the sink.
        tokio::time::advance(Duration::from_millis(2999)).await;
        assert!(holding.valid());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!holding.valid());
        holding.lost = true;
        assert!(!holding.valid());
    }
}
