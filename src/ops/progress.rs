//! Liveness facts the scheduler publishes and health checks read: when the loop
//! last turned, when a poll last succeeded, whether authentication works,
//! whether a meaningful share of poll results is dropped as stale. Atomics, and
//! one mutex around the stale-result window held for a few instructions (never
//! across an await), so reading it can never stall the loop. Beside them: the webhook
//! sinks' state ([`SinkHealth`]) and a wake-up for their workers when a batch
//! with new facts (hence new events) has committed.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use crate::ops::sinks::SinkHealth;
use crate::ops::stale::{Change, StaleWindow};

#[derive(Debug, Default)]
pub struct Progress {
    /// Real time (Unix ms) the scheduler loop last completed an iteration.
    loop_turned_ms: AtomicI64,
    /// Real time (Unix ms) of the last poll that got an answer from the API.
    last_success_ms: AtomicI64,
    auth_failing: AtomicBool,
    /// Real time (Unix ms) until which all polling is paused (Retry-After or an
    /// auth pause): the loop legitimately sleeps through it, which is no stall.
    paused_until_ms: AtomicI64,
    polls: AtomicU64,
    transitions: AtomicU64,
    /// Poll results written and dropped as stale, judged per window.
    stale: std::sync::Mutex<Option<StaleWindow>>,
    /// The webhook sinks, as their workers report them.
    pub sinks: SinkHealth,
    /// Notified after a commit that wrote events (transitions, flags).
    committed: tokio::sync::Notify,
    /// Why the scheduler's last claim or write failed, until one succeeds
    /// (the database unreachable, e.g. a PostgreSQL restart).
    database: std::sync::Mutex<Option<String>>,
    /// Set once the scheduler has taken its ownership (or tried): until then
    /// no charge request may be sent, since a sender not yet known alive
    /// would, should it die, leave its request `sending` instead of `unknown`.
    started: AtomicBool,
    started_now: tokio::sync::Notify,
    /// Why the top-up rule is suspended, as last read from the database.
    top_up_suspended: std::sync::Mutex<Option<String>>,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn from_ms(ms: i64) -> Option<DateTime<Utc>> {
    (ms != 0)
        .then(|| DateTime::from_timestamp_millis(ms))
        .flatten()
}

impl Progress {
    /// The scheduler holds its ownership (or could not take one, and said so).
    pub fn ownership_taken(&self) {
        self.started.store(true, Ordering::Release);
        self.started_now.notify_waiters();
    }

    /// Resolves once [`Progress::ownership_taken`] was called.
    pub async fn ownership(&self) {
        loop {
            let notified = self.started_now.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.started.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    pub fn loop_turned(&self) {
        self.loop_turned_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn poll_answered(&self) {
        self.last_success_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn polled(&self, n: u64) {
        self.polls.fetch_add(n, Ordering::Relaxed);
    }

    /// A write of `results` poll results, `stale` of which were dropped because
    /// their leases had ended. Returns how the verdict on stale results changed,
    /// when a window closed (see [`crate::ops::stale`]). `now` is real time.
    pub fn results_written(
        &self,
        now: std::time::Instant,
        results: u64,
        stale: u64,
    ) -> Option<Change> {
        let mut window = self.stale.lock().unwrap_or_else(|e| e.into_inner());
        window
            .get_or_insert_with(|| StaleWindow::new(now))
            .add(now, results, stale)
    }

    /// The last closed window's stale-result problem, if it had one.
    pub fn stale_problem(&self) -> Option<String> {
        let window = self.stale.lock().unwrap_or_else(|e| e.into_inner());
        window.as_ref()?.problem().map(str::to_owned)
    }

    pub fn transitions_recorded(&self, n: u64) {
        self.transitions.fetch_add(n, Ordering::Relaxed);
    }

    /// A batch that wrote facts (and so events) has committed: wakes the
    /// delivery workers waiting for new events.
    pub fn events_committed(&self) {
        self.committed.notify_waiters();
    }

    /// Resolves at the next [`Progress::events_committed`].
    pub async fn next_commit(&self) {
        self.committed.notified().await;
    }

    /// The scheduler's last claim or write failed (`Some(why)`) or worked.
    pub fn set_database_problem(&self, problem: Option<String>) {
        *self.database.lock().unwrap_or_else(|e| e.into_inner()) = problem;
    }

    /// Records whether the top-up rule is suspended (`Some(why)`); returns
    /// whether that is news (it was not suspended before, as known here).
    pub fn set_top_up_suspended(&self, why: Option<String>) -> bool {
        let mut held = self
            .top_up_suspended
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let news = held.is_none() && why.is_some();
        *held = why;
        news
    }

    /// Why the top-up rule is suspended, while it is.
    pub fn top_up_suspended(&self) -> Option<String> {
        self.top_up_suspended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Why the database fails the scheduler, while it does.
    pub fn database_problem(&self) -> Option<String> {
        self.database
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_auth_failing(&self, failing: bool) {
        self.auth_failing.store(failing, Ordering::Relaxed);
    }

    /// Polling is paused for `pause` from now (a longer earlier pause is kept).
    pub fn paused_for(&self, pause: std::time::Duration) {
        let until = crate::domain::time::after(Utc::now(), pause);
        self.paused_until_ms
            .fetch_max(until.timestamp_millis(), Ordering::Relaxed);
    }

    /// Until when polling was last paused (possibly in the past).
    pub fn paused_until(&self) -> Option<DateTime<Utc>> {
        from_ms(self.paused_until_ms.load(Ordering::Relaxed))
    }

    pub fn last_loop(&self) -> Option<DateTime<Utc>> {
        from_ms(self.loop_turned_ms.load(Ordering::Relaxed))
    }

    pub fn last_success(&self) -> Option<DateTime<Utc>> {
        from_ms(self.last_success_ms.load(Ordering::Relaxed))
    }

    pub fn auth_failing(&self) -> bool {
        self.auth_failing.load(Ordering::Relaxed)
    }

    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Progress;

    #[tokio::test]
    async fn waiting_for_the_ownership_ends_when_it_is_taken_and_not_before() {
        let progress = Arc::new(Progress::default());
        let waiter = tokio::spawn({
            let progress = progress.clone();
            async move { progress.ownership().await }
        });
        tokio::task::yield_now().await;
        assert!(
            !waiter.is_finished(),
            "nothing is sent before the ownership"
        );
        progress.ownership_taken();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the wait ends once it is taken")
            .unwrap();
        // Taken before anyone waits: the wait ends at once.
        tokio::time::timeout(Duration::from_secs(5), progress.ownership())
            .await
            .expect("already taken");
    }
}
