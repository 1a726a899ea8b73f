//! Every statement the store runs, one constant each: the code that runs a
//! statement and the tests that explain its query plan use the same text, so a
//! plan test cannot pass on a copy that production no longer runs.
//!
//! Each constant's doc lists its parameters (`?1`, `?2`, ...) in the order the
//! caller binds them. Batches arrive as one JSON array of objects (see
//! `rows.rs`) and are read by field name (`j.value ->> '$.status'`), never by
//! position. A watch compared in a statement's text is spelled with
//! `watch_text!` (see `watch.rs`), so the partial indexes on
//! `watch = 'active'` stay usable. A lease check on a row found by its id
//! spells the owner `+lease_owner`, which keeps SQLite from reaching the row
//! through the index of leased rows instead of the primary key. The due-index
//! reads name their index (`INDEXED BY`): for `status IS NULL` SQLite would
//! otherwise prefer the status index and sort every new row, and with it a
//! missing index is an error, not a silent scan.

use super::watch::watch_text;

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
     FROM json_each(?1) AS j
     WHERE issuances.id = j.value ->> '$.id' AND issuances.next_poll_at = j.value ->> '$.until'
       AND +issuances.lease_owner = ?3 AND issuances.lease_fence = j.value ->> '$.fence'";

/// Makes the claims of a dead daemon ?1 due at ?2 (or earlier, if they were)
/// and ends its leases. Reads only leased rows (the partial index on
/// `lease_owner`). Returns how many.
pub(super) const TAKE_OVER: &str =
    "UPDATE issuances SET next_poll_at = min(next_poll_at, ?2), lease_owner = NULL
     WHERE lease_owner = ?1";

/// When the next seen active issuance falls due (the due index's first entry).
pub(super) const NEXT_DUE: &str = concat!(
    "SELECT min(next_poll_at) FROM issuances INDEXED BY issuances_due WHERE watch = '",
    watch_text!(active),
    "' AND status IS NOT NULL"
);

/// When the next never-seen active issuance falls due (the new-row index's first entry).
pub(super) const NEXT_DUE_NEW: &str = concat!(
    "SELECT min(next_poll_at) FROM issuances INDEXED BY issuances_new WHERE watch = '",
    watch_text!(active),
    "' AND status IS NULL"
);

/// When the last seen active issuance falls due (the due index's last entry).
pub(super) const LAST_DUE: &str = concat!(
    "SELECT max(next_poll_at) FROM issuances INDEXED BY issuances_due WHERE watch = '",
    watch_text!(active),
    "' AND status IS NOT NULL"
);

/// When the last never-seen active issuance falls due (the new-row index's last entry).
pub(super) const LAST_DUE_NEW: &str = concat!(
    "SELECT max(next_poll_at) FROM issuances INDEXED BY issuances_new WHERE watch = '",
    watch_text!(active),
    "' AND status IS NULL"
);

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

// --- Recording poll results --------------------------------------------------

/// The columns every observation writes besides `status` and `watch`, from a
/// `json_each` row `j` holding an observation row (see `record/observe.rs`).
macro_rules! observation_columns {
    () => {
        "amount = COALESCE(j.value ->> '$.amount', amount),
         created_at = COALESCE(j.value ->> '$.created_at', created_at),
         modified_at = COALESCE(j.value ->> '$.modified_at', modified_at),
         vbank_due_at = COALESCE(j.value ->> '$.vbank_due_at', vbank_due_at),
         vbank_account_number = COALESCE(j.value ->> '$.vbank_account_number', vbank_account_number),
         bank_name = COALESCE(j.value ->> '$.bank_name', bank_name),
         vbank_holder_name = COALESCE(j.value ->> '$.vbank_holder_name', vbank_holder_name),
         next_poll_at = j.value ->> '$.next_poll_at', attempts = 0, polls = polls + 1,
         last_polled_at = j.value ->> '$.polled_at', last_seen_at = j.value ->> '$.polled_at',
         last_error = j.value ->> '$.last_error', not_found_since = NULL, lease_owner = NULL"
    };
}

