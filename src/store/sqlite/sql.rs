//! Every statement the store runs, one constant each: the code that runs a
//! statement and the tests that explain its query plan use the same text, so a
//! plan test cannot pass on a copy that production no longer runs.
//!
//! Each constant's doc lists its parameters (`?1`, `?2`, ...) in the order the
//! caller binds them. The few batches that arrive as one JSON array of
//! objects (see `rows.rs`) are read by field name (`j.value ->> '$.id'`),
//! never by position. A watch compared in a statement's text is spelled with
//! `watch_text!` (see `watch.rs`), so the partial indexes on
//! `watch = 'active'` stay usable. A lease check on a row found by its id
//! spells the owner `+lease_owner`, which keeps SQLite from reaching the row
//! through the index of leased rows instead of the primary key. The due-index
//! reads name their index (`INDEXED BY`): for `status IS NULL` SQLite would
//! otherwise prefer the status index and sort every new row, and with it a
//! missing index is an error, not a silent scan.
//!
//! One list of every statement, so that a reader (or a plan test) finds any of
//! them as `sql::X`; the outbox's and sinks' statements are in `sql/outbox.rs`,
//! the sinks' holders' in `sql/holders.rs`.

use crate::store::watch::watch_text;

mod budget;
mod dashboard;
mod holders;
mod outbox;
mod top_up;
pub(super) use budget::*;
pub(super) use dashboard::*;
pub(super) use holders::*;
pub(super) use outbox::*;
pub(super) use top_up::*;

// --- Claiming and scheduling -------------------------------------------------

/// Leases due active issuances: ?1 lease expiry, ?2 now, ?3 how many at most,
/// ?4 how many of them are kept for rows never seen yet (when that many are
/// due), ?5 the claiming daemon's id. Each claimed row records its owner and
/// gets a new fence. Returns the claimed rows (id as bytes, status, vbank due,
/// attempts, first 404, fence).
///
/// Rows seen before and rows never seen are claimed from their own due index,
/// each in due order: seen rows take what the reserve for new rows leaves, and
/// new rows fill the rest. A backlog of inserted ids thus gets at least ?4 of
/// every claim and cannot push due READY rows back, and with no backlog either
/// kind may use the whole claim.
pub(super) const CLAIM_DUE: &str = concat!(
    "WITH reserved AS (SELECT rowid AS r FROM issuances INDEXED BY issuances_new
                      WHERE watch = '",
    watch_text!(active),
    "' AND status IS NULL AND next_poll_at <= ?2
                      ORDER BY next_poll_at LIMIT ?4),
          seen AS (SELECT rowid AS r FROM issuances INDEXED BY issuances_due
                   WHERE watch = '",
    watch_text!(active),
    "' AND status IS NOT NULL AND next_poll_at <= ?2
                   ORDER BY next_poll_at LIMIT ?3 - (SELECT count(*) FROM reserved)),
          fresh AS (SELECT rowid AS r FROM issuances INDEXED BY issuances_new
                    WHERE watch = '",
    watch_text!(active),
    "' AND status IS NULL AND next_poll_at <= ?2
                    ORDER BY next_poll_at LIMIT ?3 - (SELECT count(*) FROM seen))
     UPDATE issuances SET next_poll_at = ?1, lease_owner = ?5, lease_fence = lease_fence + 1
     WHERE rowid IN (SELECT r FROM seen UNION ALL SELECT r FROM fresh)
     RETURNING CAST(id AS BLOB), status, vbank_due_at, attempts, not_found_since, lease_fence"
);

/// Makes leased issuances due now: ?1 rows `{id, until, fence}` (the lease
/// each was given; a row whose lease someone has changed or taken is left
/// alone), ?2 now, ?3 the daemon's id.
pub(super) const RELEASE_LEASES: &str = "UPDATE issuances SET next_poll_at = ?2, lease_owner = NULL
     FROM jsonb_each(?1) AS j
     WHERE issuances.id = j.value ->> '$.id' AND issuances.next_poll_at = j.value ->> '$.until'
       AND +issuances.lease_owner = ?3 AND issuances.lease_fence = j.value ->> '$.fence'";

