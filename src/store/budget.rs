//! The API's request budget, shared by every daemon on one database.
//!
//! `api.requests_per_second` is the account's budget at Bunjang, not each
//! daemon's. One row (`api_budget`) holds the next free request *slot* on the
//! database's clock; a daemon takes a few consecutive slots at a time (a
//! [`Grant`], at most ~100 ms of its rate, so the database is not asked per
//! request), moving the row past them, and sends one request in each slot.
//! Since slots are handed out once each, `1 / rate` apart, the daemons
//! together send at most `rate` requests in any second, plus the lateness a
//! sender allows itself (`watcher::pacing`: a slot is used within 25 ms of its
//! time or not at all). There is no saved-up burst: a slot in the past is
//! never handed out (this is GCRA, a token bucket of depth one).
//!
//! A pause (a 429's `Retry-After`, refused credentials) is written into the
//! same row, so every daemon sees it at its next grant, and a daemon started
//! meanwhile waits too.
//!
//! The decisions ([`take`], [`pause`]) are pure functions of the row and the
//! database's `now`; each engine reads the row under a lock (SQLite's
//! `BEGIN IMMEDIATE`, PostgreSQL's `FOR UPDATE`), applies them and writes the
//! row back in the same transaction.

use std::time::Duration;

use super::{Store, StoreError, engine};

/// Microseconds since the Unix epoch, on the database's clock.
pub type Micros = i64;

/// A next slot further ahead of `now` than this (or than 1000 slots, at a
/// slow rate) means the clock jumped back (SQLite: the host's clock was set
/// back): the row is restarted from `now` rather than holding every daemon
/// back for as long. Legitimately each daemon holds at most one grant (100 ms
/// of its rate, or one slot) ahead, so it would take hundreds of daemons.
pub const MAX_AHEAD: Micros = 60_000_000;

fn ahead_limit(interval: Micros) -> Micros {
    MAX_AHEAD.max(interval.saturating_mul(1000))
}

/// The shared row, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetRow {
    /// The next slot not yet handed out.
    pub next_slot: Micros,
    /// No request before this.
    pub paused_until: Option<Micros>,
    /// Why (`retry_after`, `auth`).
    pub pause_reason: Option<String>,
}

/// What one daemon got from the row: `count` slots from `first`, `interval`
/// apart (`count` is 0 while paused), and the pause in force, all on the
/// database's clock, whose reading was `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub now: Micros,
    pub first: Micros,
    pub count: u32,
    pub interval: Micros,
    pub paused_until: Option<Micros>,
    pub pause_reason: Option<String>,
}

impl Grant {
    /// The pause in force at `now`, if any.
    pub fn pause_left(&self) -> Option<Duration> {
        self.paused_until
            .filter(|p| *p > self.now)
            .map(|p| micros(p - self.now))
    }

    /// How long after `now` the first slot is.
    pub fn first_in(&self) -> Duration {
        micros(self.first.saturating_sub(self.now))
    }
}

fn micros(us: Micros) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// The slot interval of a rate, in microseconds (at least 1).
pub fn interval_of(requests_per_second: f64) -> Micros {
    let us = 1e6 / requests_per_second.max(1e-6);
    // Rounded up: never faster than the rate.
    (us.ceil() as Micros).clamp(1, 86_400_000_000)
}

/// Takes up to `want` slots `interval` apart at `now`: the row afterwards and
/// what was granted. Nothing while a pause lasts; otherwise at least one.
pub fn take(row: &BudgetRow, now: Micros, want: u32, interval: Micros) -> (BudgetRow, Grant) {
    let interval = interval.max(1);
    let paused_until = row.paused_until.filter(|p| *p > now);
    if paused_until.is_some() {
        let grant = Grant {
            now,
            first: row.next_slot.max(now),
            count: 0,
            interval,
            paused_until,
            pause_reason: row.pause_reason.clone(),
        };
        return (row.clone(), grant);
    }
    let next = if row.next_slot > now.saturating_add(ahead_limit(interval)) {
        now
    } else {
        row.next_slot
    };
    let first = next.max(now);
    let count = want.max(1);
    let after = first.saturating_add(interval.saturating_mul(Micros::from(count)));
    let new = BudgetRow {
        next_slot: after,
        // A pause that has ended is forgotten.
        paused_until: None,
        pause_reason: None,
    };
    let grant = Grant {
        now,
        first,
        count,
        interval,
        paused_until: None,
        pause_reason: None,
    };
    (new, grant)
}

