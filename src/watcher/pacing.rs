//! Politeness towards the API, shared by every poll: a global request rate and a
//! global pause (after a 429 / Retry-After, or while credentials are refused).
//!
//! Runs on tokio's clock (real time), so tests with paused time control it,
//! and it is independent of the accelerated business clock: the API's limits are real.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

use crate::store::{Grant, Store, interval_of};

/// How late a request may leave after its slot; a slot missed by more is
/// dropped (never sent late on top of the next daemon's slots). With the
/// shared budget, any one second holds at most `rate × (1 + LATE) + 1`
/// requests as they leave the daemons.
pub const LATE: Duration = Duration::from_millis(25);

/// The most slots one trip to the database takes: this long at the rate.
pub const GRANT_SPAN: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct State {
    /// The next free request slot, pacing alone.
    next_slot: Instant,
    /// Slots granted by the shared budget and not used yet: runs of
    /// (first, how many), `interval` apart, oldest first.
    granted: VecDeque<(Instant, u32)>,
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

/// What `acquire` does next.
enum Step {
    Wait(Instant),
    /// Send in this slot; take the next grant meanwhile if `low`.
    Send {
        slot: Instant,
        low: bool,
    },
    Refill,
}

#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    auth_pause: Duration,
    auth_pause_max: Duration,
    state: Mutex<State>,
    /// The budget all daemons on the database share; `None`: pace alone.
    shared: Option<Store>,
    /// Callers in `acquire` now: how many slots the next grant asks for.
    waiting: AtomicUsize,
    /// One grant at a time.
    refilling: tokio::sync::Mutex<()>,
}

impl Pacer {
    /// A pacer for this process alone (one-off commands, tests).
    pub fn new(requests_per_second: f64, auth_pause: Duration, auth_pause_max: Duration) -> Self {
        Self {
            interval: Duration::from_micros(interval_of(requests_per_second).unsigned_abs()),
            auth_pause,
            auth_pause_max,
            state: Mutex::new(State {
                next_slot: Instant::now(),
                granted: VecDeque::new(),
                paused_until: None,
                auth_failures: 0,
            }),
            shared: None,
            waiting: AtomicUsize::new(0),
            refilling: tokio::sync::Mutex::new(()),
        }
    }

    /// Paces within the budget shared by every daemon on `store`'s database
    /// (`store/budget.rs`), and shares its pauses with them.
    pub fn shared(mut self, store: Store) -> Self {
        self.shared = Some(store);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the state is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most slots one grant takes.
    fn grant_max(&self) -> u32 {
        let n = GRANT_SPAN.as_secs_f64() / self.interval.as_secs_f64().max(1e-9);
        (n.floor() as u32).max(1)
    }

    /// Waits for a request slot outside any pause. Slots are handed out in order;
    /// a pause that starts while waiting is honoured before sending.
    pub async fn acquire(&self) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _done = Waiting(&self.waiting);
        loop {
            let step = self.next_step();
            let slot = match step {
                Step::Wait(until) => {
                    tokio::time::sleep_until(until).await;
                    continue;
                }
                Step::Refill => {
                    self.refill(true).await;
                    continue;
                }
                Step::Send { slot, low } => {
                    // The next grant is fetched while this slot comes, so
                    // that a busy daemon's slots follow without a gap.
                    let prefetch = async {
                        if low {
                            self.refill(false).await;
                        }
                    };
                    // tokio's timer rounds a deadline up to its next millisecond tick, so
                    // sleeping until a slot that is already here would still cost up to 1 ms.
                    let until_slot = async {
                        if slot > Instant::now() {
                            tokio::time::sleep_until(slot).await;
                        }
                    };
                    tokio::join!(prefetch, until_slot);
                    slot
                }
            };
            let now = Instant::now();
            if self.shared.is_some() && now > slot + LATE {
                // Too late for this slot (a stalled task, a slow machine):
                // sending now could land in another daemon's slot.
                crate::ops::metrics::budget_slot_missed();
                continue;
            }
            let paused = self.lock().paused_until.is_some_and(|p| p > now);
            if !paused {
                return;
            }
        }
    }

    fn next_step(&self) -> Step {
        let mut state = self.lock();
        let now = Instant::now();
        if let Some(until) = state.paused_until.filter(|p| *p > now) {
            // Shared: the pause is asked again once it ends (another daemon
            // may have lengthened it); alone, the slot after it is ours.
            if self.shared.is_some() {
                return Step::Wait(until);
            }
        }
        if self.shared.is_none() {
            let earliest = state.paused_until.filter(|p| *p > now).unwrap_or(now);
            let slot = state.next_slot.max(earliest);
            state.next_slot = slot + self.interval;
            return Step::Send { slot, low: false };
        }
        // Slots already too late are dropped unused.
        while let Some((first, left)) = state.granted.front_mut() {
            if *left > 0 && *first + LATE >= now {
                break;
            }
            if *left > 0 {
                *first += self.interval;
                *left -= 1;
            } else {
                state.granted.pop_front();
            }
        }
        let Some((first, left)) = state.granted.front_mut() else {
            return Step::Refill;
        };
        let slot = *first;
        *first += self.interval;
        *left -= 1;
        // Low: what is left ends within half a grant's span.
        let end = state
            .granted
            .back()
            .map_or(now, |(first, left)| *first + self.interval * *left);
        let low = end < now + GRANT_SPAN / 2;
        Step::Send { slot, low }
    }

