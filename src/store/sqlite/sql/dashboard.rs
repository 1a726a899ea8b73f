//! The web dashboard's statements (see `sql.rs`, whose list this continues).

use crate::store::watch::watch_text;

/// The columns of an `IssuanceRow` (the id as bytes).
macro_rules! page_columns {
    () => {
        "SELECT CAST(id AS BLOB) AS id, status, amount, created_at, modified_at,
            vbank_due_at, vbank_account_number, bank_name, vbank_holder_name, watch, next_poll_at,
            attempts, polls, last_polled_at, last_seen_at, last_error, added_at
         FROM issuances"
    };
}

/// The filter of a page of issuances: ?1 status (NULL: any; `UNSEEN`: not
/// seen yet), ?2 watch (NULL: any). `+status` and `+watch` keep SQLite from
/// reading by the status index and sorting every match: the page walks the
/// primary key in order and stops at the limit.
macro_rules! page_filter {
    () => {
        " (?1 IS NULL OR +status = ?1 OR (?1 = 'UNSEEN' AND +status IS NULL))
          AND (?2 IS NULL OR +watch = ?2)"
    };
}

/// The first page of issuances: ?1 status, ?2 watch (see `page_filter!`),
/// ?3 how many at most; by id.
pub(in crate::store) const ISSUANCES_FIRST: &str = concat!(
    page_columns!(),
    " WHERE",
    page_filter!(),
    " ORDER BY issuances.id LIMIT ?3"
);

/// The page of issuances after id ?4: ?1 status, ?2 watch, ?3 how many at most.
pub(in crate::store) const ISSUANCES_AFTER: &str = concat!(
    page_columns!(),
    " WHERE issuances.id > ?4 AND",
    page_filter!(),
    " ORDER BY issuances.id LIMIT ?3"
);

/// Active issuances waiting to be paid (`WAITED`, `READY`), soonest deadline
/// first, ?1 at most, from the partial index of active issuances.
pub(in crate::store) const OPEN_CHARGES: &str = concat!(
    page_columns!(),
    " WHERE watch = '",
    watch_text!(active),
    "' AND status IN ('WAITED', 'READY')
     ORDER BY vbank_due_at IS NULL, vbank_due_at, issuances.id LIMIT ?1"
);

/// The newest ?1 balance answers, oldest first.
pub(in crate::store) const BALANCE_HISTORY: &str =
    "SELECT observed_at, balance, expiring_30d FROM (
        SELECT observed_at, balance, expiring_30d FROM balance_history
        ORDER BY observed_at DESC LIMIT ?1
     ) ORDER BY observed_at";

/// Events below seq ?1, newest first, of type ?2 (NULL: any), ?3 at most.
pub(in crate::store) const EVENTS_BEFORE: &str =
    "SELECT seq, id, type, CAST(issuance_id AS BLOB) AS issuance_id, occurred_at, data
     FROM events WHERE seq < ?1 AND (?2 IS NULL OR type = ?2)
     ORDER BY seq DESC LIMIT ?3";

/// The deliveries of issuance ?1's events, by event then sink: its events by
/// their issuance index, then each (sink, event) by the deliveries' primary
/// key (`CROSS JOIN` fixes that order: SQLite would otherwise walk every
/// delivery).
pub(in crate::store) const DELIVERIES_OF: &str =
    "SELECT d.sink, d.seq, e.type AS event_type, d.created_at, d.attempts, d.next_attempt_at,
            d.last_status, d.last_error, d.delivered_at, d.failed_at
     FROM events e CROSS JOIN sinks s CROSS JOIN deliveries d
     WHERE e.issuance_id = ?1 AND d.sink = s.name AND d.seq = e.seq
     ORDER BY d.seq, d.sink";
