//! The two time formats the watcher deals with: the API's naive local datetimes
//! (no offset, Korea time in all likelihood) and the database's single UTC layout.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The one layout for every instant stored in the database: sortable as text.
pub const DB_LAYOUT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// Formats an instant for the database, e.g. `2026-11-25T03:04:05.123Z`.
pub fn to_db(at: DateTime<Utc>) -> String {
    at.format(DB_LAYOUT).to_string()
}

/// An instant as a person in `zone` reads it, with the zone's abbreviation:
/// `2026-12-02 23:59:59 KST` (the zone is `api.timezone`, Korea for Bunjang).
pub fn local(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// A stored instant (see [`from_db`]) in `zone`, or the text as it is when it
/// does not parse (another program wrote it).
pub fn db_local(text: &str, zone: Tz) -> String {
    from_db(text).map_or_else(|| text.to_owned(), |at| local(at, zone))
}

/// Parses an instant stored by [`to_db`] (or any RFC 3339 text another program wrote).
pub fn from_db(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// How long until `due` from `now`, in words: `2d 3h left`, `5m left`,
/// `overdue by 1h 2m`; `-` when `due` does not parse.
pub fn time_left(due: Option<&str>, now: DateTime<Utc>) -> String {
    let Some(due) = due.and_then(from_db) else {
        return "-".to_owned();
    };
    let seconds = (due - now).num_seconds();
    let span = span_words(seconds.unsigned_abs());
    if seconds >= 0 {
        format!("{span} left")
    } else {
        format!("overdue by {span}")
    }
}

/// `seconds` as its two largest units: `2d 3h`, `4h 5m`, `6m`, `under 1m`.
pub fn span_words(seconds: u64) -> String {
    let (d, h, m) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    match (d, h, m) {
        (0, 0, 0) => "under 1m".to_owned(),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiTimeError {
    #[error("unparseable datetime {0:?}")]
    Malformed(String),
    #[error("datetime {0:?} does not exist in the API's time zone")]
    Nonexistent(String),
    #[error("datetime {0:?} is outside the plausible range 2000..2100")]
    Absurd(String),
}

/// Interprets one of the API's datetimes. Naive values are local times in `zone`;
/// a value that does carry an offset is honoured. Years outside 2000..2100 are
/// refused as absurd rather than stored as if they meant something.
pub fn parse_api_datetime(text: &str, zone: Tz) -> Result<DateTime<Utc>, ApiTimeError> {
    let shown: String = text.chars().take(64).collect();
    let instant = if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        with_offset.with_timezone(&Utc)
    } else {
        let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
            .iter()
            .find_map(|layout| NaiveDateTime::parse_from_str(text, layout).ok())
            .ok_or_else(|| ApiTimeError::Malformed(shown.clone()))?;
        match zone.from_local_datetime(&naive) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            // A repeated hour (DST end): the earlier reading is the conservative one for deadlines.
            LocalResult::Ambiguous(earliest, _) => earliest.with_timezone(&Utc),
            LocalResult::None => return Err(ApiTimeError::Nonexistent(shown)),
        }
    };
    let year = chrono::Datelike::year(&instant);
    if !(2000..2100).contains(&year) {
        return Err(ApiTimeError::Absurd(shown));
    }
    Ok(instant)
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Seoul;

    #[test]
    fn a_deadline_reads_as_the_time_left_or_how_long_ago_it_passed() {
        let due = "2026-12-06T05:00:00.000Z";
        let at = |s: &str| from_db(s).unwrap();
        let now = at("2026-12-06T02:47:00.000Z");
        assert_eq!(time_left(Some(due), now), "2h 13m left");
        assert_eq!(
            time_left(Some(due), at("2026-12-06T06:01:30.000Z")),
            "overdue by 1h 1m"
        );
        assert_eq!(
            time_left(Some(due), at("2026-12-04T04:00:00.000Z")),
            "2d 1h left"
        );
        assert_eq!(time_left(Some("garbage"), now), "-");
    }

    #[test]
    fn instants_are_shown_in_the_users_zone_with_its_name() {
        let at = from_db("2026-12-02T14:59:59.000Z").unwrap();
        assert_eq!(local(at, Seoul), "2026-12-02 23:59:59 KST");
        assert_eq!(
            db_local("2026-12-02T14:59:59.000Z", Seoul),
            "2026-12-02 23:59:59 KST"
        );
        assert_eq!(db_local("not a time", Seoul), "not a time");
    }

    #[test]
    fn api_datetimes_are_stored_as_utc() {
        // (what the API sent, the zone it is read in, what is stored, why)
        let cases = [
            (
                "2023-10-28T23:59:59",
                Seoul,
                "2023-10-28T14:59:59.000Z",
                "naive Korea time is nine hours ahead",
            ),
            (
                "2023-10-27 10:00:05.250",
                Seoul,
                "2023-10-27T01:00:05.250Z",
                "fractional seconds and a space separator",
            ),
            (
                "2023-10-27T10:00:00+00:00",
                Seoul,
                "2023-10-27T10:00:00.000Z",
                "an explicit offset is honoured",
            ),
            (
                "2023-10-27T10:00:00",
                chrono_tz::UTC,
                "2023-10-27T10:00:00.000Z",
                "the zone is configurable",
            ),
        ];
        for (sent, zone, stored, why) in cases {
            let utc = parse_api_datetime(sent, zone).unwrap();
            assert_eq!(to_db(utc), stored, "{why}");
        }
    }

    #[test]
    fn garbage_and_absurd_datetimes_are_errors() {
        // (input, expected to be absurd rather than malformed)
        let cases = [
            ("yesterday", false),
            ("2023-13-45T99:00:00", false),
            ("9999-12-31T23:59:59", true),
            ("0001-01-01T00:00:00", true),
            ("", false),
        ];
        for (input, absurd) in cases {
            let result = parse_api_datetime(input, Seoul);
            let ok = if absurd {
                matches!(result, Err(ApiTimeError::Absurd(_)))
            } else {
                matches!(result, Err(ApiTimeError::Malformed(_)))
            };
            assert!(ok, "{input:?}: {result:?}");
        }
    }

    #[test]
    fn a_time_skipped_by_daylight_saving_is_an_error() {
        let zone: Tz = "America/New_York".parse().unwrap();
        assert!(matches!(
            parse_api_datetime("2024-03-10T02:30:00", zone),
            Err(ApiTimeError::Nonexistent(_))
        ));
    }

    #[test]
    fn the_database_layout_sorts_as_time_and_round_trips() {
        let a = parse_api_datetime("2023-10-27T09:59:59.999", Seoul).unwrap();
        let b = parse_api_datetime("2023-10-27T10:00:00", Seoul).unwrap();
        assert!(to_db(a) < to_db(b));
        assert_eq!(from_db(&to_db(a)), Some(a));
    }
}
