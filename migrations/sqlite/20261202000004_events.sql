-- Events out: the outbox (`events`), webhook sinks and their deliveries, and
-- the due-soon lead ladder (a DUE_SOON flag per rung).
--
-- Events are written by triggers on the facts they announce, so an event
-- exists if and only if its fact does: it commits, rolls back and is deleted
-- (ON DELETE CASCADE) with it, whichever program writes the fact.

-- Flags gain the rung they were raised for: with `flags.due_soon_lead` a list
-- such as ["24h", "3h", "30m"], an issuance carries one DUE_SOON row per rung.
-- OVERDUE rows (and flags raised before this migration) have lead_ms 0.
DROP VIEW due_soon;
ALTER TABLE flags RENAME TO flags_v1;
CREATE TABLE flags (
    issuance_id  TEXT NOT NULL REFERENCES issuances (id) ON DELETE CASCADE,
    -- DUE_SOON: READY and the vbank due date is within the rung `lead_ms`.
    -- OVERDUE: still READY after the vbank due date.
    kind         TEXT NOT NULL CHECK (kind IN ('DUE_SOON', 'OVERDUE')),
    raised_at    TEXT NOT NULL,
    cleared_at   TEXT,
    -- The rung of the lead ladder, in milliseconds (0 for OVERDUE).
    lead_ms      INTEGER NOT NULL DEFAULT 0 CHECK (lead_ms >= 0),
    PRIMARY KEY (issuance_id, kind, lead_ms)
) STRICT;
INSERT INTO flags (issuance_id, kind, raised_at, cleared_at, lead_ms)
    SELECT issuance_id, kind, raised_at, cleared_at, 0 FROM flags_v1;
DROP TABLE flags_v1;
CREATE INDEX flags_open ON flags (raised_at) WHERE cleared_at IS NULL;

-- One row per issuance and kind: the tightest rung reached so far.
CREATE VIEW due_soon AS
    SELECT i.id, i.status, i.amount, i.vbank_due_at, i.vbank_account_number, i.bank_name,
           f.kind, max(f.raised_at) AS raised_at, min(f.lead_ms) AS lead_ms
    FROM flags f JOIN issuances i ON i.id = f.issuance_id
    WHERE f.cleared_at IS NULL
    GROUP BY f.issuance_id, f.kind
    ORDER BY i.vbank_due_at;

-- The outbox. `seq` is the consumers' cursor: it only grows (AUTOINCREMENT:
-- never reused, even after deletes). `id` is the Standard Webhooks
-- `webhook-id`, the same on every delivery attempt of the event.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE DEFAULT ('evt_' || lower(hex(randomblob(16)))),
    -- issuance.status_changed | issuance.due_soon | issuance.overdue | issuance.watch_ended
    type         TEXT NOT NULL,
    issuance_id  TEXT NOT NULL REFERENCES issuances (id) ON DELETE CASCADE,
    -- When the fact happened (the transition's observed_at, the flag's raised_at, ...).
    occurred_at  TEXT NOT NULL,
    -- The webhook body's `data` object.
    data         TEXT NOT NULL CHECK (json_valid(data))
) STRICT;

CREATE INDEX events_by_issuance ON events (issuance_id, seq);

CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events is append-only');
END;

-- In each trigger, `vbank` is the issuance's virtual account as one object,
-- or null while none is known.

-- issuance.status_changed: one per transition row.
CREATE TRIGGER event_on_transition AFTER INSERT ON transitions
BEGIN
    INSERT INTO events (type, issuance_id, occurred_at, data)
    SELECT 'issuance.status_changed', NEW.issuance_id, NEW.observed_at,
           json_object(
               'id', i.id,
               'from_status', NEW.from_status,
               'to_status', NEW.to_status,
               'amount', i.amount,
               'observed_at', NEW.observed_at,
               'modified_at', NEW.modified_at,
               'anomaly', NEW.anomaly,
               'transition_seq', NEW.seq,
               'vbank', json(CASE WHEN coalesce(i.vbank_due_at, i.vbank_account_number, i.bank_name, i.vbank_holder_name) IS NULL THEN NULL
                        ELSE json_object('due_at', i.vbank_due_at, 'account_number', i.vbank_account_number,
                                         'bank_name', i.bank_name, 'holder_name', i.vbank_holder_name) END))
    FROM issuances i WHERE i.id = NEW.issuance_id;
