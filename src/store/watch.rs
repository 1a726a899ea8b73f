//! Why an issuance is watched or not: the values of `issuances.watch`.
//!
//! The schema's `CHECK (watch IN (...))` lists the same four values; a test
//! below writes each of them, so the two cannot drift apart unnoticed.
//! Statements that compare against a watch in their text (rather than binding
//! it) spell it with [`watch_text!`] inside `concat!`, which gives the same
//! text that [`Watch::as_str`] returns: SQLite uses a partial index (`WHERE
//! watch = 'active'`) only when the query's own text implies its condition,
//! which a bound parameter does not.

use chrono::{DateTime, Utc};

use crate::domain::Decision;

/// A watch value's text, for `concat!` into a statement
/// (`concat!("WHERE watch = '", watch_text!(active), "'")`): statements must be
/// `&'static str`, and `concat!` takes only literals. The one spelling of each
/// value; [`Watch::as_str`] returns the same.
macro_rules! watch_text {
    (active) => {
        "active"
    };
    (settled) => {
        "settled"
    };
    (not_found) => {
        "not_found"
    };
    (rejected) => {
        "rejected"
    };
}
pub(crate) use watch_text;

/// The value of `issuances.watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Watch {
    /// Being polled.
    Active,
    /// A terminal status was seen.
    Settled,
    /// The API answered 404 for longer than the grace period.
    NotFound,
    /// The id can never be looked up (empty, not UTF-8, ...).
    Rejected,
}

impl Watch {
    pub const ALL: [Watch; 4] = [
        Watch::Active,
        Watch::Settled,
        Watch::NotFound,
        Watch::Rejected,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Watch::Active => watch_text!(active),
            Watch::Settled => watch_text!(settled),
            Watch::NotFound => watch_text!(not_found),
            Watch::Rejected => watch_text!(rejected),
        }
    }

    /// The watch a poll's decision leaves the issuance in, and when it is next
    /// due (for an ended watch: `now`, a time in the past, never claimed again
    /// unless someone sets the watch back to active).
    pub(super) fn after(decision: Decision, now: DateTime<Utc>) -> (Watch, DateTime<Utc>) {
        match decision {
            Decision::PollAt(at) => (Watch::Active, at),
            Decision::Settled => (Watch::Settled, now),
            Decision::GiveUpNotFound => (Watch::NotFound, now),
        }
    }
}

impl std::fmt::Display for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::temp_store;
    use super::*;

    /// The values in the schema's `CHECK (watch IN (...))`, as SQLite stores the table.
    async fn values_the_schema_allows(store: &crate::store::Store) -> Vec<String> {
        let table: String = sqlx::query_scalar(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'issuances'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        let list = table
            .split_once("CHECK (watch IN (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .unwrap_or_else(|| panic!("no CHECK on watch in {table}"))
            .0;
        list.split(',')
            .map(|v| v.trim().trim_matches('\'').to_owned())
            .collect()
    }

    #[tokio::test]
    async fn the_schema_allows_exactly_the_watches_the_store_knows() {
        let (store, _dir) = temp_store().await;
        let mut allowed = values_the_schema_allows(&store).await;
        allowed.sort();
        let mut known = Watch::ALL.map(|w| w.as_str().to_owned());
        known.sort();
        assert_eq!(allowed, known);
        for watch in Watch::ALL {
            sqlx::query("INSERT INTO issuances (id, watch) VALUES (?1, ?1)")
                .bind(watch.as_str())
                .execute(store.pool())
                .await
                .unwrap_or_else(|e| panic!("{watch}: {e}"));
        }
        assert!(
            sqlx::query("INSERT INTO issuances (id, watch) VALUES ('x', 'paused')")
                .execute(store.pool())
                .await
                .is_err()
        );
        // A row inserted with just its id starts as active.
        sqlx::query("INSERT INTO issuances (id) VALUES ('new')")
            .execute(store.pool())
            .await
            .unwrap();
        let watch: String = sqlx::query_scalar("SELECT watch FROM issuances WHERE id = 'new'")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(watch, Watch::Active.as_str());
    }

    #[test]
    fn a_decision_sets_the_watch_and_the_next_poll() {
        let now = Utc::now();
        let later = now + chrono::Duration::minutes(3);
        assert_eq!(
            Watch::after(Decision::PollAt(later), now),
            (Watch::Active, later)
        );
        assert_eq!(Watch::after(Decision::Settled, now), (Watch::Settled, now));
        assert_eq!(
            Watch::after(Decision::GiveUpNotFound, now),
            (Watch::NotFound, now)
        );
    }
}