/// Writes observations that change neither status nor watch: ?1 observation
/// rows, ?2 the daemon's id. Leaves `status` and `watch` out of the `SET` (so
/// their index entries are not rewritten); a row is written only while it is
/// still leased to ?2 under the row's `fence`, its stored status is still the
/// row's `expected_status` and it is still active. Returns the ids written.
pub(super) const WRITE_STEADY_OBSERVATIONS: &str = concat!(
    "UPDATE issuances SET ",
    observation_columns!(),
    " FROM json_each(?1) AS j
     WHERE issuances.id = j.value ->> '$.id' AND issuances.status IS j.value ->> '$.expected_status'
       AND +issuances.lease_owner = ?2 AND issuances.lease_fence = j.value ->> '$.fence'
       AND issuances.watch = '",
    watch_text!(active),
    "'
     RETURNING issuances.id"
);

/// Writes any observations: ?1 observation rows, ?2 the daemon's id, each only
/// while the row is still leased to ?2 under the row's `fence` and its stored
/// status is still the row's `expected_status`. Returns the ids written.
pub(super) const WRITE_OBSERVATIONS: &str = concat!(
    "UPDATE issuances SET status = j.value ->> '$.status', watch = j.value ->> '$.watch', ",
    observation_columns!(),
    " FROM json_each(?1) AS j
     WHERE issuances.id = j.value ->> '$.id' AND issuances.status IS j.value ->> '$.expected_status'
       AND +issuances.lease_owner = ?2 AND issuances.lease_fence = j.value ->> '$.fence'
     RETURNING issuances.id"
);

/// The stored status of issuance ?1.
pub(super) const STATUS_OF: &str = "SELECT status FROM issuances WHERE id = ?1";

/// A failed poll: ?1 watch, ?2 next poll, ?3 consecutive failures, ?4 now,
/// ?5 the error, ?6 first 404 of the current run, ?7 id, ?8 the daemon's id,
/// ?9 the fence it was claimed under (written only while that lease holds).
pub(super) const RECORD_FAILED: &str =
    "UPDATE issuances SET watch = ?1, next_poll_at = ?2, attempts = ?3, polls = polls + 1,
         last_polled_at = ?4, last_error = ?5, not_found_since = ?6, lease_owner = NULL
     WHERE id = ?7 AND +lease_owner = ?8 AND lease_fence = ?9";

/// Ends the watch of an id that can never be looked up: ?1 reason, ?2 now,
/// ?3 the id's raw bytes (matched as bytes: they need not be valid UTF-8),
/// ?4 the daemon's id, ?5 the fence (written only while that lease holds).
pub(super) const RECORD_REJECTED: &str = concat!(
    "UPDATE issuances SET watch = '",
    watch_text!(rejected),
    "', last_error = ?1, last_polled_at = ?2, lease_owner = NULL
     WHERE id = CAST(?3 AS TEXT) AND +lease_owner = ?4 AND lease_fence = ?5"
);

/// Appends transitions: ?1 transition rows, inserted in the array's order.
pub(super) const INSERT_TRANSITIONS: &str = "INSERT INTO transitions (issuance_id, from_status, to_status, observed_at, modified_at, anomaly)
     SELECT value ->> '$.issuance_id', value ->> '$.from_status', value ->> '$.to_status',
            value ->> '$.observed_at', value ->> '$.modified_at', value ->> '$.anomaly'
     FROM json_each(?1) ORDER BY key";

/// Clears the open flags of issuances that left READY: ?1 rows `{issuance_id, cleared_at}`.
pub(super) const CLEAR_FLAGS: &str =
    "UPDATE flags SET cleared_at = (SELECT j.value ->> '$.cleared_at' FROM json_each(?1) AS j
                                    WHERE j.value ->> '$.issuance_id' = flags.issuance_id)
     WHERE cleared_at IS NULL
       AND issuance_id IN (SELECT value ->> '$.issuance_id' FROM json_each(?1))";

/// Raises flag ?2 on issuance ?1 at ?3, unless that flag was raised before.
pub(super) const RAISE_FLAG: &str =
    "INSERT INTO flags (issuance_id, kind, raised_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";

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

/// Open DUE_SOON flags.
pub(super) const OPEN_DUE_SOON: &str =
    "SELECT count(*) FROM flags WHERE cleared_at IS NULL AND kind = 'DUE_SOON'";

// --- Maintenance -------------------------------------------------------------

/// Folds the whole WAL back into the database file and truncates it.
pub(super) const CHECKPOINT: &str = "PRAGMA wal_checkpoint(TRUNCATE)";
