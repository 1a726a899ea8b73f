-- The top-up rule ([top_up]): the daemon asks for a charge when a polled
-- balance falls below `top_up.below`. Its guards live here, in the database,
-- so that a restart, `kill -9` or a second daemon cannot double a charge:
--
-- - `charge_requests.source` says who asked: 'cli' (the `charge` command or
--   another program's INSERT, the default) or 'top_up' (the rule);
-- - at most one top_up request is open (pending or sending) at a time: a
--   unique partial index, whatever inserts it;
-- - the daemon inserts a top_up request with one conditional statement
--   (store/sqlite/sql/top_up.rs) inside a BEGIN IMMEDIATE transaction: not
--   while suspended, while any request is open or unknown and unresolved,
--   while an issuance is WAITED or READY, beyond the KST day's count or
--   month's sum; SQLite runs one writer at a time, so the check and the
--   insert cannot interleave with another's;
-- - the rule suspends itself (the `top_up` row below) when a top_up request
--   becomes `unknown` (its sender's answer, or its sender died) or when two
--   top_up requests in a row were refused; the triggers below do it in the
--   transaction that writes the outcome, so no path is missed. Suspension
--   writes a `top_up.suspended` event and lasts until a person runs
--   `issuance-watcher top-up resume`.
-- The same as migrations/postgres/20261206000013_top_up.sql.

ALTER TABLE charge_requests ADD COLUMN source TEXT NOT NULL DEFAULT 'cli'
    CHECK (source IN ('cli', 'top_up'));

CREATE UNIQUE INDEX charge_requests_one_open_top_up ON charge_requests (source)
    WHERE source = 'top_up' AND state IN ('pending', 'sending');
-- The day's and month's use of the rule.
CREATE INDEX charge_requests_top_up ON charge_requests (requested_at) WHERE source = 'top_up';

-- The rule's state: one row.
CREATE TABLE top_up (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    -- Set: the rule asks for nothing until `top-up resume` clears it.
    suspended_at       TEXT,
    suspended_reason   TEXT,
    -- The request whose outcome suspended the rule.
    suspended_request  INTEGER,
    -- Top-up requests refused one after another (0 after a created one or a resume).
    refusals_in_a_row  INTEGER NOT NULL DEFAULT 0,
    resumed_at         TEXT,
    resumed_by         TEXT,
    -- What the daemon decided after its last balance poll, for a person.
    last_decision      TEXT,
    last_decided_at    TEXT,
    CHECK ((suspended_at IS NULL) = (suspended_reason IS NULL))
) STRICT;
INSERT INTO top_up (id) VALUES (1);

CREATE TRIGGER top_up_suspend_on_unknown AFTER UPDATE OF state ON charge_requests
WHEN NEW.source = 'top_up' AND NEW.state = 'unknown' AND OLD.state IS NOT NEW.state
BEGIN
    UPDATE top_up
    SET suspended_at = coalesce(NEW.finished_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        suspended_reason = 'top-up charge request ' || NEW.id || ' (' || NEW.amount || ' KRW) is of unknown outcome ('
                           || coalesce(NEW.error_code, '?') || '): a charge may exist',
        suspended_request = NEW.id
    WHERE id = 1 AND suspended_at IS NULL;
END;

CREATE TRIGGER top_up_count_refusals AFTER UPDATE OF state ON charge_requests
WHEN NEW.source = 'top_up' AND NEW.state IN ('refused', 'created') AND OLD.state IS NOT NEW.state
BEGIN
    UPDATE top_up
    SET refusals_in_a_row = CASE NEW.state WHEN 'refused' THEN refusals_in_a_row + 1 ELSE 0 END
    WHERE id = 1;
    UPDATE top_up
    SET suspended_at = coalesce(NEW.finished_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        suspended_reason = 'two top-up charge requests in a row were refused (the last, ' || NEW.id || ': '
                           || coalesce(NEW.error_code, '?') || ' ' || coalesce(NEW.error_message, '') || ')',
        suspended_request = NEW.id
    WHERE id = 1 AND suspended_at IS NULL AND refusals_in_a_row >= 2;
END;

-- top_up.suspended: once per suspension, about no issuance.
CREATE TRIGGER event_on_top_up_suspended AFTER UPDATE OF suspended_at ON top_up
WHEN OLD.suspended_at IS NULL AND NEW.suspended_at IS NOT NULL
BEGIN
    INSERT INTO events (type, issuance_id, occurred_at, data)
    VALUES ('top_up.suspended', NULL, NEW.suspended_at,
            json_object(
                'reason', NEW.suspended_reason,
                'request_id', NEW.suspended_request,
                'suspended_at', NEW.suspended_at,
                'action', 'The top-up rule asks for no charge until a person looks (the partner console, '
                          || '`issuance-watcher charges`), resolves any unknown request, then runs `issuance-watcher top-up resume`.'));
END;
