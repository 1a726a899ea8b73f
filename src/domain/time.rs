//! Durations at the edges of the program, in one place: the one saturating
//! conversion from `std` to `chrono` durations (and the instant arithmetic
//! built on it), the one `Retry-After` parser, the API's one cap on it, and
//! the one way a duration is printed for a person.
//!
//! Invariant: nothing here panics, whatever the input: settings are
//! range-checked at load, but no setting, API date or header may become a
//! panic through an overflow.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

/// The longest `Retry-After` from the Bunjang API that is honoured (real
/// time): a longer one is taken as this, so a wrong header cannot stop
/// polling for days.
pub const API_RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// `d` as a chrono duration, saturating at the longest chrono can hold.
pub fn span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

/// `at + d`, saturating at the latest instant chrono can hold.
pub fn after(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at.checked_add_signed(span(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `at - d`, saturating at the earliest instant chrono can hold.
pub fn before(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at.checked_sub_signed(span(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A `Retry-After` value (RFC 9110 §10.2.3): delay-seconds, or an HTTP date in
/// any of its three forms (IMF-fixdate, RFC 850, asctime), as the wait from
/// `now` (zero for a date in the past). `None` for anything else. Uncapped:
/// each caller applies its own cap.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A duration as a person writes it in the settings: its largest whole unit
/// (`"10m"`, `"36h"`, `"3650d"`, `"1500ms"`).
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    let (unit, per) = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ]
    .into_iter()
    .find(|(_, per)| ms >= *per && ms.is_multiple_of(*per))
    .unwrap_or(("ms", 1));
    format!("{}{unit}", ms / per)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(unix: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn retry_after_reads_seconds_and_all_three_http_date_forms() {
        // Sun, 06 Nov 1994 08:49:37 GMT, 30 s after `now`.
        let now = at(784_111_747);
        for (value, what) in [
            ("Sun, 06 Nov 1994 08:49:37 GMT", "IMF-fixdate"),
            ("Sunday, 06-Nov-94 08:49:37 GMT", "RFC 850"),
            ("Sun Nov  6 08:49:37 1994", "asctime"),
            ("30", "delay-seconds"),
            (" 30 ", "delay-seconds with spaces"),
        ] {
            assert_eq!(
                parse_retry_after(value, now),
                Some(Duration::from_secs(30)),
                "{what}: {value}"
            );
        }
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at(784_111_800)),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        for garbage in ["soon", "-3", "", "1.5", "Sun, 06 Nov 1994 25:49:37 GMT"] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
    }

    #[test]
    fn durations_print_in_their_largest_whole_unit() {
        for (d, text) in [
            (Duration::from_secs(600), "10m"),
            (Duration::from_secs(36 * 3600), "36h"),
            (Duration::from_secs(3650 * 86_400), "3650d"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::ZERO, "0ms"),
        ] {
            assert_eq!(human(d), text);
        }
    }

    proptest! {
        /// Printed durations read back as themselves (settings use humantime).
        #[test]
        fn a_printed_duration_reads_back(ms in 0u64..10_000_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(humantime::parse_duration(&human(d)).unwrap(), d);
        }

        /// Saturating arithmetic never panics, for any instant and duration.
        #[test]
        fn instant_arithmetic_saturates(secs in any::<u64>(), offset in -8_000_000_000_000i64..8_000_000_000_000) {
            let Some(at) = DateTime::from_timestamp(offset / 1000, 0) else { return Ok(()); };
            let d = Duration::from_secs(secs);
            prop_assert!(after(at, d) >= at);
            prop_assert!(before(at, d) <= at);
        }

        /// An IMF-fixdate written for an instant reads back as the wait until it.
        #[test]
        fn an_imf_fixdate_round_trips(now in 0u64..4_000_000_000, wait in 0u64..1_000_000) {
            let text = httpdate::fmt_http_date(at(now + wait));
            prop_assert_eq!(parse_retry_after(&text, at(now)), Some(Duration::from_secs(wait)));
        }
    }
}
