//! Whether the running daemon is making progress ([`Liveness`]), judged from
//! the [`Progress`] facts the watcher publishes: for the systemd watchdog and
//! `/healthz`. Pure reads of atomics, so a check can never stall the loop.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ops::progress::Progress;
use crate::settings::Settings;

/// Whether the scheduler loop is making progress, judged from [`Progress`].
#[derive(Debug, Clone)]
pub struct Liveness {
    progress: Arc<Progress>,
    stall_after: Duration,
}

impl Liveness {
    pub fn new(progress: Arc<Progress>, stall_after: Duration) -> Self {
        Self {
            progress,
            stall_after,
        }
    }

    /// The longest the loop may legitimately go without turning outside a pause:
    /// a poll's timeout, a database wait and a rate slot, with room to spare,
    /// plus the idle re-check. With the defaults about 31 s.
    pub fn stall_after(settings: &Settings) -> Duration {
        let slot = Duration::from_secs_f64((1.0 / settings.api.requests_per_second).min(3600.0));
        2 * (settings.api.timeout + settings.database.busy_timeout + slot)
            + settings.poll.idle_recheck
    }

    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    /// `None` while the loop turns (or sleeps through a known pause), else why not.
    pub fn loop_problem(&self, now: DateTime<Utc>) -> Option<String> {
        let Some(last) = self.progress.last_loop() else {
            return Some("the scheduler loop has not started".into());
        };
        let limit = crate::domain::time::span(self.stall_after);
        let age = now - last;
        if age <= limit {
            return None;
        }
        // Polling paused (Retry-After or an auth pause): the loop sleeps until then.
        if let Some(until) = self.progress.paused_until()
            && until >= last
            && now <= until + limit
        {
            return None;
        }
        Some(format!(
            "the scheduler loop has not turned for {} s",
            age.num_seconds()
        ))
    }

    /// `None` when healthy: the loop makes progress, the database answers
    /// its claims and writes, the API accepts our
    /// credentials, poll results are not dropped as stale in a meaningful share,
    /// no webhook sink has failed for longer than its threshold and the
    /// top-up rule is not suspended (a person must look).
    pub fn health_problem(&self, now: DateTime<Utc>) -> Option<String> {
        if let Some(problem) = self.loop_problem(now) {
            return Some(problem);
        }
        if let Some(problem) = self.progress.database_problem() {
            return Some(problem);
        }
        if self.progress.auth_failing() {
            return Some("the API refuses our credentials (401/403)".to_owned());
        }
        if let Some(problem) = self.progress.stale_problem() {
            return Some(problem);
        }
        if let Some(why) = self.progress.top_up_suspended() {
            return Some(format!(
                "the top-up rule is suspended: {why}; after checking, run `issuance-watcher top-up resume`"
            ));
        }
        self.progress.sinks.problem(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_never_turned_or_stopped_turning_is_a_problem() {
        let progress = Arc::new(Progress::default());
        let liveness = Liveness::new(progress.clone(), Duration::from_secs(10));
        let now = Utc::now();
        assert!(liveness.loop_problem(now).unwrap().contains("not started"));
        progress.loop_turned();
        assert_eq!(liveness.loop_problem(Utc::now()), None);
        assert_eq!(liveness.health_problem(Utc::now()), None);
        let later = Utc::now() + chrono::Duration::seconds(60);
        assert!(
            liveness
                .loop_problem(later)
                .unwrap()
                .contains("has not turned")
        );
        assert!(liveness.health_problem(later).is_some());
    }

    #[test]
    fn a_suspended_top_up_rule_is_unhealthy_but_not_a_stall() {
        let progress = Arc::new(Progress::default());
        progress.loop_turned();
        let liveness = Liveness::new(progress.clone(), Duration::from_secs(10));
        assert!(progress.set_top_up_suspended(Some("request 4 is unknown".into())));
        assert!(
            !progress.set_top_up_suspended(Some("request 4 is unknown".into())),
            "news once"
        );
        assert_eq!(liveness.loop_problem(Utc::now()), None);
        let problem = liveness.health_problem(Utc::now()).unwrap();
        assert!(
            problem.contains("top-up rule is suspended: request 4 is unknown"),
            "{problem}"
        );
        assert!(
            problem.contains("`issuance-watcher top-up resume`"),
            "{problem}"
        );
        progress.set_top_up_suspended(None);
        assert_eq!(liveness.health_problem(Utc::now()), None);
    }

    #[test]
    fn failing_auth_is_unhealthy_but_not_a_stall() {
        let progress = Arc::new(Progress::default());
        progress.loop_turned();
        progress.set_auth_failing(true);
        let liveness = Liveness::new(progress, Duration::from_secs(10));
        assert_eq!(liveness.loop_problem(Utc::now()), None);
        assert!(
            liveness
                .health_problem(Utc::now())
                .unwrap()
                .contains("credentials")
        );
    }

    #[test]
    fn a_window_with_many_stale_results_is_unhealthy_until_a_clean_one() {
        let progress = Arc::new(Progress::default());
        progress.loop_turned();
        let liveness = Liveness::new(progress.clone(), Duration::from_secs(60));
        let t0 = std::time::Instant::now();
        progress.results_written(t0, 469, 468);
        assert_eq!(
            liveness.health_problem(Utc::now()),
            None,
            "the window is open"
        );
        progress.results_written(t0 + crate::ops::stale::WINDOW, 0, 0);
        let problem = liveness.health_problem(Utc::now()).unwrap();
        assert!(problem.contains("468 of 469 poll results"), "{problem}");
        progress.results_written(t0 + crate::ops::stale::WINDOW * 2, 100, 0);
        assert_eq!(liveness.health_problem(Utc::now()), None);
    }

    #[test]
    fn default_stall_threshold_is_about_half_a_minute() {
        let settings = Settings::load_with_env(None, Vec::new()).unwrap();
        let stall = Liveness::stall_after(&settings);
        assert!(
            stall >= Duration::from_secs(20) && stall <= Duration::from_secs(60),
            "{stall:?}"
        );
    }
}
