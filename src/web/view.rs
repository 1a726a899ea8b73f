//! How the dashboard shows values, as pure functions of plain values: amounts
//! with thousands separators, instants in the API's zone (KST) (the time left
//! is `domain::timefmt::time_left`, shared with `status`), the due-soon rung reached, the balance chart's points, a cell of the
//! CSV download, a link's query. Escaping for HTML is the templates' (askama
//! escapes every interpolated value); what is built here is text, never markup.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::domain::timefmt::{db_local, from_db};
use crate::settings::LeadLadder;

/// A stored instant in `zone` (`2026-12-06 14:00:00 KST`); `-` for none.
pub fn when(text: Option<&str>, zone: Tz) -> String {
    text.map_or_else(|| "-".to_owned(), |t| db_local(t, zone))
}

/// The due-soon rung reached at `now` by a charge due at `due`: the shortest
/// lead of `ladder` that has begun (`due within 1h`), `overdue` past the
/// deadline, `None` before the longest lead begins.
pub fn rung(due: Option<&str>, now: DateTime<Utc>, ladder: &LeadLadder) -> Option<String> {
    let due = due.and_then(from_db)?;
    if now > due {
        return Some("overdue".to_owned());
    }
    let left = (due - now).to_std().unwrap_or(Duration::ZERO);
    ladder
        .rungs()
        .iter()
        .filter(|lead| left <= **lead)
        .min()
        .map(|lead| format!("due within {}", humantime::format_duration(*lead)))
}

/// The balance chart: an SVG polyline's `points` for `values` (oldest first)
/// in a `width` x `height` box, the lowest value at the bottom.
pub fn chart_points(values: &[i64], width: u32, height: u32) -> String {
    let (Some(min), Some(max)) = (values.iter().min(), values.iter().max()) else {
        return String::new();
    };
    let range = (max - min).max(1) as f64;
    let step = if values.len() > 1 {
        f64::from(width) / (values.len() - 1) as f64
    } else {
        0.0
    };
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        let x = step * i as f64;
        let y = f64::from(height) - (v - min) as f64 / range * f64::from(height);
        let _ = write!(out, "{}{x:.1},{y:.1}", if i == 0 { "" } else { " " });
    }
    out
}

/// One CSV cell: always quoted, quotes doubled, and a cell a spreadsheet
/// would take for a formula (`=`, `+`, `-`, `@`, tab, CR first) prefixed with
/// `'`: the values come from the database and the API, which are not trusted.
pub fn csv_cell(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

/// A query string from pairs, each value percent-encoded (`?a=1&b=x%2Fy`);
/// pairs with no value are left out.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            Some(format!(
                "{k}={}",
                utf8_percent_encode((*v)?, NON_ALPHANUMERIC)
            ))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The link to issuance `id`'s page.
pub fn issuance_href(id: &str) -> String {
    format!("/issuance{}", query(&[("id", Some(id))]))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn deadlines_read_in_korea_time() {
        let due = "2026-12-06T05:00:00.000Z";
        assert_eq!(
            when(Some(due), chrono_tz::Asia::Seoul),
            "2026-12-06 14:00:00 KST"
        );
        assert_eq!(when(None, chrono_tz::Asia::Seoul), "-");
    }

    #[test]
    fn the_rung_is_the_shortest_lead_begun() {
        let ladder = LeadLadder::new(vec![
            Duration::from_secs(24 * 3600),
            Duration::from_secs(3600),
        ])
        .unwrap();
        let due = "2026-12-06T05:00:00.000Z";
        let now = Utc.with_ymd_and_hms(2026, 12, 6, 4, 30, 0).unwrap();
        assert_eq!(
            rung(Some(due), now, &ladder).as_deref(),
            Some("due within 1h")
        );
        let day_before = Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap();
        assert_eq!(
            rung(Some(due), day_before, &ladder).as_deref(),
            Some("due within 1day")
        );
        let early = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        assert_eq!(rung(Some(due), early, &ladder), None);
        let late = Utc.with_ymd_and_hms(2026, 12, 6, 6, 0, 0).unwrap();
        assert_eq!(rung(Some(due), late, &ladder).as_deref(), Some("overdue"));
    }

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(csv_cell("plain"), "\"plain\"");
        assert_eq!(csv_cell("a\"b,c"), "\"a\"\"b,c\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-1"), "\"'-1\"");
    }

    #[test]
    fn the_chart_spans_its_box() {
        assert_eq!(chart_points(&[], 100, 10), "");
        assert_eq!(chart_points(&[5, 15], 100, 10), "0.0,10.0 100.0,0.0");
        assert_eq!(chart_points(&[7], 100, 10), "0.0,10.0");
    }

    proptest! {
        #[test]
        fn a_query_value_never_breaks_out_of_its_pair(id in ".*") {
            let q = query(&[("id", Some(&id))]);
            prop_assert!(!q[1..].contains(['&', '#', '"', '<', ' ']) || q.matches('&').count() == 0);
            prop_assert_eq!(q.matches('=').count(), 1);
        }

        #[test]
        fn a_csv_cell_is_one_quoted_field(value in ".*") {
            let cell = csv_cell(&value);
            prop_assert!(cell.starts_with('"') && cell.ends_with('"'));
            let inner = &cell[1..cell.len() - 1];
            prop_assert!(!inner.replace("\"\"", "").contains('"'));
        }
    }
}