/// Makes the claims of a dead daemon ?1 due at ?2 (or earlier, if they were)
/// and ends its leases. Reads only leased rows (the partial index on
/// `lease_owner`). Returns how many.
pub(super) const TAKE_OVER: &str =
    "UPDATE issuances SET next_poll_at = min(next_poll_at, ?2), lease_owner = NULL
     WHERE lease_owner = ?1";

/// The first (`min`) or last (`max`) due time in one of the two due indexes:
/// `issuances_due` holds the seen active rows (`status IS NOT NULL`),
/// `issuances_new` the never-seen ones (`status IS NULL`). Each reads one end
/// of its index.
macro_rules! due_edge {
    ($edge:literal, $index:literal, $seen:literal) => {
        concat!(
            "SELECT ",
            $edge,
            "(next_poll_at) FROM issuances INDEXED BY ",
            $index,
            " WHERE watch = '",
            watch_text!(active),
            "' AND status ",
            $seen
        )
    };
}

/// When the next seen active issuance falls due.
pub(super) const NEXT_DUE: &str = due_edge!("min", "issuances_due", "IS NOT NULL");
/// When the next never-seen active issuance falls due.
pub(super) const NEXT_DUE_NEW: &str = due_edge!("min", "issuances_new", "IS NULL");
/// When the last seen active issuance falls due.
pub(super) const LAST_DUE: &str = due_edge!("max", "issuances_due", "IS NOT NULL");
/// When the last never-seen active issuance falls due.
pub(super) const LAST_DUE_NEW: &str = due_edge!("max", "issuances_new", "IS NULL");

/// Moves active issuances due after ?3 to a uniformly random time in
/// `?1 .. ?1 + ?2` (Unix milliseconds). Run only after the wall clock jumped
/// backwards (a scan of the active rows, which is rare and needed then).
pub(super) const PULL_BACK_BEYOND: &str = concat!(
    "UPDATE issuances
     SET next_poll_at = strftime('%Y-%m-%dT%H:%M:%fZ', (?1 + abs(random() % ?2)) / 1000.0, 'unixepoch')
     WHERE watch = '",
    watch_text!(active),
    "' AND next_poll_at > ?3"
);

// --- Recording poll results (`record/mod.rs`) --------------------------------
//
// Each write of a result is fenced: it matches its row (found by primary key)
// only while `lease_owner` and `lease_fence` are still the claim's, and every
// one of them starts with the same three parameters: ?1 id, ?2 the daemon's
// id, ?3 the claim's fence. Each ends the lease (`lease_owner = NULL`).

/// Writes an observation: ?1 id, ?2 the daemon's id, ?3 the claim's fence,
/// ?4 the stored status it must replace (NULL: never seen), ?5 status,
/// ?6 watch, ?7 amount, ?8 created at, ?9 modified at, ?10 vbank due at,
/// ?11 account number, ?12 bank name, ?13 holder name (each NULL keeps the
/// stored value), ?14 next poll, ?15 polled at, ?16 warnings (last error).
pub(super) const WRITE_OBSERVATION: &str = "UPDATE issuances SET status = ?5, watch = ?6,
         amount = COALESCE(?7, amount), created_at = COALESCE(?8, created_at),
         modified_at = COALESCE(?9, modified_at), vbank_due_at = COALESCE(?10, vbank_due_at),
         vbank_account_number = COALESCE(?11, vbank_account_number),
         bank_name = COALESCE(?12, bank_name),
         vbank_holder_name = COALESCE(?13, vbank_holder_name),
         next_poll_at = ?14, attempts = 0, polls = polls + 1,
         last_polled_at = ?15, last_seen_at = ?15, last_error = ?16,
         not_found_since = NULL, lease_owner = NULL
     WHERE id = ?1 AND +lease_owner = ?2 AND lease_fence = ?3 AND status IS ?4";

