//! Poll results dropped as stale, judged over windows of real time.
//!
//! A result is stale when the lease it was polled under ended before it was
//! written (see `store/record`): the fence drops it, correctly, and the issuance
//! is polled again. Now and then that is normal (a paused daemon, a slow write).
//! A meaningful share of them means the watcher is working for nothing, e.g. a
//! lease shorter than the API's latency, and that must be said (a warning, `/healthz`,
//! `status`), never only counted.
//!
//! Pure: the caller supplies the instants, so the judgement is tested without I/O.

use std::time::{Duration, Instant};

/// The span over which the share is judged.
pub const WINDOW: Duration = Duration::from_secs(10);
/// A window in which at least this share of results was dropped...
const PROBLEM_SHARE: f64 = 0.10;
/// ...and at least this many, so that one unlucky result is not a problem.
const PROBLEM_MIN: u64 = 3;

/// Results written and dropped in the current window, and the last verdict.
#[derive(Debug, Clone)]
pub struct StaleWindow {
    started: Instant,
    results: u64,
    stale: u64,
    problem: Option<String>,
}

/// How a closed window changed the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A share of results worth saying was dropped (the text says how many).
    Problem(String),
    /// The previous window's problem is over.
    Cleared,
}

impl StaleWindow {
    pub fn new(now: Instant) -> Self {
        Self {
            started: now,
            results: 0,
            stale: 0,
            problem: None,
        }
    }

    /// Adds a write of `results` poll results of which `stale` were dropped.
    /// When the window has run its length, judges it, starts the next one and
    /// returns the change of verdict, if any. A problem is returned for every
    /// window it persists in, so that its warning repeats while it lasts.
    pub fn add(&mut self, now: Instant, results: u64, stale: u64) -> Option<Change> {
        self.results += results;
        self.stale += stale.min(results);
        if now.duration_since(self.started) < WINDOW {
            return None;
        }
        let had_problem = self.problem.is_some();
        let verdict = judge(self.results, self.stale);
        *self = Self {
            problem: verdict.clone(),
            ..Self::new(now)
        };
        match verdict {
            Some(text) => Some(Change::Problem(text)),
            None if had_problem => Some(Change::Cleared),
            None => None,
        }
    }

    /// The last closed window's problem, if it had one.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }
}

/// The problem a window with `results` written and `stale` of them dropped
/// shows, if any.
pub fn judge(results: u64, stale: u64) -> Option<String> {
    let share = if results == 0 {
        0.0
    } else {
        stale as f64 / results as f64
    };
    (stale >= PROBLEM_MIN && share >= PROBLEM_SHARE).then(|| {
        format!(
            "{stale} of {results} poll results in the last {} s were dropped as stale: their leases ended before the answers came back (poll.lease too short for the API's latency, or the clock runs ahead)",
            WINDOW.as_secs()
        )
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_meaningful_share_is_a_problem_and_a_few_are_not() {
        assert_eq!(judge(0, 0), None);
        assert_eq!(judge(1000, 2), None, "too few to matter");
        assert_eq!(judge(1000, 99), None, "under a tenth");
        let text = judge(469, 468).unwrap();
        assert!(text.starts_with("468 of 469 poll results"), "{text}");
        assert!(judge(30, 3).is_some());
    }

    #[test]
    fn a_window_is_judged_when_it_ends_and_a_problem_repeats_then_clears() {
        let t0 = Instant::now();
        let mut window = StaleWindow::new(t0);
        assert_eq!(window.add(t0 + Duration::from_secs(1), 100, 90), None);
        assert_eq!(window.problem(), None, "judged only when the window ends");
        let Some(Change::Problem(text)) = window.add(t0 + WINDOW, 10, 10) else {
            panic!("expected a problem");
        };
        assert!(text.starts_with("100 of 110"), "{text}");
        assert!(window.problem().is_some());
        let next = t0 + WINDOW * 2;
        assert!(matches!(window.add(next, 50, 50), Some(Change::Problem(_))));
        assert_eq!(window.add(next + WINDOW, 50, 0), Some(Change::Cleared));
        assert_eq!(window.problem(), None);
        assert_eq!(window.add(next + WINDOW * 2, 50, 0), None);
    }

    proptest! {
        /// Whatever arrives, a verdict needs at least the minimum count and
        /// share, and never counts more stale results than results.
        #[test]
        fn a_problem_needs_the_minimum_count_and_share(
            batches in prop::collection::vec((0u64..200, 0u64..200, 0u64..4000), 1..40)
        ) {
            let t0 = Instant::now();
            let mut window = StaleWindow::new(t0);
            let mut at = t0;
            let (mut results, mut stale) = (0u64, 0u64);
            for (n, s, ms) in batches {
                at += Duration::from_millis(ms);
                results += n;
                stale += s.min(n);
                let closed = at.duration_since(window.started) >= WINDOW;
                let change = window.add(at, n, s);
                if closed {
                    let expected = stale >= PROBLEM_MIN && stale as f64 >= PROBLEM_SHARE * results as f64;
                    prop_assert_eq!(window.problem().is_some(), expected);
                    results = 0;
                    stale = 0;
                } else {
                    prop_assert_eq!(change, None);
                }
            }
        }
    }
}
