//! `poll.quiet_hours`: the hours of the day (in `api.timezone`) when few people
//! pay, written `"01:00-07:00"`; `""` means none. An assumption about payers,
//! not about the API: READY issuances are polled calmly in these hours (and
//! once right as they end), densely outside them.
//!
//! Invariants: a window is a half-open range of minutes of the local day,
//! `[start, end)`; it may wrap midnight (`"23:00-06:00"`); `start == end` (or
//! `""`) is the empty window, never the whole day.

use std::fmt;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const DAY_MINUTES: u32 = 24 * 60;

/// A daily window of local time, in minutes after midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuietHours {
    start: u32,
    end: u32,
}

impl QuietHours {
    /// The empty window: every hour is a paying hour.
    pub const NONE: QuietHours = QuietHours { start: 0, end: 0 };

    /// `HH:MM-HH:MM` (or empty for none); `None` if malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Some(Self::NONE);
        }
        let (start, end) = text.split_once('-')?;
        Some(Self {
            start: minute_of_day(start.trim())?,
            end: minute_of_day(end.trim())?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// When the window holding `now` (local time in `tz`) ends; `None` when
    /// `now` is outside it. Computed as a number of minutes ahead of `now`, so
    /// a daylight-saving change inside the window moves its end by that hour
    /// at most (Asia/Seoul has none).
    pub fn end_after(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if self.is_empty() {
            return None;
        }
        let local = now.with_timezone(&tz);
        let minute = local.hour() * 60 + local.minute();
        let since_start = (minute + DAY_MINUTES - self.start) % DAY_MINUTES;
        let length = (self.end + DAY_MINUTES - self.start) % DAY_MINUTES;
        if since_start >= length {
            return None;
        }
        let into_minute = chrono::Duration::seconds(i64::from(local.second()))
            + chrono::Duration::nanoseconds(i64::from(local.nanosecond() % 1_000_000_000));
        let ahead = chrono::Duration::minutes(i64::from(length - since_start)) - into_minute;
        now.checked_add_signed(ahead)
    }
}

/// `HH:MM`, 00:00 to 24:00 (24:00 is midnight at the end of the day).
fn minute_of_day(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(0),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return Ok(());
        }
        let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{}-{}", hm(self.start), hm(self.end))
    }
}

impl<'de> Deserialize<'de> for QuietHours {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        QuietHours::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a window of local time: expected \"HH:MM-HH:MM\" such as \"01:00-07:00\", or \"\" for none"
            ))
        })
    }
}

impl Serialize for QuietHours {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn kst(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Seoul
            .with_ymd_and_hms(2026, 11, 26, h, m, s)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn parses_windows_and_refuses_garbage() {
        assert_eq!(QuietHours::parse(""), Some(QuietHours::NONE));
        assert_eq!(
            QuietHours::parse(" 01:00 - 07:30 "),
            Some(QuietHours {
                start: 60,
                end: 450
            })
        );
        assert_eq!(QuietHours::parse("23:00-24:00").unwrap().end, 0);
        for bad in [
            "1-7",
            "01:00",
            "25:00-07:00",
            "01:60-02:00",
            "a:b-c:d",
            "01:00-",
        ] {
            assert_eq!(QuietHours::parse(bad), None, "{bad}");
        }
        let w = QuietHours::parse("01:00-07:00").unwrap();
        assert_eq!(w.to_string(), "01:00-07:00");
        assert_eq!(QuietHours::parse(&w.to_string()), Some(w));
    }

    #[test]
    fn the_end_is_found_inside_the_window_only() {
        let tz = chrono_tz::Asia::Seoul;
        let w = QuietHours::parse("01:00-07:00").unwrap();
        assert_eq!(w.end_after(kst(0, 59, 59), tz), None);
        assert_eq!(w.end_after(kst(1, 0, 0), tz), Some(kst(7, 0, 0)));
        assert_eq!(w.end_after(kst(6, 59, 30), tz), Some(kst(7, 0, 0)));
        assert_eq!(w.end_after(kst(7, 0, 0), tz), None);
        assert_eq!(w.end_after(kst(12, 0, 0), tz), None);
        // Across midnight.
        let night = QuietHours::parse("23:00-06:00").unwrap();
        assert_eq!(night.end_after(kst(5, 0, 0), tz), Some(kst(6, 0, 0)));
        assert_eq!(
            night.end_after(kst(23, 30, 0), tz),
            Some(kst(6, 0, 0) + chrono::Duration::days(1))
        );
        assert_eq!(night.end_after(kst(22, 59, 0), tz), None);
        // The empty window never applies.
        assert_eq!(QuietHours::NONE.end_after(kst(3, 0, 0), tz), None);
    }
}

#[cfg(test)]
mod loading {
    use crate::settings::Settings;

    fn load(quiet: &str) -> Result<Settings, String> {
        Settings::load_with_env(
            None,
            [
                ("ISSUANCE_WATCHER__API__ACCESS_KEY", "k"),
                ("ISSUANCE_WATCHER__POLL__QUIET_HOURS", quiet),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_bad_window_is_refused_naming_the_key_and_a_good_one_loads() {
        let err = load("1am to 7am").unwrap_err();
        assert!(err.contains("poll.quiet_hours"), "{err}");
        assert!(err.contains("HH:MM-HH:MM"), "{err}");
        assert_eq!(load("").unwrap().poll.quiet_hours, super::QuietHours::NONE);
        assert_eq!(
            load("22:30-06:00").unwrap().poll.quiet_hours.to_string(),
            "22:30-06:00"
        );
    }
}
