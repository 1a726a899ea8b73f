//! Deadline flags on READY issuances, decided from plain values.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::flag::FlagKind;
use crate::domain::status::Status;

/// Which flags should be up for an issuance in `status` due at `due_at`, at `now`.
/// Only READY issuances are ever flagged; an issuance that is past due is also
/// due soon (it was, before; a late first sighting raises both).
pub fn flags_that_apply(
    status: Option<Status>,
    due_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    due_soon_lead: Duration,
) -> Vec<FlagKind> {
    let (Some(Status::Ready), Some(due)) = (status, due_at) else {
        return Vec::new();
    };
    let lead = chrono::Duration::from_std(due_soon_lead).unwrap_or(chrono::TimeDelta::MAX);
    let mut kinds = Vec::new();
    if due - now <= lead {
        kinds.push(FlagKind::DueSoon);
    }
    if now > due {
        kinds.push(FlagKind::Overdue);
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const LEAD: Duration = Duration::from_secs(6 * 3600);

    fn due() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 14, 59, 59).unwrap()
    }

    fn at(offset_from_due_secs: i64) -> DateTime<Utc> {
        due() + chrono::Duration::seconds(offset_from_due_secs)
    }

    #[test]
    fn ready_far_from_the_deadline_is_not_flagged() {
        assert!(flags_that_apply(Some(Status::Ready), Some(due()), at(-7 * 3600), LEAD).is_empty());
    }

    #[test]
    fn due_soon_applies_from_exactly_the_lead_time() {
        assert!(
            flags_that_apply(Some(Status::Ready), Some(due()), at(-6 * 3600 - 1), LEAD).is_empty()
        );
        assert_eq!(
            flags_that_apply(Some(Status::Ready), Some(due()), at(-6 * 3600), LEAD),
            [FlagKind::DueSoon]
        );
        assert_eq!(
            flags_that_apply(Some(Status::Ready), Some(due()), at(0), LEAD),
            [FlagKind::DueSoon]
        );
    }

    #[test]
    fn past_the_deadline_and_still_ready_is_overdue() {
        assert_eq!(
            flags_that_apply(Some(Status::Ready), Some(due()), at(1), LEAD),
            [FlagKind::DueSoon, FlagKind::Overdue]
        );
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
                flags_that_apply(status, Some(due()), at(3600), LEAD).is_empty(),
                "{status:?}"
            );
        }
        assert!(flags_that_apply(Some(Status::Ready), None, at(3600), LEAD).is_empty());
    }
}