/// The stored status of issuance ?1, if it is still leased to ?2 under fence ?3.
pub(super) const STATUS_UNDER_LEASE: &str =
    "SELECT status FROM issuances WHERE id = ?1 AND +lease_owner = ?2 AND lease_fence = ?3";

/// The stored status of issuance ?1 (charges: the status an answer is compared with).
pub(super) const STATUS_OF: &str = "SELECT status FROM issuances WHERE id = ?1";

/// A failed poll: ?1 id, ?2 the daemon's id, ?3 the claim's fence, ?4 watch,
/// ?5 next poll, ?6 consecutive failures, ?7 now, ?8 the error, ?9 first 404
/// of the current run.
pub(super) const RECORD_FAILED: &str =
    "UPDATE issuances SET watch = ?4, next_poll_at = ?5, attempts = ?6, polls = polls + 1,
         last_polled_at = ?7, last_error = ?8, not_found_since = ?9, lease_owner = NULL
     WHERE id = ?1 AND +lease_owner = ?2 AND lease_fence = ?3";

/// Ends the watch of an id that can never be looked up: ?1 the id's raw bytes
/// (matched as bytes: they need not be valid UTF-8), ?2 the daemon's id,
/// ?3 the claim's fence, ?4 reason, ?5 now.
pub(super) const RECORD_REJECTED: &str = concat!(
    "UPDATE issuances SET watch = '",
    watch_text!(rejected),
    "', last_error = ?4, last_polled_at = ?5, lease_owner = NULL
     WHERE id = CAST(?1 AS TEXT) AND +lease_owner = ?2 AND lease_fence = ?3"
);

/// Appends a transition: ?1 issuance, ?2 from, ?3 to, ?4 observed at,
/// ?5 modified at, ?6 anomaly. Its trigger writes the event.
pub(super) const INSERT_TRANSITION: &str = "INSERT INTO transitions
         (issuance_id, from_status, to_status, observed_at, modified_at, anomaly)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Clears the open flags of issuance ?1 at ?2 (it left READY).
pub(super) const CLEAR_FLAGS: &str =
    "UPDATE flags SET cleared_at = ?2 WHERE issuance_id = ?1 AND cleared_at IS NULL";

/// Raises flag ?2 with rung ?4 (ms; 0 for OVERDUE) on issuance ?1 at ?3,
/// unless that flag and rung were raised before.
pub(super) const RAISE_FLAG: &str = "INSERT INTO flags (issuance_id, kind, raised_at, lead_ms) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING";

// --- Reads and small writes for the CLI --------------------------------------

/// Starts watching id ?1, unless it is watched already.
pub(super) const ADD_ID: &str =
    "INSERT INTO issuances (id) VALUES (?1) ON CONFLICT (id) DO NOTHING";

/// The columns of an `IssuanceRow`, the id as bytes.
macro_rules! issuance_columns {
    () => {
        "SELECT CAST(id AS BLOB) AS id, status, amount, created_at, modified_at,
            vbank_due_at, vbank_account_number, bank_name, vbank_holder_name, watch, next_poll_at,
            attempts, polls, last_polled_at, last_seen_at, last_error, added_at
         FROM issuances"
    };
}

/// Issuances with status ?1 (NULL: all; `UNSEEN`: not seen yet), in the
/// order they were added, ?2 at most.
pub(super) const LIST_ISSUANCES: &str = concat!(
    issuance_columns!(),
    " WHERE ?1 IS NULL OR status = ?1 OR (?1 = 'UNSEEN' AND status IS NULL)
     ORDER BY added_at, id LIMIT ?2"
);

/// Issuance ?1.
pub(super) const ISSUANCE: &str = concat!(issuance_columns!(), " WHERE id = ?1");

