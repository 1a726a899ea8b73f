//! Business time, separate from the wall clock so that a day-long issuance
//! lifecycle can play out in seconds (the demo, the simulator, benchmarks).
//!
//! A [`Clock`] maps real elapsed time onto a simulated timeline running `speed`
//! times faster than real time. Production uses [`Clock::real`] (speed 1, no
//! offset). Everything that reasons about due dates, poll times and stored
//! instants asks the clock; only transport concerns (HTTP timeouts, JWT `iat`,
//! the request-rate limiter) use real time, because the API's limits are real.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// A (possibly accelerated) source of "now".
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin_real: Instant,
    origin: DateTime<Utc>,
    speed: f64,
}

impl Clock {
    /// The wall clock.
    pub fn real() -> Self {
        Self::accelerated(Utc::now(), 1.0)
    }

    /// A timeline that starts at `origin` now and runs `speed` times faster than real time.
    pub fn accelerated(origin: DateTime<Utc>, speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Self {
            origin_real: Instant::now(),
            origin,
            speed,
        }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    pub fn now(&self) -> DateTime<Utc> {
        if self.speed == 1.0 {
            // Follow the wall clock exactly (including jumps) in production.
            return Utc::now();
        }
        let elapsed = self.origin_real.elapsed().mul_f64(self.speed);
        self.origin + chrono::Duration::from_std(elapsed).unwrap_or(chrono::TimeDelta::MAX)
    }

    /// How long to really wait for `simulated` time to pass.
    pub fn real_duration(&self, simulated: Duration) -> Duration {
        simulated.div_f64(self.speed)
    }

    /// How much simulated time passes during `real` time.
    pub fn simulated_duration(&self, real: Duration) -> Duration {
        real.mul_f64(self.speed)
    }

    /// How long to really wait until the simulated instant `at` (zero if it has passed).
    pub fn real_until(&self, at: DateTime<Utc>) -> Duration {
        match (at - self.now()).to_std() {
            Ok(d) => self.real_duration(d),
            Err(_) => Duration::ZERO,
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::real()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accelerated_clock_converts_between_simulated_and_real_durations() {
        let clock = Clock::accelerated(Utc::now(), 3600.0);
        assert_eq!(
            clock.real_duration(Duration::from_secs(3600)),
            Duration::from_secs(1)
        );
        assert_eq!(
            clock.simulated_duration(Duration::from_millis(10)),
            Duration::from_secs(36)
        );
    }

    #[test]
    fn accelerated_clock_runs_faster_than_real_time() {
        let origin = Utc::now();
        let clock = Clock::accelerated(origin, 1000.0);
        std::thread::sleep(Duration::from_millis(20));
        let advanced = clock.now() - origin;
        assert!(
            advanced >= chrono::Duration::seconds(19),
            "advanced only {advanced}"
        );
    }

    #[test]
    fn nonsense_speed_falls_back_to_real_time() {
        assert_eq!(Clock::accelerated(Utc::now(), 0.0).speed(), 1.0);
        assert_eq!(Clock::accelerated(Utc::now(), f64::NAN).speed(), 1.0);
    }
}
