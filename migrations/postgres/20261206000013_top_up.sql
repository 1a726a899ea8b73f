-- The top-up rule ([top_up]): its guards, in the database. The same as
-- migrations/sqlite/20261206000013_top_up.sql, which says why. Here several
-- daemons may insert at once: the conditional insert of a top_up request runs
-- after a transaction-level advisory lock (store/postgres/top_up.rs), so the
-- check and the insert of two daemons never interleave; the unique partial
-- index holds whatever inserts.

ALTER TABLE charge_requests ADD COLUMN source text NOT NULL DEFAULT 'cli'
    CHECK (source IN ('cli', 'top_up'));

CREATE UNIQUE INDEX charge_requests_one_open_top_up ON charge_requests (source)
    WHERE source = 'top_up' AND state IN ('pending', 'sending');
CREATE INDEX charge_requests_top_up ON charge_requests (requested_at) WHERE source = 'top_up';

CREATE TABLE top_up (
    id                 bigint PRIMARY KEY CHECK (id = 1),
    suspended_at       timestamptz,
    suspended_reason   text,
    suspended_request  bigint,
    refusals_in_a_row  bigint NOT NULL DEFAULT 0,
    resumed_at         timestamptz,
    resumed_by         text,
    last_decision      text,
    last_decided_at    timestamptz,
    CHECK ((suspended_at IS NULL) = (suspended_reason IS NULL))
);
INSERT INTO top_up (id) VALUES (1);

CREATE FUNCTION top_up_on_outcome() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'unknown' THEN
        UPDATE top_up
        SET suspended_at = coalesce(NEW.finished_at, now()),
            suspended_reason = 'top-up charge request ' || NEW.id || ' (' || NEW.amount || ' KRW) is of unknown outcome ('
                               || coalesce(NEW.error_code, '?') || '): a charge may exist',
            suspended_request = NEW.id
        WHERE id = 1 AND suspended_at IS NULL;
    ELSE
        UPDATE top_up
        SET refusals_in_a_row = CASE NEW.state WHEN 'refused' THEN refusals_in_a_row + 1 ELSE 0 END
        WHERE id = 1;
        UPDATE top_up
        SET suspended_at = coalesce(NEW.finished_at, now()),
            suspended_reason = 'two top-up charge requests in a row were refused (the last, ' || NEW.id || ': '
                               || coalesce(NEW.error_code, '?') || ' ' || coalesce(NEW.error_message, '') || ')',
            suspended_request = NEW.id
        WHERE id = 1 AND suspended_at IS NULL AND refusals_in_a_row >= 2;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER top_up_suspend_on_unknown AFTER UPDATE OF state ON charge_requests
    FOR EACH ROW
    WHEN (NEW.source = 'top_up' AND NEW.state = 'unknown' AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION top_up_on_outcome();

CREATE TRIGGER top_up_count_refusals AFTER UPDATE OF state ON charge_requests
    FOR EACH ROW
    WHEN (NEW.source = 'top_up' AND NEW.state IN ('refused', 'created') AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION top_up_on_outcome();

CREATE FUNCTION event_on_top_up_suspended() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (type, issuance_id, occurred_at, data)
    VALUES ('top_up.suspended', NULL, NEW.suspended_at,
            jsonb_build_object(
                'reason', NEW.suspended_reason,
                'request_id', NEW.suspended_request,
                'suspended_at', utc_text(NEW.suspended_at),
                'action', 'The top-up rule asks for no charge until a person looks (the partner console, '
                          || '`issuance-watcher charges`), resolves any unknown request, then runs `issuance-watcher top-up resume`.'));
    RETURN NULL;
END;
$$;

CREATE TRIGGER event_on_top_up_suspended AFTER UPDATE OF suspended_at ON top_up
    FOR EACH ROW
    WHEN (OLD.suspended_at IS NULL AND NEW.suspended_at IS NOT NULL)
    EXECUTE FUNCTION event_on_top_up_suspended();
