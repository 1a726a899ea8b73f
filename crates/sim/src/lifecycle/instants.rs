//! Instants and spans in milliseconds since the Unix epoch (UTC), and the KST
//! calendar the API lives in. KST has been a fixed UTC+9 since 1988, so day
//! boundaries are plain integer arithmetic.

use chrono::{DateTime, FixedOffset, Utc};

/// Korea Standard Time, in milliseconds east of UTC.
pub const KST_OFFSET_MS: i64 = 9 * 3_600_000;
pub(super) const DAY_MS: i64 = 86_400_000;
pub(super) const HOUR_MS: i64 = 3_600_000;

/// 23:59:59 KST on the day `lead_days` after the KST day of `created_ms`.
pub fn due_date_ms(created_ms: i64, lead_days: u32) -> i64 {
    let kst_day = (created_ms + KST_OFFSET_MS).div_euclid(DAY_MS);
    (kst_day + i64::from(lead_days) + 1) * DAY_MS - 1_000 - KST_OFFSET_MS
}

pub(super) fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Uniform in `[lo, hi]` (swapped if given backwards).
pub(super) fn uniform_ms(rng: &mut fastrand::Rng, lo: i64, hi: i64) -> i64 {
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    rng.i64(lo..=hi)
}

/// The API's datetime format: naive KST, second precision, no offset.
pub fn format_kst(ms: i64) -> String {
    let kst = FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset");
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) => t
            .with_timezone(&kst)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string(),
        None => "1970-01-01T09:00:00".to_owned(),
    }
}

/// Unix milliseconds of an RFC 3339 instant, for the lifecycle's tests.
#[cfg(test)]
pub(super) fn ms(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("a test's RFC 3339 instant")
        .timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_due_date_is_the_end_of_the_next_kst_day() {
        for (created, days, due) in [
            // 2023-10-27 10:00 KST
            ("2023-10-27T01:00:00Z", 1, "2023-10-28T23:59:59"),
            // 2023-10-27 23:30 KST is 14:30 UTC the same day: still the 27th in Seoul.
            ("2023-10-27T14:30:00Z", 1, "2023-10-28T23:59:59"),
            // 2023-10-28 00:30 KST is still the 27th in UTC.
            ("2023-10-27T15:30:00Z", 1, "2023-10-29T23:59:59"),
            ("2023-10-27T01:00:00Z", 0, "2023-10-27T23:59:59"),
        ] {
            assert_eq!(
                format_kst(due_date_ms(ms(created), days)),
                due,
                "{created} + {days}"
            );
        }
    }

    #[test]
    fn datetimes_are_naive_kst_truncated_to_seconds() {
        assert_eq!(
            format_kst(ms("2023-10-27T01:00:05.999Z")),
            "2023-10-27T10:00:05"
        );
    }
}