    /// Takes the next grant from the shared budget, one caller at a time:
    /// when `needed` (no slot left) the others wait for it and use what it
    /// brought; a prefetch (not `needed`) is skipped while another runs.
    async fn refill(&self, needed: bool) {
        let Some(store) = &self.shared else { return };
        let _one = if needed {
            self.refilling.lock().await
        } else {
            match self.refilling.try_lock() {
                Ok(one) => one,
                Err(_) => return,
            }
        };
        {
            let state = self.lock();
            let now = Instant::now();
            let usable = state.granted.iter().any(|(first, left)| {
                *left > 0 && *first + self.interval * (*left - 1) + LATE >= now
            });
            if needed && usable || state.paused_until.is_some_and(|p| p > now) {
                return; // Another caller's grant arrived meanwhile.
            }
        }
        // Enough for those waiting now and as many again to come, within a grant's span.
        let want = u32::try_from(self.waiting.load(Ordering::Relaxed).saturating_mul(2))
            .unwrap_or(u32::MAX)
            .clamp(1, self.grant_max());
        let interval = i64::try_from(self.interval.as_micros()).unwrap_or(i64::MAX);
        match store.take_budget(want, interval).await {
            Ok(grant) => self.granted(&grant),
            Err(e) => {
                // Without the shared budget nothing can be sent safely;
                // polling waits and asks again (the database is needed to
                // record anything anyway).
                warn!(error = %e, "cannot take request slots from the shared budget: waiting");
                crate::ops::metrics::budget_grant(0, true);
                self.lock().paused_until = Some(Instant::now() + GRANT_SPAN);
            }
        }
    }

    /// Takes in a grant: its slots and the pause in force, moved from the
    /// database's clock onto ours. The grant's `now` is placed at the
    /// moment the answer arrived, which is at or after it: slots are then
    /// used at or after their time, never before.
    fn granted(&self, grant: &Grant) {
        let arrived = Instant::now();
        crate::ops::metrics::budget_grant(grant.count, grant.count == 0);
        let mut state = self.lock();
        if let Some(left) = grant.pause_left() {
            let until = arrived + left;
            if state.paused_until.is_none_or(|p| p < until) {
                state.paused_until = Some(until);
                crate::ops::metrics::pause_started("shared");
                warn!(pause = ?left, reason = grant.pause_reason.as_deref(), "another daemon on this database paused polling: waiting");
            }
            return;
        }
        if grant.count > 0 {
            state
                .granted
                .push_back((arrived + grant.first_in(), grant.count));
        }
    }

    /// When polling may resume, if it is paused now.
    pub fn paused_until(&self) -> Option<Instant> {
        self.lock().paused_until.filter(|p| *p > Instant::now())
    }

    /// The API said to wait (`Retry-After`): nobody sends before then.
    pub fn retry_after(&self, wait: Duration) -> PauseChange {
        let change = self.extend_pause(from_now(wait));
        self.publish(wait, "retry_after");
        change
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
        self.publish(pause, "auth");
        pause
    }

    /// Writes a pause into the shared budget, for every other daemon (and
    /// any started meanwhile), in the background: the callers are answers
    /// being classified, which never wait for the database.
    fn publish(&self, wait: Duration, reason: &'static str) {
        let Some(store) = self.shared.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            if let Err(e) = store.pause_budget(wait, reason).await {
                warn!(error = %e, reason, "cannot share a pause with the other daemons on this database");
            }
        });
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

/// Counts a caller out of [`Pacer::acquire`] however it leaves (also when
/// its future is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
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

    /// Shared pacers, on real time: the database's clock is the wall clock.
    mod shared {
        use super::*;
        use crate::store::testing::{second_store, temp_store};

        fn pacer(rate: f64, store: Store) -> std::sync::Arc<Pacer> {
            std::sync::Arc::new(
                Pacer::new(rate, Duration::from_secs(1), Duration::from_secs(8)).shared(store),
            )
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn two_daemons_share_one_rate_and_one_alone_gets_all_of_it() {
            let (store, dir) = temp_store().await;
            let a = pacer(100.0, store);
            let b = pacer(100.0, second_store(&dir).await);
            // Alone: 30 requests at 100/s take about 0.3 s.
            let start = Instant::now();
            for _ in 0..30 {
                a.acquire().await;
            }
            let alone = start.elapsed();
            assert!(alone < Duration::from_millis(450), "{alone:?}");
            // Together: 60 requests take about 0.6 s, not 0.3 s.
            let start = Instant::now();
            let mut both = tokio::task::JoinSet::new();
            for p in [a, b] {
                for _ in 0..6 {
                    let p = p.clone();
                    both.spawn(async move {
                        for _ in 0..5 {
                            p.acquire().await;
                        }
                    });
                }
            }
            both.join_all().await;
            let together = start.elapsed();
            assert!(together >= Duration::from_millis(560), "{together:?}");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_pause_seen_by_one_stops_the_other() {
            let (store, dir) = temp_store().await;
            let a = pacer(100.0, store);
            let b = pacer(100.0, second_store(&dir).await);
            a.retry_after(Duration::from_millis(400));
            // The pause is written in the background.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let start = Instant::now();
            b.acquire().await;
            assert!(
                start.elapsed() >= Duration::from_millis(300),
                "{:?}",
                start.elapsed()
            );
            assert!(b.paused_until().is_none());
        }
    }
}