/// The transitions of issuance ?1, oldest first.
pub(super) const TRANSITIONS_OF: &str =
    "SELECT seq, issuance_id, from_status, to_status, observed_at, modified_at, anomaly
     FROM transitions WHERE issuance_id = ?1 ORDER BY seq";

/// The flags of issuance ?1, or (?1 NULL) every open flag, soonest due first.
pub(super) const FLAGS: &str = "SELECT CAST(f.issuance_id AS BLOB) AS issuance_id, f.kind, f.raised_at, f.cleared_at, i.vbank_due_at, i.status
     FROM flags f JOIN issuances i ON i.id = f.issuance_id
     WHERE (?1 IS NULL AND f.cleared_at IS NULL) OR f.issuance_id = ?1
     ORDER BY i.vbank_due_at, f.issuance_id, f.kind";

/// Issuances by watch and status.
pub(super) const COUNTS: &str = "SELECT watch, status, count(*) AS count FROM issuances GROUP BY watch, status ORDER BY watch, status";

/// Active issuances by status.
pub(super) const ACTIVE_COUNTS: &str = concat!(
    "SELECT status, count(*) FROM issuances WHERE watch = '",
    watch_text!(active),
    "' GROUP BY status ORDER BY status"
);

/// Issuances with an open DUE_SOON flag (of any rung).
pub(super) const OPEN_DUE_SOON: &str =
    "SELECT count(DISTINCT issuance_id) FROM flags WHERE cleared_at IS NULL AND kind = 'DUE_SOON'";

/// Issuances with an open OVERDUE flag.
pub(super) const OPEN_OVERDUE: &str =
    "SELECT count(DISTINCT issuance_id) FROM flags WHERE cleared_at IS NULL AND kind = 'OVERDUE'";

// --- Maintenance -------------------------------------------------------------

/// Folds the whole WAL back into the database file and truncates it.
pub(super) const CHECKPOINT: &str = "PRAGMA wal_checkpoint(TRUNCATE)";

/// Whether the migrations table exists (a database no migrator has touched has none).
pub(super) const HAS_MIGRATIONS_TABLE: &str =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";

/// The versions of the migrations applied to this database, in order
/// (sqlx's own table; a failed one, `success = 0`, does not count).
pub(super) const APPLIED_MIGRATIONS: &str =
    "SELECT version FROM _sqlx_migrations WHERE success = 1 ORDER BY version";

// --- The status screen (`status.rs`) ----------------------------------------

/// The newest successful lookup among active issuances (read through the
/// active-status index: as many rows as are watched, not as the table holds).
pub(super) const STATUS_LAST_SEEN_ACTIVE: &str = concat!(
    "SELECT max(last_seen_at) FROM issuances INDEXED BY issuances_active_by_status WHERE watch = '",
    watch_text!(active),
    "'"
);

/// The newest transition (a settled issuance's last answer was one).
pub(super) const STATUS_LAST_TRANSITION: &str = "SELECT max(observed_at) FROM transitions";

/// Active issuances whose last poll failed at or after ?1, by error text, most first.
pub(super) const STATUS_RECENT_ERRORS: &str = concat!(
    "SELECT last_error AS error, count(*) AS issuances, max(last_polled_at) AS last_at
     FROM issuances INDEXED BY issuances_active_by_status
     WHERE watch = '",
    watch_text!(active),
    "' AND last_error IS NOT NULL AND last_polled_at >= ?1
     GROUP BY last_error ORDER BY issuances DESC, last_error LIMIT 10"
);

/// Charge requests whose outcome is unknown (a charge may exist) and that no
/// person has resolved yet (`charges resolve`): how many, and the newest ten
/// (id, amount, requested_at, error_code).
pub(super) const STATUS_UNKNOWN_CHARGES: &str =
    "SELECT id, amount, requested_at, error_code, count(*) OVER () AS total
     FROM charge_requests WHERE state = 'unknown' AND resolved_at IS NULL
     ORDER BY id DESC LIMIT 10";

