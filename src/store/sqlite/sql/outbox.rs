//! The outbox's and the webhook sinks' statements (see `sql.rs`, whose list
//! this continues: `sql::X` names them all).

// --- The outbox and its deliveries -------------------------------------------

/// Events after cursor ?1, oldest first, ?2 at most (`issuance_id` NULL for
/// events about no issuance, such as `balance.low`).
pub(in crate::store) const EVENTS_AFTER: &str =
    "SELECT seq, id, type, CAST(issuance_id AS BLOB) AS issuance_id, occurred_at, data
     FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2";

/// Events of issuance ?1, oldest first.
pub(in crate::store) const EVENTS_OF: &str =
    "SELECT seq, id, type, CAST(issuance_id AS BLOB) AS issuance_id, occurred_at, data
     FROM events WHERE issuance_id = ?1 ORDER BY seq";

/// The newest event's seq (0 when there is none).
pub(in crate::store) const LAST_EVENT_SEQ: &str = "SELECT coalesce(max(seq), 0) FROM events";

/// Events after ?1 by type: (type, count, newest seq).
pub(in crate::store) const EVENT_COUNTS_AFTER: &str =
    "SELECT type, count(*), max(seq) FROM events WHERE seq > ?1 GROUP BY type ORDER BY type";

/// Registers sink ?1, starting after the newest event, unless it exists.
pub(in crate::store) const REGISTER_SINK: &str = "INSERT INTO sinks (name, admitted_seq)
     VALUES (?1, (SELECT coalesce(max(seq), 0) FROM events)) ON CONFLICT (name) DO NOTHING";

/// Sink ?1: (admitted_seq, disabled_at, disabled_reason, failing_since, last_problem).
pub(in crate::store) const SINK: &str =
    "SELECT admitted_seq, disabled_at, disabled_reason, failing_since, last_problem
     FROM sinks WHERE name = ?1";

/// Every sink the database knows, configured or not, by name: (name,
/// admitted_seq, disabled_at, disabled_reason, failing_since, last_problem).
pub(in crate::store) const SINKS: &str =
    "SELECT name, admitted_seq, disabled_at, disabled_reason, failing_since, last_problem
     FROM sinks ORDER BY name";

/// Sink ?1 answered with a 2xx: it is not failing.
pub(in crate::store) const SINK_ANSWERED: &str =
    "UPDATE sinks SET failing_since = NULL, last_problem = NULL WHERE name = ?1";

/// Sink ?1's attempts failed at ?2 with problem ?3: failing since the first
/// failure after its last 2xx.
pub(in crate::store) const SINK_FAILING: &str = "UPDATE sinks SET failing_since = coalesce(failing_since, ?2), last_problem = ?3 WHERE name = ?1";

/// Creates the deliveries of sink ?1 for events after its `admitted_seq` up to
/// ?2 whose type is in the JSON array ?3, due at ?4.
pub(in crate::store) const ADMIT_EVENTS: &str =
    "INSERT INTO deliveries (sink, seq, issuance_id, created_at, next_attempt_at)
     SELECT ?1, e.seq, coalesce(e.issuance_id, ''), ?4, ?4 FROM events e
     WHERE e.seq > (SELECT admitted_seq FROM sinks WHERE name = ?1) AND e.seq <= ?2
       AND e.type IN (SELECT value FROM json_each(?3))
     ORDER BY e.seq
     ON CONFLICT (sink, seq) DO NOTHING";

/// Moves sink ?1's admission cursor to ?2.
pub(in crate::store) const SET_ADMITTED: &str =
    "UPDATE sinks SET admitted_seq = max(admitted_seq, ?2) WHERE name = ?1";

/// Deliveries of sink ?1 due at ?2, ?3 at most, each the oldest open one of
/// its issuance (a later event of an issuance waits for the earlier).
pub(in crate::store) const DUE_DELIVERIES: &str = "SELECT d.seq, e.id, e.type, CAST(coalesce(e.issuance_id, '') AS BLOB) AS issuance_id, e.occurred_at, e.data,
            d.attempts, d.created_at
     FROM deliveries d INDEXED BY deliveries_open JOIN events e ON e.seq = d.seq
     WHERE d.sink = ?1 AND d.delivered_at IS NULL AND d.failed_at IS NULL AND d.next_attempt_at <= ?2
       AND NOT EXISTS (SELECT 1 FROM deliveries p
                       WHERE p.sink = d.sink AND p.issuance_id = d.issuance_id AND p.seq < d.seq
                         AND p.delivered_at IS NULL AND p.failed_at IS NULL)
     ORDER BY d.next_attempt_at, d.seq LIMIT ?3";

