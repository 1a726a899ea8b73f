//! Properties of the time formats: the API parser never panics, and what is
//! printed reads back as the same instant.

use chrono::TimeZone as _;
use chrono_tz::Asia::Seoul;
use proptest::prelude::*;

use super::*;

/// Instants in the plausible range, at millisecond resolution (the database's).
fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
    let start = Utc
        .with_ymd_and_hms(2000, 1, 2, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    let end = Utc
        .with_ymd_and_hms(2099, 12, 30, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    (start..end).prop_map(|ms| DateTime::from_timestamp_millis(ms).unwrap())
}

proptest! {
    /// Whatever the API sends in a datetime field, parsing gives a value or an error.
    #[test]
    fn parsing_any_text_never_panics(text in "\\PC{0,40}") {
        let _ = parse_api_datetime(&text, Seoul);
    }

    /// Near-misses of the API's layouts never panic either.
    #[test]
    fn parsing_layout_like_text_never_panics(text in "[0-9]{1,6}-[0-9]{1,3}-[0-9]{1,3}[T ][0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}(\\.[0-9]{0,12})?([+-][0-9]{2}:[0-9]{2}|Z)?") {
        let _ = parse_api_datetime(&text, Seoul);
    }

    /// An instant printed as the API prints it (naive Korea time) reads back as itself.
    #[test]
    fn an_api_datetime_round_trips(at in any_instant()) {
        let naive = at.with_timezone(&Seoul).format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
        prop_assert_eq!(parse_api_datetime(&naive, Seoul), Ok(at));
    }

    /// What the database stores reads back as the same instant, and sorts as time does.
    #[test]
    fn the_database_layout_round_trips_and_sorts(a in any_instant(), b in any_instant()) {
        prop_assert_eq!(from_db(&to_db(a)), Some(a));
        prop_assert_eq!(to_db(a).cmp(&to_db(b)), a.cmp(&b));
    }
}