// --- Answers outside a poll (a created charge, a cancel) ---------------------

/// Leases issuance ?1 (any watch) to daemon ?3 with a new fence, due at ?2:
/// whatever poll of it is in flight now writes nothing (its fence is gone).
/// Returns the row as a claim (see [`CLAIM_DUE`]).
pub(super) const CLAIM_ONE: &str =
    "UPDATE issuances SET next_poll_at = ?2, lease_owner = ?3, lease_fence = lease_fence + 1
     WHERE id = ?1
     RETURNING CAST(id AS BLOB), status, vbank_due_at, attempts, not_found_since, lease_fence";

// --- Charge requests and the balance -----------------------------------------

/// A request performed at once by its inserter ?3 (the `charge` command):
/// amount ?1, force ?2, sent at ?4. Returns its id.
pub(super) const START_CHARGE_REQUEST: &str =
    "INSERT INTO charge_requests (amount, force, state, performed_by, sent_at, requested_at)
     VALUES (?1, ?2, 'sending', ?3, ?4, ?4) RETURNING id";

/// Claims the oldest pending request for performer ?1 at ?2 (pending ->
/// sending, before anything is sent). Returns (id, amount, force).
pub(super) const CLAIM_CHARGE_REQUEST: &str =
    "UPDATE charge_requests SET state = 'sending', performed_by = ?1, sent_at = ?2
     WHERE id = (SELECT id FROM charge_requests INDEXED BY charge_requests_pending
                 WHERE state = 'pending' ORDER BY id LIMIT 1)
       AND state = 'pending'
     RETURNING id, amount, force";

/// Whether a request is pending (a read: the daemon claims only then).
pub(super) const ANY_PENDING_CHARGE_REQUEST: &str =
    "SELECT EXISTS (SELECT 1 FROM charge_requests INDEXED BY charge_requests_pending
                       WHERE state = 'pending')";

/// Writes request ?1's outcome, if performer ?2 still has it in flight (or
/// it was declared unknown meanwhile and nobody resolved it yet: the answer
/// knows better; a person's resolution is never overwritten): ?3 state,
/// ?4 issuance id, ?5 HTTP status, ?6 error code, ?7 error message, ?8 finished at.
pub(super) const FINISH_CHARGE_REQUEST: &str =
    "UPDATE charge_requests SET state = ?3, issuance_id = ?4, http_status = ?5, error_code = ?6,
         error_message = ?7, finished_at = ?8
     WHERE id = ?1 AND performed_by = ?2 AND state IN ('sending', 'unknown') AND resolved_at IS NULL";

/// Requests in flight of the dead performer ?1 become unknown at ?2: their
/// POST may have been answered, and nobody will ever record the answer.
pub(super) const ABANDON_CHARGE_REQUESTS_OF: &str = "UPDATE charge_requests SET state = 'unknown', error_code = 'PERFORMER_DIED',
         error_message = 'the process sending this request ended before recording its answer: a charge may exist',
         finished_at = ?2
     WHERE state = 'sending' AND performed_by = ?1";

/// Requests in flight of performer ?1 sent before ?3 become unknown at ?2
/// (performers whose liveness cannot be known, after any request's time is up).
pub(super) const ABANDON_STALE_CHARGE_REQUESTS_OF: &str = "UPDATE charge_requests SET state = 'unknown', error_code = 'PERFORMER_DIED',
         error_message = 'no answer was recorded long after the request was sent (its process is gone): a charge may exist',
         finished_at = ?2
     WHERE state = 'sending' AND performed_by = ?1 AND sent_at < ?3";

/// Performers with requests in flight.
pub(super) const CHARGE_PERFORMERS: &str =
    "SELECT DISTINCT performed_by FROM charge_requests INDEXED BY charge_requests_sending
     WHERE state = 'sending' AND performed_by IS NOT NULL";

