//! The demo's live rate of transitions.

use std::time::{Duration, Instant};

/// Transitions per second over the last [`RecentRate::SPAN`] of samples of a
/// running count. One 250 ms step holds a transition or none, so a rate per
/// step would read 0 most of the time while statuses change.
#[derive(Debug, Default)]
pub(super) struct RecentRate {
    samples: std::collections::VecDeque<(Instant, u64)>,
}

impl RecentRate {
    const SPAN: Duration = Duration::from_secs(5);

    /// Adds the count at `now` and returns the rate over the span kept.
    pub(super) fn add(&mut self, now: Instant, count: u64) -> f64 {
        self.samples.push_back((now, count));
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > Self::SPAN)
        {
            self.samples.pop_front();
        }
        let (first_at, first) = self.samples.front().copied().unwrap_or((now, count));
        let seconds = now.duration_since(first_at).as_secs_f64();
        if seconds <= 0.0 {
            return 0.0;
        }
        count.saturating_sub(first) as f64 / seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_transitions_show_as_a_rate_over_the_span_not_as_zero() {
        let t0 = Instant::now();
        let mut rate = RecentRate::default();
        assert_eq!(rate.add(t0, 0), 0.0);
        // One transition in the first of twenty 250 ms steps, none after.
        let mut last = 0.0;
        for step in 1..=20u32 {
            last = rate.add(t0 + Duration::from_millis(250) * step, 1);
        }
        assert!((last - 0.2).abs() < 1e-9, "1 transition in 5 s: {last}");
        // Older samples leave the span: the rate falls back to zero.
        let later = t0 + Duration::from_secs(11);
        rate.add(later - Duration::from_secs(1), 1);
        assert_eq!(rate.add(later, 1), 0.0);
    }
}
