//! Deadline flags on READY issuances, decided from plain values.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::flag::Flag;
use crate::domain::status::Status;
use crate::settings::LeadLadder;

/// Which flags should be up for an issuance in `status` due at `due_at`, at
/// `now`: a DUE_SOON for every rung of the ladder whose lead has begun
/// (longest first: a late first sighting raises every rung it has passed, so
/// each rung is announced once), and OVERDUE once the due date has passed.
/// Only READY issuances are ever flagged; a past-due issuance is also due soon.
pub fn flags_that_apply(
    status: Option<Status>,
    due_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    ladder: &LeadLadder,
) -> Vec<Flag> {
    let (Some(Status::Ready), Some(due)) = (status, due_at) else {
        return Vec::new();
    };
    let mut flags: Vec<Flag> = ladder
        .rungs()
        .iter()
        .filter(|lead| due - now <= chrono_lead(**lead))
        .map(|lead| Flag::due_soon(*lead))
        .collect();
    if now > due {
        flags.push(Flag::overdue());
    }
    flags
}

/// The rung whose lead begins next after `now` (the one the policy should
/// poll exactly at); the shortest rung once every lead has begun.
pub fn next_rung(
    ladder: &LeadLadder,
    due_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Duration {
    let rungs = ladder.rungs();
    let shortest = rungs[rungs.len() - 1];
    let Some(due) = due_at else {
        return ladder.longest();
    };
    rungs
        .iter()
        .copied()
        .find(|lead| due - chrono_lead(*lead) > now)
        .unwrap_or(shortest)
}

fn chrono_lead(lead: Duration) -> chrono::Duration {
    crate::domain::time::span(lead)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn hours(n: u64) -> Duration {
        Duration::from_secs(n * 3600)
    }

    fn six() -> LeadLadder {
        LeadLadder::single(hours(6))
    }

    fn ladder() -> LeadLadder {
        LeadLadder::new(vec![hours(24), hours(3), Duration::from_secs(1800)]).unwrap()
    }

    fn due() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 14, 59, 59).unwrap()
    }

    fn at(offset_from_due_secs: i64) -> DateTime<Utc> {
        due() + chrono::Duration::seconds(offset_from_due_secs)
    }

    fn ready(now: DateTime<Utc>, ladder: &LeadLadder) -> Vec<Flag> {
        flags_that_apply(Some(Status::Ready), Some(due()), now, ladder)
    }

    #[test]
    fn ready_far_from_the_deadline_is_not_flagged() {
        assert!(ready(at(-7 * 3600), &six()).is_empty());
    }

    #[test]
    fn due_soon_applies_from_exactly_the_lead_time() {
        assert!(ready(at(-6 * 3600 - 1), &six()).is_empty());
        assert_eq!(ready(at(-6 * 3600), &six()), [Flag::due_soon(hours(6))]);
        assert_eq!(ready(at(0), &six()), [Flag::due_soon(hours(6))]);
    }

    #[test]
    fn past_the_deadline_and_still_ready_is_overdue() {
        assert_eq!(
            ready(at(1), &six()),
            [Flag::due_soon(hours(6)), Flag::overdue()]
        );
    }

    #[test]
    fn each_rung_of_a_ladder_applies_from_its_own_lead() {
        let l = ladder();
        assert!(ready(at(-24 * 3600 - 1), &l).is_empty());
        assert_eq!(ready(at(-24 * 3600), &l), [Flag::due_soon(hours(24))]);
        assert_eq!(
            ready(at(-3 * 3600), &l),
            [Flag::due_soon(hours(24)), Flag::due_soon(hours(3))]
        );
        assert_eq!(ready(at(-1800), &l).len(), 3);
        assert_eq!(ready(at(1), &l).last(), Some(&Flag::overdue()));
    }

    #[test]
    fn the_next_rung_is_the_next_lead_to_begin() {
        let l = ladder();
        let next = |secs| next_rung(&l, Some(due()), at(secs));
        assert_eq!(next(-48 * 3600), hours(24));
        assert_eq!(next(-24 * 3600), hours(3));
        assert_eq!(next(-2 * 3600), Duration::from_secs(1800));
        assert_eq!(next(-60), Duration::from_secs(1800));
        assert_eq!(next_rung(&l, None, at(0)), hours(24));
    }

    #[test]
    fn nothing_but_ready_is_ever_flagged() {
        for status in [
            None,
            Some(Status::Waited),
            Some(Status::Done),
            Some(Status::Cancelled),
            Some(Status::Fail),
        ] {
            assert!(
                flags_that_apply(status, Some(due()), at(3600), &six()).is_empty(),
                "{status:?}"
            );
        }
        assert!(flags_that_apply(Some(Status::Ready), None, at(3600), &six()).is_empty());
    }
}
