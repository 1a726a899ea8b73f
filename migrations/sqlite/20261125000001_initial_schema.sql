-- issuance-watcher schema, version 1.
--
-- This schema is a public interface: other programs insert ids into `issuances`
-- and read results out of every table and view here. Change it only through new
-- migrations, never by editing this file.
--
-- Every instant is TEXT in one fixed, sortable UTC layout: 2026-11-25T03:04:05.123Z
-- (strftime('%Y-%m-%dT%H:%M:%fZ', 'now') produces it), so text comparison is time order.

CREATE TABLE issuances (
    -- The Bunjang issuance id, an opaque string. Inserting just this column is a
    -- valid way to start watching an id.
    id                   TEXT PRIMARY KEY NOT NULL,
    -- Last observed status: WAITED, READY, DONE, CANCELLED, FAIL. NULL until first seen.
    status               TEXT,
    -- Fields of the last successful lookup. Instants converted from the API's naive KST to UTC.
    amount               INTEGER,
    created_at           TEXT,
    modified_at          TEXT,
    vbank_due_at         TEXT,
    vbank_account_number TEXT,
    bank_name            TEXT,
    vbank_holder_name    TEXT,
    -- Why the watch goes on or ended: 'active' (being polled), 'settled' (terminal
    -- status seen), 'not_found' (404 for longer than the grace period), 'rejected'
    -- (the id can never be looked up, e.g. empty). Set watch = 'active' and
    -- next_poll_at to now to watch a row again.
    watch                TEXT NOT NULL DEFAULT 'active'
                         CHECK (watch IN ('active', 'settled', 'not_found', 'rejected')),
    -- When the row is next due for a poll. While a poll is in flight it holds the
    -- lease expiry, so a crashed daemon's claims simply become due again.
    next_poll_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                         CHECK (next_poll_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'),
    -- Consecutive failed polls (drives the error backoff); 0 after a success.
    attempts             INTEGER NOT NULL DEFAULT 0,
    -- Total polls sent for this issuance.
    polls                INTEGER NOT NULL DEFAULT 0,
    last_polled_at       TEXT,
    -- Last successful lookup.
    last_seen_at         TEXT,
    -- Last poll's problem, NULL after a clean success.
    last_error           TEXT,
    -- First 404 of the current run of 404s (the not-found grace period counts from here).
    not_found_since      TEXT,
    added_at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

-- The scheduler's only way in: due rows among the active ones. Partial, so its
-- size and the claim's cost do not grow with the number of settled rows.
CREATE INDEX issuances_due ON issuances (next_poll_at) WHERE watch = 'active';
CREATE INDEX issuances_status ON issuances (status);

-- Append-only history: one row per observed status change, written in the same
-- transaction as the status it records, so never twice and never lost.
CREATE TABLE transitions (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    issuance_id  TEXT NOT NULL REFERENCES issuances (id) ON DELETE CASCADE,
    -- NULL for the first observation.
    from_status  TEXT,
    to_status    TEXT NOT NULL,
    -- When the watcher saw the change (UTC).
    observed_at  TEXT NOT NULL,
    -- The API's modifiedAt for the new status (UTC), when it had one.
    modified_at  TEXT,
    -- Set when the move is not one the API's lifecycle allows (e.g. DONE -> READY).
    anomaly      TEXT
) STRICT;

CREATE INDEX transitions_by_issuance ON transitions (issuance_id, seq);
CREATE INDEX transitions_by_time ON transitions (observed_at);

CREATE TRIGGER transitions_are_append_only_update BEFORE UPDATE ON transitions
BEGIN
    SELECT RAISE(ABORT, 'transitions is append-only');
END;

-- Deadline flags on READY issuances. Each kind at most once per issuance;
-- cleared_at is set when the issuance leaves READY.
CREATE TABLE flags (
    issuance_id  TEXT NOT NULL REFERENCES issuances (id) ON DELETE CASCADE,
    -- DUE_SOON: READY and the vbank due date is within flags.due_soon_lead.
    -- OVERDUE: still READY after the vbank due date.
    kind         TEXT NOT NULL CHECK (kind IN ('DUE_SOON', 'OVERDUE')),
    raised_at    TEXT NOT NULL,
    cleared_at   TEXT,
    PRIMARY KEY (issuance_id, kind)
) STRICT;

CREATE INDEX flags_open ON flags (raised_at) WHERE cleared_at IS NULL;

-- Everyday questions.
CREATE VIEW active_issuances AS
    SELECT id, status, amount, vbank_due_at, next_poll_at, polls, attempts, last_error
    FROM issuances
    WHERE watch = 'active';

CREATE VIEW due_soon AS
    SELECT i.id, i.status, i.amount, i.vbank_due_at, i.vbank_account_number, i.bank_name,
           f.kind, f.raised_at
    FROM flags f JOIN issuances i ON i.id = f.issuance_id
    WHERE f.cleared_at IS NULL
    ORDER BY i.vbank_due_at;

CREATE VIEW recent_transitions AS
    SELECT t.seq, t.issuance_id, t.from_status, t.to_status, t.observed_at, t.modified_at, t.anomaly
    FROM transitions t
    WHERE t.observed_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 day')
    ORDER BY t.seq DESC;