/// When sink ?1's next open delivery is due.
pub(in crate::store) const NEXT_DELIVERY_DUE: &str =
    "SELECT min(next_attempt_at) FROM deliveries INDEXED BY deliveries_open
     WHERE sink = ?1 AND delivered_at IS NULL AND failed_at IS NULL";

/// Writes one attempt of sink ?1 at delivery ?2: ?3 attempted at, ?4 HTTP
/// status, ?5 error, ?6 next attempt (NULL: unchanged), ?7 delivered at,
/// ?8 given up at. Only an open delivery changes.
pub(in crate::store) const RECORD_ATTEMPT: &str = "UPDATE deliveries SET
         attempts = attempts + 1, last_attempt_at = ?3, last_status = ?4, last_error = ?5,
         next_attempt_at = coalesce(?6, next_attempt_at), delivered_at = ?7, failed_at = ?8
     WHERE sink = ?1 AND seq = ?2 AND delivered_at IS NULL AND failed_at IS NULL";

/// Makes every open delivery of sink ?1 due at ?2 (the receiver is back).
pub(in crate::store) const DELIVERIES_DUE_NOW: &str =
    "UPDATE deliveries INDEXED BY deliveries_open SET next_attempt_at = ?2
     WHERE sink = ?1 AND delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at > ?2";

/// Disables sink ?1 at ?2 for reason ?3.
pub(in crate::store) const DISABLE_SINK: &str =
    "UPDATE sinks SET disabled_at = ?2, disabled_reason = ?3 WHERE name = ?1";

/// Enables sink ?1 again (a person's `sinks enable`).
pub(in crate::store) const ENABLE_SINK: &str =
    "UPDATE sinks SET disabled_at = NULL, disabled_reason = NULL WHERE name = ?1";

/// Sink ?1's last delivery (`delivered_at`) and the attempts made so far at
/// its open deliveries.
pub(in crate::store) const SINK_ACTIVITY: &str = "SELECT
       (SELECT max(delivered_at) FROM deliveries WHERE sink = ?1),
       (SELECT coalesce(sum(attempts), 0) FROM deliveries INDEXED BY deliveries_open
        WHERE sink = ?1 AND delivered_at IS NULL AND failed_at IS NULL)";

/// Sink ?1's backlog: open deliveries, the oldest one's event time,
/// events not yet admitted (any type), and the oldest of those's time.
pub(in crate::store) const SINK_BACKLOG: &str = "SELECT
       (SELECT count(*) FROM deliveries INDEXED BY deliveries_open
        WHERE sink = ?1 AND delivered_at IS NULL AND failed_at IS NULL),
       (SELECT min(e.occurred_at) FROM deliveries d INDEXED BY deliveries_open JOIN events e ON e.seq = d.seq
        WHERE d.sink = ?1 AND d.delivered_at IS NULL AND d.failed_at IS NULL),
       (SELECT count(*) FROM events WHERE seq > (SELECT admitted_seq FROM sinks WHERE name = ?1)),
       (SELECT occurred_at FROM events WHERE seq > (SELECT admitted_seq FROM sinks WHERE name = ?1)
        ORDER BY seq LIMIT 1)";

/// Undelivered, undiscarded deliveries that failed at least once, or whose
/// sink is not in the JSON array ?2 of configured sinks (never to be
/// attempted), oldest event first, ?1 at most; with their sink's
/// `disabled_at` and whether it is configured.
pub(in crate::store) const FAILED_DELIVERIES: &str = "SELECT d.sink, d.seq, e.id, e.type, CAST(e.issuance_id AS BLOB) AS issuance_id, e.occurred_at,
            d.attempts, d.last_status, d.last_error, d.last_attempt_at, d.next_attempt_at, d.failed_at,
            s.disabled_at AS sink_disabled_at,
            d.sink IN (SELECT value FROM json_each(?2)) AS sink_configured
     FROM deliveries d JOIN events e ON e.seq = d.seq LEFT JOIN sinks s ON s.name = d.sink
     WHERE d.delivered_at IS NULL AND d.discarded_at IS NULL
       AND (d.failed_at IS NOT NULL OR d.attempts > 0 OR d.sink NOT IN (SELECT value FROM json_each(?2)))
     ORDER BY d.seq, d.sink LIMIT ?1";