END;

-- issuance.due_soon (one per rung) and issuance.overdue: one per flag row.
CREATE TRIGGER event_on_flag AFTER INSERT ON flags
BEGIN
    INSERT INTO events (type, issuance_id, occurred_at, data)
    SELECT CASE NEW.kind WHEN 'DUE_SOON' THEN 'issuance.due_soon' ELSE 'issuance.overdue' END,
           NEW.issuance_id, NEW.raised_at,
           json_patch(
               json_object(
                   'id', i.id,
                   'status', i.status,
                   'amount', i.amount,
                   'due_at', i.vbank_due_at,
                   'raised_at', NEW.raised_at,
                   'vbank', json(CASE WHEN coalesce(i.vbank_due_at, i.vbank_account_number, i.bank_name, i.vbank_holder_name) IS NULL THEN NULL
                            ELSE json_object('due_at', i.vbank_due_at, 'account_number', i.vbank_account_number,
                                             'bank_name', i.bank_name, 'holder_name', i.vbank_holder_name) END)),
               CASE NEW.kind WHEN 'DUE_SOON' THEN json_object(
                   'lead', CASE
                       WHEN NEW.lead_ms % 3600000 = 0 THEN (NEW.lead_ms / 3600000) || 'h'
                       WHEN NEW.lead_ms % 60000 = 0 THEN (NEW.lead_ms / 60000) || 'm'
                       WHEN NEW.lead_ms % 1000 = 0 THEN (NEW.lead_ms / 1000) || 's'
                       ELSE NEW.lead_ms || 'ms' END,
                   'lead_seconds', CASE WHEN NEW.lead_ms % 1000 = 0 THEN NEW.lead_ms / 1000 ELSE NEW.lead_ms / 1000.0 END)
               ELSE '{}' END)
    FROM issuances i WHERE i.id = NEW.issuance_id;
END;

-- issuance.watch_ended: the watch ended without a terminal status.
CREATE TRIGGER event_on_watch_ended AFTER UPDATE OF watch ON issuances
WHEN NEW.watch IN ('not_found', 'rejected') AND OLD.watch IS NOT NEW.watch
BEGIN
    INSERT INTO events (type, issuance_id, occurred_at, data)
    VALUES ('issuance.watch_ended', NEW.id,
            coalesce(NEW.last_polled_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            json_object(
                'id', NEW.id,
                'reason', NEW.watch,
                'detail', NEW.last_error,
                'status', NEW.status,
                'amount', NEW.amount,
                'ended_at', coalesce(NEW.last_polled_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))));
END;

-- Webhook sinks (`[[webhooks]]` in the configuration), by name. A sink first
-- seen starts after the newest event of that moment (`admitted_seq`); events
-- up to `admitted_seq` have a delivery row or were not for this sink.
CREATE TABLE sinks (
    name            TEXT PRIMARY KEY NOT NULL,
    admitted_seq    INTEGER NOT NULL,
    added_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- Set when the receiver answered 410 Gone: nothing more is sent until it
    -- is cleared (UPDATE sinks SET disabled_at = NULL, disabled_reason = NULL WHERE name = ...).
    disabled_at     TEXT,
    disabled_reason TEXT
) STRICT;

-- One row per sink and event. `delivered_at` is written only after a 2xx;
-- `failed_at` when the retry horizon passed without one.
CREATE TABLE deliveries (
    sink             TEXT NOT NULL REFERENCES sinks (name) ON DELETE CASCADE,
    seq              INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
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

-- Open deliveries (neither delivered nor given up): what a sink's worker reads.
CREATE INDEX deliveries_open ON deliveries (sink, next_attempt_at, seq)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
-- Per-issuance order: an open delivery waits for any earlier open one of its issuance.
CREATE INDEX deliveries_open_by_issuance ON deliveries (sink, issuance_id, seq)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX deliveries_failed ON deliveries (failed_at) WHERE failed_at IS NOT NULL;
