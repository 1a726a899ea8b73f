//! The statements of the outbox and of the sink worker (the operator's in
//! `sinks.rs` use some of them too).

/// The columns of an event as `RawEvent` reads them (`data` as jsonb text,
/// `issuance_id` NULL for an event about no issuance).
macro_rules! event_columns {
    () => {
        "SELECT seq, id, type, issuance_id, utc_text(occurred_at) AS occurred_at,
                data::text AS data
         FROM events"
    };
}

/// Events after cursor $1, oldest first, $2 at most. A safe cursor: the
/// `events_seq_in_commit_order` trigger makes events commit in seq order.
pub(super) const EVENTS_AFTER: &str =
    concat!(event_columns!(), " WHERE seq > $1 ORDER BY seq LIMIT $2");

/// Events of issuance $1, oldest first.
pub(super) const EVENTS_OF: &str =
    concat!(event_columns!(), " WHERE issuance_id = $1 ORDER BY seq");

/// The newest event's seq (0 when there is none).
pub(super) const LAST_EVENT_SEQ: &str = "SELECT coalesce(max(seq), 0) FROM events";

/// Events after $1 by type: (type, count, newest seq).
pub(super) const EVENT_COUNTS_AFTER: &str =
    "SELECT type, count(*), max(seq) FROM events WHERE seq > $1 GROUP BY type ORDER BY type";

/// Registers sink $1, starting after the newest event, unless it exists.
pub(in crate::store::postgres) const REGISTER_SINK: &str = "INSERT INTO sinks (name, admitted_seq)
     VALUES ($1, (SELECT coalesce(max(seq), 0) FROM events)) ON CONFLICT (name) DO NOTHING";

/// The columns of a `SinkRow` (instants as UTC text).
macro_rules! sink_columns {
    () => {
        "admitted_seq, utc_text(disabled_at) AS disabled_at, disabled_reason,
         utc_text(failing_since) AS failing_since, last_problem
         FROM sinks"
    };
}

/// Sink $1's `SinkRow`.
pub(in crate::store::postgres) const SINK: &str =
    concat!("SELECT ", sink_columns!(), " WHERE name = $1");

/// Sink $1's `SinkRow`, locked until the transaction ends (an operator
/// switching it waits for, and is waited for by, the other writers).
pub(in crate::store::postgres) const SINK_FOR_UPDATE: &str = concat!(
    "SELECT ",
    sink_columns!(),
    " WHERE name = $1 FOR NO KEY UPDATE"
);

/// Every sink the database knows, configured or not, by name.
pub(super) const SINKS: &str = concat!("SELECT name, ", sink_columns!(), " ORDER BY name");

/// Sink $1's admission cursor, its row locked until the transaction ends.
pub(super) const LOCK_SINK_CURSOR: &str =
    "SELECT admitted_seq FROM sinks WHERE name = $1 FOR NO KEY UPDATE";

/// Locks sink $1's row until the transaction ends (no row: nothing).
pub(super) const LOCK_SINK: &str = "SELECT 1 FROM sinks WHERE name = $1 FOR NO KEY UPDATE";

/// Sink $1 answered with a 2xx: it is not failing.
pub(super) const SINK_ANSWERED: &str =
    "UPDATE sinks SET failing_since = NULL, last_problem = NULL WHERE name = $1";

/// Sink $1's attempts failed at $2 with problem $3: failing since the
/// first failure after its last 2xx.
pub(super) const SINK_FAILING: &str = "UPDATE sinks
     SET failing_since = coalesce(failing_since, $2), last_problem = $3 WHERE name = $1";

/// Creates the deliveries of sink $1 for events after its cursor $2 up to
/// $3 whose type is in the array $4, due at $5 (an event about no issuance
/// gets `''` as its delivery's issuance: they are ordered among themselves).
pub(super) const ADMIT_EVENTS: &str =
    "INSERT INTO deliveries (sink, seq, issuance_id, created_at, next_attempt_at)
     SELECT $1, e.seq, coalesce(e.issuance_id, ''), $5, $5 FROM events e
     WHERE e.seq > $2 AND e.seq <= $3 AND e.type = ANY($4::text[])
     ORDER BY e.seq
     ON CONFLICT (sink, seq) DO NOTHING";

