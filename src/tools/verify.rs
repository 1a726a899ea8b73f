//! Comparing the recorded history (`transitions`) with what really happened
//! (the simulator's ground truth), for the demo and the reliability tests.
//!
//! # What "recorded exactly once" means here
//! Polling sees a status only if it still holds when a poll arrives, so a status
//! that came and went between two polls cannot be recorded. Per issuance, with
//! `T = [t1, t2, ..., tn]` the true statuses in order and `R = [r1, ..., rm]` the
//! recorded rows ordered by `seq`, the history is correct when:
//! - **no invention**: the `to_status` values of `R` are a subsequence of `T`
//!   (each recorded row matches a distinct true change, in order), and no row
//!   names an issuance the truth does not know;
//! - **no duplicate**: no true change is matched twice (a recorded status equal
//!   to one already matched is a duplicate);
//! - **a consistent chain**: `r1.from_status` is NULL and every later
//!   `from_status` equals the previous row's `to_status`;
//! - **not before it happened**: a row's `observed_at` is not earlier than its
//!   true change (minus a tolerance for clock resolution);
//! - **final status right**: the last recorded status equals `tn`, so the final
//!   (e.g. terminal) status is always recorded and every skipped true change is
//!   an intermediate one (`unobserved`: happened, then changed again before any
//!   recorded poll saw it).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use crate::domain::timefmt::from_db;
use bunjang_sim::TruthEvent;

/// One row of `transitions`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RecordedTransition {
    pub issuance_id: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub observed_at: String,
}

/// Every row of `transitions`, in `seq` order.
pub async fn recorded_transitions(
    pool: &SqlitePool,
) -> Result<Vec<RecordedTransition>, sqlx::Error> {
    sqlx::query_as(
        "SELECT issuance_id, from_status, to_status, observed_at FROM transitions ORDER BY seq",
    )
    .fetch_all(pool)
    .await
}

/// The outcome of [`compare`]: counts, and the first few problems spelled out.
#[derive(Debug, Default, Clone)]
pub struct Comparison {
    /// Issuances in the ground truth.
    pub issuances: usize,
    pub true_transitions: usize,
    pub recorded: usize,
    /// Recorded rows matched to a true change.
    pub matched: usize,
    /// Detection lag of each matched row (observed minus true instant, seconds).
    pub lags: Vec<f64>,
    /// Rows repeating a change already recorded.
    pub duplicates: usize,
    /// Rows matching no true change (or naming an unknown issuance).
    pub invented: usize,
    /// Rows whose `from_status` is not the previous row's `to_status`.
    pub broken_chain: usize,
    /// Rows observed before the change they record happened.
    pub before_truth: usize,
    /// True changes not recorded because a later status replaced them before a poll saw them.
    pub unobserved: usize,
    /// Unobserved changes by the status skipped.
    pub unobserved_by_status: BTreeMap<String, usize>,
    /// Issuances whose last recorded status is not their true final status.
    pub wrong_final: usize,
    /// The first problems, for failure messages.
    pub examples: Vec<String>,
}

const MAX_EXAMPLES: usize = 20;

impl Comparison {
    fn problem(&mut self, text: String) {
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(text);
        }
    }

    /// Every observable change recorded exactly once, nothing invented, final statuses right.
    pub fn exactly_once(&self) -> bool {
        self.duplicates == 0
            && self.invented == 0
            && self.broken_chain == 0
            && self.before_truth == 0
            && self.wrong_final == 0
    }

    /// One line of counts.
    pub fn summary(&self) -> String {
        format!(
            "{} issuances, {} true transitions, {} recorded ({} matched); {} duplicated, {} invented, {} broken chains, {} before the truth, {} wrong final statuses; {} not observable between polls {:?}",
            self.issuances,
            self.true_transitions,
            self.recorded,
            self.matched,
            self.duplicates,
            self.invented,
            self.broken_chain,
            self.before_truth,
            self.wrong_final,
            self.unobserved,
            self.unobserved_by_status,
        )
    }
}

/// Compares `recorded` (in `seq` order) with `truth` (any order; each
/// issuance's events in time order). `tolerance` is how much earlier than the
/// true change an observation may be stamped (clock resolution).
/// Groups `items` by issuance id, keeping their order within each id.
fn by_issuance<'a, T>(
    items: &'a [T],
    id: impl Fn(&'a T) -> &'a str,
) -> HashMap<&'a str, Vec<&'a T>> {
    let mut grouped: HashMap<&str, Vec<&T>> = HashMap::new();
    for item in items {
        grouped.entry(id(item)).or_default().push(item);
    }
    grouped
}

