//! The top-up rule's statements (`store/top_up.rs`). Instants are bound in
//! the stored text layout (`to_db`), which sorts as time.

/// Top-up requests asked since ?1 (refused here unsent excluded).
macro_rules! day_count {
    ($since:literal) => {
        concat!(
            "(SELECT count(*) FROM charge_requests WHERE source = 'top_up' AND state <> 'rejected' AND requested_at >= ",
            $since,
            ")"
        )
    };
}

/// KRW asked by top-up requests since ?N (nothing created: excluded).
macro_rules! month_sum {
    ($since:literal) => {
        concat!(
            "(SELECT coalesce(sum(amount), 0) FROM charge_requests WHERE source = 'top_up' AND state NOT IN ('rejected', 'refused') AND requested_at >= ",
            $since,
            ")"
        )
    };
}

/// A top-up charge asked since ?N ended CANCELLED (expired unpaid) and a
/// top-up request was asked after it since then.
macro_rules! expiry_retry_spent {
    ($since:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM charge_requests e JOIN issuances i ON i.id = e.issuance_id
                 WHERE e.source = 'top_up' AND e.requested_at >= ", $since, " AND i.status = 'CANCELLED'
                   AND EXISTS (SELECT 1 FROM charge_requests n WHERE n.source = 'top_up' AND n.id > e.id
                               AND n.state <> 'rejected' AND n.requested_at >= ", $since, "))"
        )
    };
}

/// The rule's state: ?1 the day's start, ?2 the month's.
pub(in crate::store::sqlite) const TOP_UP_STATE: &str = concat!(
    "SELECT suspended_at, suspended_reason, suspended_request, refusals_in_a_row, resumed_at, resumed_by,
            last_decision, last_decided_at, ",
    day_count!("?1"),
    " AS day_count, ",
    month_sum!("?2"),
    " AS month_sum, ",
    expiry_retry_spent!("?1"),
    " AS expiry_retry_spent FROM top_up WHERE id = 1"
);

/// A pending top-up request of ?1 KRW at ?2, inserted only if every guard
/// holds: ?3 the day's start, ?4 the month's, ?5 max_per_day, ?6
/// max_per_month, ?7 when the balance acted on was asked for (business
/// clock, as `last_seen_at`). Returns its id.
pub(in crate::store::sqlite) const ASK_TOP_UP: &str = concat!(
    "INSERT INTO charge_requests (amount, source, requested_at)
     SELECT ?1, 'top_up', ?2
     WHERE NOT EXISTS (SELECT 1 FROM top_up WHERE id = 1 AND suspended_at IS NOT NULL)
       AND NOT EXISTS (SELECT 1 FROM issuances WHERE status IN ('WAITED', 'READY') AND watch = 'active')
       AND NOT EXISTS (SELECT 1 FROM charge_requests WHERE state IN ('pending', 'sending'))
       AND NOT EXISTS (SELECT 1 FROM charge_requests WHERE state = 'unknown' AND resolved_at IS NULL)
       AND ",
    day_count!("?3"),
    " < ?5 AND ",
    month_sum!("?4"),
    " + ?1 <= ?6 AND NOT ",
    expiry_retry_spent!("?3"),
    "
       AND NOT EXISTS (SELECT 1 FROM charge_requests r JOIN issuances i ON i.id = r.issuance_id
                       WHERE i.status = 'DONE' AND i.last_seen_at >= ?7)
     RETURNING id"
);

/// The decision ?1 made at ?2.
pub(in crate::store::sqlite) const NOTE_TOP_UP_DECISION: &str =
    "UPDATE top_up SET last_decision = ?1, last_decided_at = ?2 WHERE id = 1";

/// Resumes the rule: by ?1 at ?2; only a suspended rule.
pub(in crate::store::sqlite) const RESUME_TOP_UP: &str = "UPDATE top_up
     SET suspended_at = NULL, suspended_reason = NULL, suspended_request = NULL,
         refusals_in_a_row = 0, resumed_at = ?2, resumed_by = ?1
     WHERE id = 1 AND suspended_at IS NOT NULL";