/// Moves sink $1's admission cursor to $2 (never back).
pub(super) const SET_ADMITTED: &str =
    "UPDATE sinks SET admitted_seq = greatest(admitted_seq, $2) WHERE name = $1";

/// Deliveries of sink $1 due at $2, $3 at most, each the oldest open one of
/// its issuance (a later event of an issuance waits for the earlier).
pub(super) const DUE_DELIVERIES: &str = "SELECT d.seq, e.id, e.type,
            convert_to(coalesce(e.issuance_id, ''), 'UTF8') AS issuance_id,
            utc_text(e.occurred_at) AS occurred_at, e.data::text AS data,
            d.attempts, utc_text(d.created_at) AS created_at
     FROM deliveries d JOIN events e ON e.seq = d.seq
     WHERE d.sink = $1 AND d.delivered_at IS NULL AND d.failed_at IS NULL
       AND d.next_attempt_at <= $2
       AND NOT EXISTS (SELECT 1 FROM deliveries p
                       WHERE p.sink = d.sink AND p.issuance_id = d.issuance_id AND p.seq < d.seq
                         AND p.delivered_at IS NULL AND p.failed_at IS NULL)
     ORDER BY d.next_attempt_at, d.seq LIMIT $3";

/// When sink $1's next open delivery is due.
pub(super) const NEXT_DELIVERY_DUE: &str = "SELECT min(next_attempt_at) FROM deliveries
     WHERE sink = $1 AND delivered_at IS NULL AND failed_at IS NULL";

/// Writes one attempt of sink $1 at delivery $2: $3 attempted at, $4 HTTP
/// status, $5 error, $6 next attempt (NULL: unchanged), $7 delivered at,
/// $8 given up at. Only an open delivery changes.
pub(super) const RECORD_ATTEMPT: &str = "UPDATE deliveries SET
         attempts = attempts + 1, last_attempt_at = $3, last_status = $4, last_error = $5,
         next_attempt_at = coalesce($6, next_attempt_at), delivered_at = $7, failed_at = $8
     WHERE sink = $1 AND seq = $2 AND delivered_at IS NULL AND failed_at IS NULL";

/// Makes every open delivery of sink $1 due at $2 (the receiver is back,
/// or the sink was enabled again).
pub(in crate::store::postgres) const DELIVERIES_DUE_NOW: &str =
    "UPDATE deliveries SET next_attempt_at = $2
     WHERE sink = $1 AND delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at > $2";

/// Undelivered, undiscarded deliveries that failed at least once, or whose
/// sink is not in the array $2 of configured sinks (never to be attempted),
/// oldest event first, $1 at most; with their sink's `disabled_at` and
/// whether it is configured.
pub(super) const FAILED_DELIVERIES: &str = "SELECT d.sink, d.seq, e.id, e.type, e.issuance_id,
            utc_text(e.occurred_at) AS occurred_at, d.attempts, d.last_status, d.last_error,
            utc_text(d.last_attempt_at) AS last_attempt_at,
            utc_text(d.next_attempt_at) AS next_attempt_at, utc_text(d.failed_at) AS failed_at,
            utc_text(s.disabled_at) AS sink_disabled_at,
            d.sink = ANY($2::text[]) AS sink_configured
     FROM deliveries d JOIN events e ON e.seq = d.seq LEFT JOIN sinks s ON s.name = d.sink
     WHERE d.delivered_at IS NULL AND d.discarded_at IS NULL
       AND (d.failed_at IS NOT NULL OR d.attempts > 0 OR NOT d.sink = ANY($2::text[]))
     ORDER BY d.seq, d.sink LIMIT $1";

