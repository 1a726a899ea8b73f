//! The statements of `charges.rs` and `resolve.rs`. Instants are bound as
//! `timestamptz` and read back as UTC text (`utc_text`).

/// A request performed at once by its inserter $3 (the `charge` command):
/// amount $1, force $2 (0 or 1), sent at $4. Returns its id.
pub(super) const START_CHARGE_REQUEST: &str =
    "INSERT INTO charge_requests (amount, force, state, performed_by, sent_at, requested_at)
     VALUES ($1, $2, 'sending', $3, $4, $4) RETURNING id";

/// Whether a request is pending (a read: the daemon claims only then).
pub(super) const ANY_PENDING_CHARGE_REQUEST: &str =
    "SELECT EXISTS (SELECT 1 FROM charge_requests WHERE state = 'pending')";

/// Claims the oldest pending request for performer $1 at $2 (pending ->
/// sending, before anything is sent). Returns (id, amount, force).
///
/// Two guards, each enough on its own that a row is claimed once (the
/// contract test `a_pending_request_is_claimed_exactly_once` fails only
/// without both): the CTE locks its row and skips rows another claim holds,
/// so concurrent claims take different rows instead of queueing on one; and
/// `r.state = 'pending'` is re-checked on the row's newest version, so a row
/// another daemon claimed since this statement's snapshot is never taken
/// again (this claim then finds nothing this time; the caller looks again).
pub(super) const CLAIM_CHARGE_REQUEST: &str = "WITH c AS (
         SELECT id FROM charge_requests WHERE state = 'pending'
         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
     UPDATE charge_requests r SET state = 'sending', performed_by = $1, sent_at = $2
     FROM c WHERE r.id = c.id AND r.state = 'pending'
     RETURNING r.id, r.amount, r.force";

/// Writes request $1's outcome, if performer $2 still has it in flight (or
/// it was declared unknown meanwhile and nobody resolved it yet: the answer
/// knows better; a person's resolution is never overwritten): $3 state,
/// $4 issuance id, $5 HTTP status, $6 error code, $7 error message, $8 finished at.
pub(super) const FINISH_CHARGE_REQUEST: &str =
    "UPDATE charge_requests SET state = $3, issuance_id = $4, http_status = $5, error_code = $6,
         error_message = $7, finished_at = $8
     WHERE id = $1 AND performed_by = $2 AND state IN ('sending', 'unknown') AND resolved_at IS NULL";

/// The stored status of issuance $1, its row locked until commit: the status
/// a created charge's id is judged by cannot change before it is recorded.
pub(super) const STATUS_OF: &str = "SELECT status FROM issuances WHERE id = $1 FOR UPDATE";

/// Serialises the transactions that give a request its issuance (a created
/// charge's outcome, a resolution) so that "no other request has this
/// issuance" holds when checked: a transaction-level advisory lock, key
/// 'iwresolv' as a big-endian integer.
pub(super) const LOCK_CHARGE_ISSUANCES: &str = "SELECT pg_advisory_xact_lock(7599668676264946806)";

/// Starts watching id $1, unless it is watched already.
pub(super) const ADD_ID: &str =
    "INSERT INTO issuances (id) VALUES ($1) ON CONFLICT (id) DO NOTHING";

/// The newest WAITED or READY issuance still watched: (id, status).
pub(super) const OPEN_CHARGE: &str = "SELECT id, status FROM issuances
     WHERE status IN ('WAITED', 'READY') AND watch = 'active'
     ORDER BY added_at DESC LIMIT 1";

/// What goes before request $1, first come first served: the oldest other
/// request in flight (`sending`, whoever sends it), or pending since before
/// $1 with an amount a performer would send (at most $2; a larger one is
/// rejected unsent, so it never holds anyone up). Newer pending requests wait
/// for $1, not the other way round. (id, state).
pub(super) const REQUEST_AHEAD: &str = "SELECT id, state FROM (
         SELECT id, state FROM charge_requests WHERE state = 'sending' AND id <> $1
         UNION ALL
         SELECT id, state FROM charge_requests WHERE state = 'pending' AND id < $1 AND amount <= $2
     ) AS ahead
     ORDER BY id LIMIT 1";

/// The oldest request of unknown outcome nobody resolved yet: (id, amount,
/// since when it is unknown, as UTC text).
pub(super) const UNRESOLVED_UNKNOWN: &str =
    "SELECT id, amount, utc_text(coalesce(finished_at, sent_at, requested_at))
     FROM charge_requests WHERE state = 'unknown' AND resolved_at IS NULL ORDER BY id LIMIT 1";

/// Forced request $1, in flight for performer $2, is sent past $3.
pub(super) const RECORD_FORCED_PAST: &str = "UPDATE charge_requests SET forced_past = $3
     WHERE id = $1 AND performed_by = $2 AND state = 'sending'";

/// Resolves request $1 (unknown, unresolved): resolution $2, issuance $3
/// (NULL for 'none'), at $4 by $5.
pub(super) const RESOLVE_CHARGE_REQUEST: &str =
    "UPDATE charge_requests SET resolution = $2, issuance_id = coalesce($3, issuance_id),
         resolved_at = $4, resolved_by = $5
     WHERE id = $1 AND state = 'unknown' AND resolved_at IS NULL";

/// Another request than $2 whose charge is issuance $1: its id.
pub(super) const REQUEST_OF_ISSUANCE: &str =
    "SELECT id FROM charge_requests WHERE issuance_id = $1 AND id <> $2 ORDER BY id LIMIT 1";

/// The columns of a `ChargeRequestRow`, instants as UTC text.
macro_rules! charge_request_columns {
    () => {
        "SELECT id, amount, utc_text(requested_at) AS requested_at, state, force, performed_by,
                utc_text(sent_at) AS sent_at, utc_text(finished_at) AS finished_at, issuance_id,
                http_status, error_code, error_message, resolution,
                utc_text(resolved_at) AS resolved_at, resolved_by, forced_past, source
         FROM charge_requests"
    };
}

/// Requests, newest first, $1 at most.
pub(super) const CHARGE_REQUESTS: &str =
    concat!(charge_request_columns!(), " ORDER BY id DESC LIMIT $1");

/// Request $1.
pub(super) const CHARGE_REQUEST: &str = concat!(charge_request_columns!(), " WHERE id = $1");

/// Request $1 as `CHARGE_REQUEST` reads it, its row locked until commit (a
/// resolution reads what it writes over).
pub(super) const CHARGE_REQUEST_FOR_UPDATE: &str =
    concat!(charge_request_columns!(), " WHERE id = $1 FOR UPDATE");

/// A balance answer: $1 observed at, $2 balance, $3 expiring within 30 days.
pub(super) const INSERT_BALANCE: &str =
    "INSERT INTO balance_history (observed_at, balance, expiring_30d) VALUES ($1, $2, $3)";

/// The last balance seen.
pub(super) const LAST_BALANCE: &str =
    "SELECT balance FROM balance_history ORDER BY seq DESC LIMIT 1";

/// A balance.low event at $1: balance $2, threshold $3, expiring $4 (the same
/// data as SQLite's `json_object`, the instant in its text layout).
pub(super) const INSERT_BALANCE_LOW: &str =
    "INSERT INTO events (type, issuance_id, occurred_at, data)
     VALUES ('balance.low', NULL, $1,
             jsonb_build_object('balance', $2::bigint, 'threshold', $3::bigint,
                                'expiring_30d', $4::bigint, 'observed_at', utc_text($1)))";