/// Pauses every daemon for `wait` from `now` (never shortening a longer pause):
/// the row afterwards, and whether this lengthened the pause.
pub fn pause(row: &BudgetRow, now: Micros, wait: Duration, reason: &str) -> (BudgetRow, bool) {
    let wait = Micros::try_from(wait.as_micros()).unwrap_or(Micros::MAX);
    let until = now.saturating_add(wait);
    if row.paused_until.is_some_and(|p| p >= until) {
        return (row.clone(), false);
    }
    let new = BudgetRow {
        next_slot: row.next_slot,
        paused_until: Some(until),
        pause_reason: Some(reason.to_owned()),
    };
    (new, true)
}

impl Store {
    /// Takes up to `want` request slots `interval` µs apart from the budget
    /// all daemons on this database share (see the module doc).
    pub async fn take_budget(&self, want: u32, interval: Micros) -> Result<Grant, StoreError> {
        engine!(self, db => db.take_budget(want, interval).await)
    }

    /// Pauses every daemon on this database for `wait` from the database's
    /// now (a longer pause in force stays). Returns whether this lengthened it.
    pub async fn pause_budget(&self, wait: Duration, reason: &str) -> Result<bool, StoreError> {
        engine!(self, db => db.pause_budget(wait, reason).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slots_follow_each_other_and_never_start_in_the_past() {
        let row = BudgetRow::default();
        let (row, a) = take(&row, 1_000_000, 5, 20_000);
        assert_eq!((a.first, a.count), (1_000_000, 5));
        assert_eq!(row.next_slot, 1_100_000);
        // Another daemon a moment later queues behind.
        let (row, b) = take(&row, 1_010_000, 5, 20_000);
        assert_eq!(b.first, 1_100_000);
        assert_eq!(b.first_in(), Duration::from_millis(90));
        // Idle for a while: no saved-up burst, the next slot is now.
        let (_, c) = take(&row, 5_000_000, 5, 20_000);
        assert_eq!(c.first, 5_000_000);
    }

    #[test]
    fn a_pause_grants_nothing_until_it_ends_and_is_never_shortened() {
        let row = BudgetRow::default();
        let (row, lengthened) = pause(&row, 1_000_000, Duration::from_secs(30), "retry_after");
        assert!(lengthened);
        let (row, lengthened) = pause(&row, 2_000_000, Duration::from_secs(5), "auth");
        assert!(!lengthened, "a shorter wait does not shorten it");
        let (same, g) = take(&row, 2_000_000, 5, 1000);
        assert_eq!(
            (g.count, g.pause_left()),
            (0, Some(Duration::from_secs(29)))
        );
        assert_eq!(g.pause_reason.as_deref(), Some("retry_after"));
        assert_eq!(same, row);
        let (after, g) = take(&row, 31_000_000, 5, 1000);
        assert_eq!((g.count, g.first, g.pause_left()), (5, 31_000_000, None));
        assert_eq!(after.paused_until, None);
    }

    #[test]
    fn a_slot_far_ahead_after_the_clock_went_back_restarts_from_now() {
        let row = BudgetRow {
            next_slot: 100_000_000_000,
            ..BudgetRow::default()
        };
        let (_, g) = take(&row, 1_000_000, 1, 1000);
        assert_eq!(g.first, 1_000_000);
    }

    #[test]
    fn intervals_round_up() {
        assert_eq!(interval_of(150.0), 6667);
        assert_eq!(interval_of(50.0), 20_000);
        assert_eq!(interval_of(0.0), 86_400_000_000);
    }

    proptest! {
        /// Whoever takes, in whatever order, with whatever sizes: no two
        /// slots closer than the interval, and every window of one second
        /// holds at most `rate` slots.
        #[test]
        fn takers_together_never_exceed_the_rate(
            takes in prop::collection::vec((0i64..50_000, 1u32..20, prop::bool::ANY), 1..200),
            rate in 1u32..600,
        ) {
            let interval = interval_of(f64::from(rate));
            let mut row = BudgetRow::default();
            let mut now = 1_000_000_000;
            let mut slots = Vec::new();
            for (step, want, paused) in takes {
                now += step;
                if paused {
                    row = pause(&row, now, Duration::from_millis(30), "retry_after").0;
                }
                let (next, grant) = take(&row, now, want, interval);
                prop_assert!(grant.first >= now);
                if let Some(until) = row.paused_until.filter(|p| *p > now) {
                    prop_assert_eq!(grant.count, 0);
                    prop_assert!(until > now);
                }
                for i in 0..grant.count {
                    slots.push(grant.first + interval * Micros::from(i));
                }
                row = next;
            }
            slots.sort_unstable();
            for pair in slots.windows(2) {
                prop_assert!(pair[1] - pair[0] >= interval);
            }
            let rate = rate as usize;
            for (i, start) in slots.iter().enumerate() {
                let within = slots[i..].iter().take_while(|s| **s < start + 1_000_000).count();
                prop_assert!(within <= rate, "{} slots in the second from {}", within, start);
            }
        }
    }
}