/// The newest WAITED or READY issuance still watched: (id, status).
pub(super) const OPEN_CHARGE: &str = concat!(
    "SELECT CAST(id AS BLOB), status FROM issuances WHERE status IN ('WAITED', 'READY') AND watch = '",
    watch_text!(active),
    "' ORDER BY added_at DESC LIMIT 1"
);

/// What goes before request ?1, first come first served: the oldest other
/// request in flight (`sending`, whoever sends it), or pending since before
/// ?1 with an amount a performer would send (at most ?2; a larger one is
/// rejected unsent, so it never holds anyone up). Newer pending requests wait
/// for ?1, not the other way round. (id, state).
pub(super) const REQUEST_AHEAD: &str = "SELECT id, state FROM (
         SELECT id, state FROM charge_requests INDEXED BY charge_requests_sending
         WHERE state = 'sending' AND id <> ?1
         UNION ALL
         SELECT id, state FROM charge_requests INDEXED BY charge_requests_pending
         WHERE state = 'pending' AND id < ?1 AND amount <= ?2)
     ORDER BY id LIMIT 1";

/// The oldest request of unknown outcome nobody resolved yet: (id, amount,
/// since when it is unknown).
pub(super) const UNRESOLVED_UNKNOWN: &str =
    "SELECT id, amount, coalesce(finished_at, sent_at, requested_at)
     FROM charge_requests INDEXED BY charge_requests_unresolved
     WHERE state = 'unknown' AND resolved_at IS NULL ORDER BY id LIMIT 1";

/// Forced request ?1, in flight for performer ?2, is sent past ?3.
pub(super) const RECORD_FORCED_PAST: &str = "UPDATE charge_requests SET forced_past = ?3
     WHERE id = ?1 AND performed_by = ?2 AND state = 'sending'";

/// Resolves request ?1 (unknown, unresolved): resolution ?2, issuance ?3
/// (NULL for 'none'), at ?4 by ?5.
pub(super) const RESOLVE_CHARGE_REQUEST: &str =
    "UPDATE charge_requests SET resolution = ?2, issuance_id = coalesce(?3, issuance_id),
         resolved_at = ?4, resolved_by = ?5
     WHERE id = ?1 AND state = 'unknown' AND resolved_at IS NULL";

/// Another request than ?2 whose charge is issuance ?1: its id.
pub(super) const REQUEST_OF_ISSUANCE: &str =
    "SELECT id FROM charge_requests WHERE issuance_id = ?1 AND id <> ?2 ORDER BY id LIMIT 1";

/// The columns of a `ChargeRequestRow`.
macro_rules! charge_request_columns {
    () => {
        "SELECT id, amount, requested_at, state, force, performed_by, sent_at, finished_at,
                issuance_id, http_status, error_code, error_message, resolution, resolved_at,
                resolved_by, forced_past, source FROM charge_requests"
    };
}

/// Requests, newest first, ?1 at most.
pub(super) const CHARGE_REQUESTS: &str =
    concat!(charge_request_columns!(), " ORDER BY id DESC LIMIT ?1");

/// Request ?1.
pub(super) const CHARGE_REQUEST: &str = concat!(charge_request_columns!(), " WHERE id = ?1");

/// A balance answer: ?1 observed at, ?2 balance, ?3 expiring within 30 days.
pub(super) const INSERT_BALANCE: &str =
    "INSERT INTO balance_history (observed_at, balance, expiring_30d) VALUES (?1, ?2, ?3)";

/// The last balance seen.
pub(super) const LAST_BALANCE: &str =
    "SELECT balance FROM balance_history ORDER BY seq DESC LIMIT 1";

/// A balance.low event at ?1: balance ?2, threshold ?3, expiring ?4.
pub(super) const INSERT_BALANCE_LOW: &str =
    "INSERT INTO events (type, issuance_id, occurred_at, data)
     VALUES ('balance.low', NULL, ?1,
             json_object('balance', ?2, 'threshold', ?3, 'expiring_30d', ?4, 'observed_at', ?1))";