/// Schedules event $2 for sink $1 again at $3, as new (whatever happened
/// before, a discard included). Changes nothing if there is no such event.
pub(super) const REDELIVER: &str =
    "INSERT INTO deliveries (sink, seq, issuance_id, created_at, next_attempt_at)
     SELECT $1, seq, coalesce(issuance_id, ''), $3, $3 FROM events WHERE seq = $2
     ON CONFLICT (sink, seq) DO UPDATE SET
         attempts = 0, next_attempt_at = excluded.next_attempt_at,
         created_at = excluded.created_at,
         delivered_at = NULL, failed_at = NULL, discarded_at = NULL,
         last_status = NULL, last_error = NULL, last_attempt_at = NULL";

/// Discards sink $1's undelivered deliveries at $2 (only the seqs in the
/// array $3, unless it is NULL): closed for good, kept for the record.
pub(super) const DISCARD: &str =
    "UPDATE deliveries SET discarded_at = $2, failed_at = coalesce(failed_at, $2)
     WHERE sink = $1 AND delivered_at IS NULL AND discarded_at IS NULL
       AND ($3::bigint[] IS NULL OR seq = ANY($3::bigint[]))";

// --- The delivery log, pruning, range replays, disable_after -----------------

/// One row of the delivery log: sink $1, event $2, at $3, $4 ms, status $5,
/// error $6, answer $7; only for a delivery that exists.
pub(super) const LOG_ATTEMPT: &str =
    "INSERT INTO attempts (sink, seq, attempted_at, duration_ms, http_status, error, response)
     SELECT $1, $2, $3, $4, $5, $6, $7
     WHERE EXISTS (SELECT 1 FROM deliveries WHERE sink = $1 AND seq = $2)";

/// Event $1.
pub(super) const EVENT: &str = concat!(event_columns!(), " WHERE seq = $1");

/// Event $1's attempts, by sink then time.
pub(super) const ATTEMPTS_OF: &str =
    "SELECT sink, utc_text(attempted_at) AS attempted_at, duration_ms, http_status, error, response
     FROM attempts WHERE seq = $1 ORDER BY sink, attempted_at, ctid";

/// Sink $1's attempts before $2, and those of its deliveries delivered before $2.
pub(super) const PRUNE_ATTEMPTS: &str = "DELETE FROM attempts
     WHERE sink = $1 AND (attempted_at < $2 OR seq IN (
         SELECT seq FROM deliveries WHERE sink = $1 AND delivered_at IS NOT NULL AND delivered_at < $2))";

/// Sink $1's deliveries delivered before $2 (never an undelivered one).
pub(super) const PRUNE_DELIVERED: &str =
    "DELETE FROM deliveries WHERE sink = $1 AND delivered_at IS NOT NULL AND delivered_at < $2";

/// The seqs of events that occurred in [$1, $2) ($2 NULL: no end), of type $3
/// (NULL: any), oldest first.
pub(super) const EVENTS_IN_RANGE: &str = "SELECT seq, type FROM events
     WHERE occurred_at >= $1 AND ($2::timestamptz IS NULL OR occurred_at < $2)
       AND ($3::text IS NULL OR type = $3)
     ORDER BY seq";

/// Disables sink $1 at $2 for reason $3.
pub(super) const DISABLE_FAILING_SINK: &str =
    "UPDATE sinks SET disabled_at = $2, disabled_reason = $3 WHERE name = $1";

/// A `sink.disabled` event at $1: sink $2, reason $3, failing since $4,
/// `disable_after` $5 (as configured, e.g. `5days`).
pub(super) const INSERT_SINK_DISABLED: &str =
    "INSERT INTO events (type, issuance_id, occurred_at, data)
     VALUES ('sink.disabled', NULL, $1,
             jsonb_build_object('sink', $2::text, 'reason', $3::text,
                                'failing_since', utc_text($4::timestamptz),
                                'disable_after', $5::text, 'disabled_at', utc_text($1::timestamptz)))";
