-- Charge events: charge.created, charge.refused, charge.unknown, one each time
-- a charge request's `state` becomes that state. The same as
-- migrations/sqlite/20261206000011_charge_events.sql, which says why; the
-- vbank is the issuance's as recorded, which the daemon writes before the
-- request's state in the same transaction.

-- One function for the three triggers below: the type follows the new state.
CREATE FUNCTION event_on_charge_outcome() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    at timestamptz := coalesce(NEW.finished_at, now());
    common jsonb := jsonb_build_object(
        'request_id', NEW.id,
        'amount', NEW.amount,
        'forced', NEW.force = 1,
        'requested_at', utc_text(NEW.requested_at),
        'sent_at', utc_text(NEW.sent_at),
        'finished_at', utc_text(coalesce(NEW.finished_at, now())));
BEGIN
    IF NEW.state = 'created' THEN
        INSERT INTO events (type, issuance_id, occurred_at, data)
        SELECT 'charge.created', i.id, at,
               common || jsonb_build_object(
                   'issuance_id', NEW.issuance_id,
                   'status', i.status,
                   'vbank', issuance_vbank(i),
                   'problem', NEW.error_message)
        FROM (SELECT 1) AS one LEFT JOIN issuances i ON i.id = NEW.issuance_id;
    ELSIF NEW.state = 'refused' THEN
        INSERT INTO events (type, issuance_id, occurred_at, data)
        VALUES ('charge.refused', NULL, at,
                common || jsonb_build_object(
                    'http_status', NEW.http_status,
                    'code', NEW.error_code,
                    'reason', NEW.error_message));
    ELSE
        INSERT INTO events (type, issuance_id, occurred_at, data)
        VALUES ('charge.unknown', NULL, at,
                common || jsonb_build_object(
                    'http_status', NEW.http_status,
                    'code', NEW.error_code,
                    'message', NEW.error_message,
                    'action', 'A charge may exist: look in the partner console for a charge of this amount, then run '
                              || '`issuance-watcher charges resolve ' || NEW.id || ' --issuance ID` (the charge you found) or `--none`. '
                              || 'New charges are refused until then.'));
    END IF;
    RETURN NULL;
END;
$$;

-- One trigger per type, named as on SQLite.
CREATE TRIGGER event_on_charge_created AFTER UPDATE OF state ON charge_requests
    FOR EACH ROW
    WHEN (NEW.state = 'created' AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION event_on_charge_outcome();

CREATE TRIGGER event_on_charge_refused AFTER UPDATE OF state ON charge_requests
    FOR EACH ROW
    WHEN (NEW.state = 'refused' AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION event_on_charge_outcome();

CREATE TRIGGER event_on_charge_unknown AFTER UPDATE OF state ON charge_requests
    FOR EACH ROW
    WHEN (NEW.state = 'unknown' AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION event_on_charge_outcome();