/// Sink ?1's deliveries that were given up (not delivered, not discarded).
pub(in crate::store) const SINK_GIVEN_UP: &str =
    "SELECT count(*) FROM deliveries INDEXED BY deliveries_failed
     WHERE failed_at IS NOT NULL AND sink = ?1 AND delivered_at IS NULL AND discarded_at IS NULL";

/// Discards sink ?1's undelivered deliveries at ?2 (only the seqs in the JSON
/// array ?3, unless it is NULL): closed for good, kept for the record.
pub(in crate::store) const DISCARD: &str =
    "UPDATE deliveries SET discarded_at = ?2, failed_at = coalesce(failed_at, ?2)
     WHERE sink = ?1 AND delivered_at IS NULL AND discarded_at IS NULL
       AND (?3 IS NULL OR seq IN (SELECT value FROM json_each(?3)))";

/// Schedules event ?2 for sink ?1 again at ?3, as new (whatever happened
/// before, a discard included). Changes nothing if there is no such event. An
/// event about no issuance gets `''` as its delivery's issuance, as at
/// admission (they are ordered among themselves).
pub(in crate::store) const REDELIVER: &str =
    "INSERT INTO deliveries (sink, seq, issuance_id, created_at, next_attempt_at)
     SELECT ?1, seq, coalesce(issuance_id, ''), ?3, ?3 FROM events WHERE seq = ?2
     ON CONFLICT (sink, seq) DO UPDATE SET
         attempts = 0, next_attempt_at = excluded.next_attempt_at, created_at = excluded.created_at,
         delivered_at = NULL, failed_at = NULL, discarded_at = NULL,
         last_status = NULL, last_error = NULL, last_attempt_at = NULL";

// --- The delivery log, pruning, range replays, disable_after -----------------

/// One row of the delivery log: sink ?1, event ?2, at ?3, ?4 ms, status ?5,
/// error ?6, answer ?7; only for a delivery that exists.
pub(in crate::store) const LOG_ATTEMPT: &str =
    "INSERT INTO attempts (sink, seq, attempted_at, duration_ms, http_status, error, response)
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
     WHERE EXISTS (SELECT 1 FROM deliveries WHERE sink = ?1 AND seq = ?2)";

/// Event ?1.
pub(in crate::store) const EVENT: &str =
    "SELECT seq, id, type, CAST(issuance_id AS BLOB) AS issuance_id, occurred_at, data
     FROM events WHERE seq = ?1";

/// Event ?1's attempts, by sink then time.
pub(in crate::store) const ATTEMPTS_OF: &str =
    "SELECT sink, attempted_at, duration_ms, http_status, error, response
     FROM attempts WHERE seq = ?1 ORDER BY sink, attempted_at, rowid";

/// Sink ?1's attempts before ?2, and those of its deliveries delivered before ?2.
pub(in crate::store) const PRUNE_ATTEMPTS: &str = "DELETE FROM attempts
     WHERE sink = ?1 AND (attempted_at < ?2 OR seq IN (
         SELECT seq FROM deliveries WHERE sink = ?1 AND delivered_at IS NOT NULL AND delivered_at < ?2))";

/// Sink ?1's deliveries delivered before ?2 (never an undelivered one).
pub(in crate::store) const PRUNE_DELIVERED: &str =
    "DELETE FROM deliveries WHERE sink = ?1 AND delivered_at IS NOT NULL AND delivered_at < ?2";

/// The seqs of events that occurred in [?1, ?2) (?2 NULL: no end), of type ?3
/// (NULL: any), oldest first.
pub(in crate::store) const EVENTS_IN_RANGE: &str = "SELECT seq, type FROM events
     WHERE occurred_at >= ?1 AND (?2 IS NULL OR occurred_at < ?2) AND (?3 IS NULL OR type = ?3)
     ORDER BY seq";

/// A `sink.disabled` event at ?1: sink ?2, reason ?3, failing since ?4,
/// `disable_after` ?5 (as configured, e.g. `5days`).
pub(in crate::store) const INSERT_SINK_DISABLED: &str =
    "INSERT INTO events (type, issuance_id, occurred_at, data)
     VALUES ('sink.disabled', NULL, ?1,
             json_object('sink', ?2, 'reason', ?3, 'failing_since', ?4,
                         'disable_after', ?5, 'disabled_at', ?1))";
