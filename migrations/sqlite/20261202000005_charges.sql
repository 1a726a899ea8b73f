-- Charges: requests to create one (`charge_requests`), the balance they feed
-- (`balance_history`), and events that belong to no issuance (`balance.low`).
--
-- Money safety: a request row is performed at most once. It is claimed
-- (`pending` -> `sending`, with the performer's id) in one statement before its
-- POST is sent; the POST's outcome is written over `sending` afterwards. A row
-- still `sending` whose performer is dead (its owner lock is free, see
-- store/owners.rs) becomes `unknown`: never sent again. See README, "Charges".

CREATE TABLE charge_requests (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- KRW, a positive integer. The daemon refuses (state 'rejected') amounts
    -- above charge.max_amount without sending anything.
    amount        INTEGER NOT NULL CHECK (amount > 0),
    requested_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- pending: waiting for the daemon (a plain INSERT of `amount` makes one);
    -- sending: claimed, its POST may be on the wire;
    -- created: the API created issuance `issuance_id` (watched from then on);
    -- refused: the API answered with error `error_code`: nothing was created;
    -- unknown: no usable answer (timeout, 5xx, dropped connection, garbage, or
    --          its performer died mid-request): a charge MAY exist; check the
    --          partner console before asking again;
    -- rejected: refused here before sending (amount above the bound, a charge
    --          already open): nothing was sent.
    state         TEXT NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'sending', 'created', 'refused', 'unknown', 'rejected')),
    -- 1: send even while the database holds a WAITED or READY issuance.
    force         INTEGER NOT NULL DEFAULT 0 CHECK (force IN (0, 1)),
    -- Who performed it: the process's owner id (the same as issuances.lease_owner).
    performed_by  TEXT,
    sent_at       TEXT,
    finished_at   TEXT,
    issuance_id   TEXT,
    -- The API's HTTP status, when it answered.
    http_status   INTEGER,
    -- The API's errorCode (refused), or this program's code for why: LOCAL_*
    -- (rejected), TIMEOUT, TRANSPORT, SERVER_ERROR, MALFORMED, PERFORMER_DIED (unknown).
    error_code    TEXT,
    error_message TEXT
) STRICT;

-- The daemon's way in: the oldest pending request.
CREATE INDEX charge_requests_pending ON charge_requests (id) WHERE state = 'pending';
-- Finding a dead performer's requests in flight.
CREATE INDEX charge_requests_sending ON charge_requests (performed_by) WHERE state = 'sending';

-- What the balance endpoint answered, one row per poll (balance.interval).
CREATE TABLE balance_history (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    observed_at  TEXT NOT NULL,
    balance      INTEGER NOT NULL,
    expiring_30d INTEGER NOT NULL
) STRICT;

CREATE INDEX balance_history_by_time ON balance_history (observed_at);

-- Events that are about no issuance (balance.low): `events.issuance_id` becomes
-- nullable. SQLite cannot drop a NOT NULL, so the table is rebuilt, and
-- `deliveries` with it: renaming `events` points the deliveries' foreign key
-- at the old table, and dropping that would cascade to every delivery. With
-- legacy_alter_table on, the rename leaves the triggers that insert into
-- `events` naming `events`, which is the new table by the time they run.
PRAGMA legacy_alter_table = ON;
ALTER TABLE events RENAME TO events_v1;
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE DEFAULT ('evt_' || lower(hex(randomblob(16)))),
    -- issuance.status_changed | issuance.due_soon | issuance.overdue |
    -- issuance.watch_ended | balance.low
    type         TEXT NOT NULL,
    -- NULL for events about no issuance (balance.low).
    issuance_id  TEXT REFERENCES issuances (id) ON DELETE CASCADE,
    occurred_at  TEXT NOT NULL,
    data         TEXT NOT NULL CHECK (json_valid(data))
) STRICT;
INSERT INTO events (seq, id, type, issuance_id, occurred_at, data)
    SELECT seq, id, type, issuance_id, occurred_at, data FROM events_v1 ORDER BY seq;
-- The cursor only grows: keep the old counter, even past deleted events.
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'events', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events');
UPDATE sqlite_sequence
    SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events_v1'), 0))
    WHERE name = 'events';

CREATE TABLE deliveries_v2 (
    sink             TEXT NOT NULL REFERENCES sinks (name) ON DELETE CASCADE,
    seq              INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    -- The event's issuance; '' for events about no issuance (they are ordered
    -- among themselves).
    issuance_id      TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    last_attempt_at  TEXT,
    -- HTTP status of the last attempt (NULL: no answer, see last_error).
    last_status      INTEGER,
    last_error       TEXT,
    delivered_at     TEXT,
    failed_at        TEXT,
    PRIMARY KEY (sink, seq)
) STRICT;
INSERT INTO deliveries_v2 SELECT sink, seq, issuance_id, created_at, attempts, next_attempt_at,
    last_attempt_at, last_status, last_error, delivered_at, failed_at FROM deliveries;
DROP TABLE deliveries;
DROP TABLE events_v1;
ALTER TABLE deliveries_v2 RENAME TO deliveries;
PRAGMA legacy_alter_table = OFF;

CREATE INDEX events_by_issuance ON events (issuance_id, seq);
CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events is append-only');
END;
CREATE INDEX deliveries_open ON deliveries (sink, next_attempt_at, seq)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX deliveries_open_by_issuance ON deliveries (sink, issuance_id, seq)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX deliveries_failed ON deliveries (failed_at) WHERE failed_at IS NOT NULL;

-- balance.low (the balance fell below balance.low_threshold, once per
-- crossing: watcher/balance.rs decides) is inserted by the daemon in the same
-- transaction as the balance_history row that crossed.