pub fn compare(
    recorded: &[RecordedTransition],
    truth: &[TruthEvent],
    tolerance: chrono::Duration,
) -> Comparison {
    let mut c = Comparison {
        true_transitions: truth.len(),
        recorded: recorded.len(),
        ..Comparison::default()
    };
    let true_by_id = by_issuance(truth, |e| &e.issuance_id);
    c.issuances = true_by_id.len();
    let rows_by_id = by_issuance(recorded, |r| &r.issuance_id);
    for (id, rows) in &rows_by_id {
        if !true_by_id.contains_key(id) {
            c.invented += rows.len();
            c.problem(format!("{id}: {} rows for an unknown issuance", rows.len()));
        }
    }
    let mut ids: Vec<&str> = true_by_id.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        let events = &true_by_id[id];
        let rows = rows_by_id.get(id).map(Vec::as_slice).unwrap_or_default();
        let mut next = 0;
        let mut previous: Option<&str> = None;
        for row in rows {
            if row.from_status.as_deref() != previous {
                c.broken_chain += 1;
                c.problem(format!(
                    "{id}: row {:?} -> {} follows {previous:?}",
                    row.from_status, row.to_status
                ));
            }
            previous = Some(row.to_status.as_str());
            match events[next..]
                .iter()
                .position(|e| e.to.as_str() == row.to_status)
            {
                Some(offset) => {
                    for skipped in &events[next..next + offset] {
                        *c.unobserved_by_status
                            .entry(skipped.to.as_str().to_owned())
                            .or_default() += 1;
                    }
                    c.unobserved += offset;
                    let event = events[next + offset];
                    c.matched += 1;
                    match from_db(&row.observed_at) {
                        Some(observed) => {
                            c.lags
                                .push((observed - event.at).num_milliseconds() as f64 / 1000.0);
                            if observed + tolerance < event.at {
                                c.before_truth += 1;
                                c.problem(format!(
                                    "{id}: {} observed at {} but it happened at {}",
                                    row.to_status, row.observed_at, event.at
                                ));
                            }
                        }
                        None => c.problem(format!(
                            "{id}: unreadable observed_at {:?}",
                            row.observed_at
                        )),
                    }
                    next += offset + 1;
                }
                None if events[..next]
                    .iter()
                    .any(|e| e.to.as_str() == row.to_status) =>
                {
                    c.duplicates += 1;
                    c.problem(format!("{id}: {} recorded again", row.to_status));
                }
                None => {
                    c.invented += 1;
                    c.problem(format!(
                        "{id}: {} recorded but never happened (truth {:?})",
                        row.to_status,
                        events.iter().map(|e| e.to.as_str()).collect::<Vec<_>>()
                    ));
                }
            }
        }
        for skipped in &events[next..] {
            *c.unobserved_by_status
                .entry(skipped.to.as_str().to_owned())
                .or_default() += 1;
        }
        c.unobserved += events.len() - next;
        let final_truth = events.last().map(|e| e.to.as_str());
        let final_seen = rows.last().map(|r| r.to_status.as_str());
        if final_truth != final_seen {
            c.wrong_final += 1;
            c.problem(format!(
                "{id}: final status {final_seen:?}, truly {final_truth:?}"
            ));
        }
    }
    c.lags.sort_by(f64::total_cmp);
    c
}

/// The true final status of each issuance in `truth`.
pub fn final_statuses(truth: &[TruthEvent]) -> HashMap<String, (DateTime<Utc>, String)> {
    let mut finals: HashMap<String, (DateTime<Utc>, String)> = HashMap::new();
    for e in truth {
        let entry = finals
            .entry(e.issuance_id.clone())
            .or_insert((e.at, e.to.as_str().to_owned()));
        if e.at >= entry.0 {
            *entry = (e.at, e.to.as_str().to_owned());
        }
    }
    finals
}

#[cfg(test)]
mod tests {
    use super::*;
    use bunjang_sim::Status;

    fn ev(id: &str, to: &str, at_s: i64) -> TruthEvent {
        TruthEvent {
            issuance_id: id.into(),
            from: None,
            to: Status::parse(to),
            at: DateTime::<Utc>::from_timestamp(1_700_000_000 + at_s, 0).unwrap(),
        }
    }

    fn row(id: &str, from: Option<&str>, to: &str, at_s: i64) -> RecordedTransition {
        RecordedTransition {
            issuance_id: id.into(),
            from_status: from.map(str::to_owned),
            to_status: to.into(),
            observed_at: crate::domain::timefmt::to_db(
                DateTime::<Utc>::from_timestamp(1_700_000_000 + at_s, 0).unwrap(),
            ),
        }
    }

    fn truth() -> Vec<TruthEvent> {
        vec![
            ev("1", "WAITED", 0),
            ev("1", "READY", 10),
            ev("1", "DONE", 20),
        ]
    }

    #[test]
    fn a_skipped_intermediate_status_is_unobserved_not_wrong() {
        let c = compare(
            &[
                row("1", None, "READY", 11),
                row("1", Some("READY"), "DONE", 21),
            ],
            &truth(),
            chrono::Duration::zero(),
        );
        assert!(c.exactly_once(), "{}", c.summary());
        assert_eq!((c.unobserved, c.matched), (1, 2));
    }

    #[test]
    fn duplicates_inventions_broken_chains_early_rows_and_missing_finals_are_caught() {
        let zero = chrono::Duration::zero();
        let dup = compare(
            &[
                row("1", None, "WAITED", 1),
                row("1", Some("WAITED"), "READY", 11),
                row("1", Some("READY"), "READY", 12),
                row("1", Some("READY"), "DONE", 21),
            ],
            &truth(),
            zero,
        );
        assert_eq!(
            (dup.duplicates, dup.broken_chain),
            (1, 0),
            "{}",
            dup.summary()
        );
        let invented = compare(
            &[row("1", None, "FAIL", 1), row("9", None, "DONE", 1)],
            &truth(),
            zero,
        );
        assert_eq!(invented.invented, 2);
        assert_eq!(invented.wrong_final, 1);
        let chain = compare(
            &[
                row("1", None, "READY", 11),
                row("1", Some("WAITED"), "DONE", 21),
            ],
            &truth(),
            zero,
        );
        assert_eq!(chain.broken_chain, 1);
        let early = compare(&[row("1", None, "DONE", 19)], &truth(), zero);
        assert_eq!(early.before_truth, 1);
        let missing = compare(&[row("1", None, "READY", 11)], &truth(), zero);
        assert_eq!(missing.wrong_final, 1);
        assert!(!missing.exactly_once());
    }
}
