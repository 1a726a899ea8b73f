//! Politeness towards the API, shared by every poll: a global request rate and a
//! global pause (after a 429 / Retry-After, or while credentials are refused).
//!
//! Runs on tokio's clock (real time), so tests with paused time control it,
//! and it is independent of the accelerated business clock: the API's limits are real.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
struct State {
    /// The next free request slot.
    next_slot: Instant,
    /// No request may be sent before this.
    paused_until: Option<Instant>,
    /// Consecutive 401/403 answers, for the doubling auth pause.
    auth_failures: u32,
}

/// What a pause was for, so the caller can log once and clearly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseChange {
    /// This answer started (or lengthened) a pause.
    Started(Duration),
    Unchanged,
}

#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    auth_pause: Duration,
    auth_pause_max: Duration,
    state: Mutex<State>,
}

impl Pacer {
    pub fn new(requests_per_second: f64, auth_pause: Duration, auth_pause_max: Duration) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / requests_per_second.max(1e-6)),
            auth_pause,
            auth_pause_max,
            state: Mutex::new(State {
                next_slot: Instant::now(),
                paused_until: None,
                auth_failures: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the state is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a request slot outside any pause. Slots are handed out in order;
    /// a pause that starts while waiting is honoured before sending.
    pub async fn acquire(&self) {
        loop {
            let slot = {
                let mut state = self.lock();
                let now = Instant::now();
                let earliest = state.paused_until.filter(|p| *p > now).unwrap_or(now);
                let slot = state.next_slot.max(earliest);
                state.next_slot = slot + self.interval;
                slot
            };
            // tokio's timer rounds a deadline up to its next millisecond tick, so
            // sleeping until a slot that is already here would still cost up to 1 ms.
            if slot > Instant::now() {
                tokio::time::sleep_until(slot).await;
            }
            let paused = self.lock().paused_until.is_some_and(|p| p > Instant::now());
            if !paused {
                return;
            }
        }
    }

    /// When polling may resume, if it is paused now.
    pub fn paused_until(&self) -> Option<Instant> {
        self.lock().paused_until.filter(|p| *p > Instant::now())
    }

    /// The API said to wait (`Retry-After`): nobody sends before then.
    pub fn retry_after(&self, wait: Duration) -> PauseChange {
        self.extend_pause(from_now(wait))
    }

    /// Credentials or clock refused: pause everything, doubling while it persists.
    /// Returns the pause length this failure imposes.
    pub fn auth_failed(&self) -> Duration {
        let pause = {
            let mut state = self.lock();
            state.auth_failures = state.auth_failures.saturating_add(1);
            let exponent = (state.auth_failures - 1).min(20);
            self.auth_pause
                .saturating_mul(1 << exponent)
                .min(self.auth_pause_max)
        };
        self.extend_pause(from_now(pause));
        pause
    }

    /// An answer that was not an auth failure: authentication works.
    /// Returns whether it had been failing.
    pub fn auth_ok(&self) -> bool {
        let mut state = self.lock();
        std::mem::replace(&mut state.auth_failures, 0) > 0
    }

    pub fn auth_failing(&self) -> bool {
        self.lock().auth_failures > 0
    }

    fn extend_pause(&self, until: Instant) -> PauseChange {
        let mut state = self.lock();
        if state.paused_until.is_some_and(|p| p >= until) {
            return PauseChange::Unchanged;
        }
        state.paused_until = Some(until);
        PauseChange::Started(until.saturating_duration_since(Instant::now()))
    }
}

/// `wait` from now; a wait past what an `Instant` can hold (settings are
/// range-checked, but a pause must never become a panic) ends in 30 years.
fn from_now(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_global_rate() {
        let pacer = Pacer::new(10.0, Duration::from_secs(1), Duration::from_secs(8));
        let start = Instant::now();
        for _ in 0..5 {
            pacer.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_sent_inside_a_retry_after_window() {
        let pacer = Pacer::new(1000.0, Duration::from_secs(1), Duration::from_secs(8));
        let start = Instant::now();
        assert!(matches!(
            pacer.retry_after(Duration::from_secs(30)),
            PauseChange::Started(_)
        ));
        assert_eq!(
            pacer.retry_after(Duration::from_secs(5)),
            PauseChange::Unchanged,
            "a shorter wait does not shorten it"
        );
        pacer.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_that_starts_while_waiting_is_honoured() {
        let pacer = std::sync::Arc::new(Pacer::new(
            1.0,
            Duration::from_secs(1),
            Duration::from_secs(8),
        ));
        pacer.acquire().await; // takes the immediate slot; the next is 1 s away
        let waiting = tokio::spawn({
            let pacer = pacer.clone();
            async move {
                let start = Instant::now();
                pacer.acquire().await;
                start.elapsed()
            }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        pacer.retry_after(Duration::from_secs(10));
        assert!(waiting.await.unwrap() >= Duration::from_millis(10_500));
    }

    #[tokio::test(start_paused = true)]
    async fn auth_pauses_double_up_to_the_maximum_and_reset_on_success() {
        let pacer = Pacer::new(100.0, Duration::from_secs(1), Duration::from_secs(5));
        let pauses: Vec<_> = (0..5).map(|_| pacer.auth_failed().as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 5, 5]);
        assert!(pacer.auth_failing() && pacer.paused_until().is_some());
        assert!(pacer.auth_ok());
        assert!(!pacer.auth_ok());
        assert_eq!(pacer.auth_failed(), Duration::from_secs(1));
    }
}
