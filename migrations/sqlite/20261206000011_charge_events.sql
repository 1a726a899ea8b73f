-- Charge events: a charge request's outcome becomes an event like every other
-- fact, written by a trigger in the transaction that writes the outcome.
--
--   charge.created  the API created issuance `issuance_id`: its vbank (bank,
--                   account, holder, deadline) is what a person transfers to;
--   charge.refused  the API refused (a 4xx, its errorCode): nothing was created;
--   charge.unknown  no usable answer, or its performer died mid-request: a
--                   charge MAY exist, a person must look in the partner
--                   console and resolve the request (`charges resolve`). New
--                   charges are refused until then.
--
-- One event each time `state` becomes one of these (from another state): a
-- request that became unknown and is answered late (unknown -> created) has
-- both. `rejected` (refused here, nothing sent) is no event.
--
-- charge.created carries the issuance's vbank as recorded: the daemon records
-- a created charge's issuance (its first sighting, from the POST's answer)
-- BEFORE it writes the request's state, in the same transaction
-- (store/*/charges.rs `finish_in`), so the join below sees it. Its
-- `events.issuance_id` is that issuance: it is delivered in the issuance's
-- order, after the issuance's first issuance.status_changed. charge.refused
-- and charge.unknown are about no issuance (NULL, like balance.low).
-- The same as migrations/postgres/20261206000011_charge_events.sql.

CREATE TRIGGER event_on_charge_created AFTER UPDATE OF state ON charge_requests
WHEN NEW.state = 'created' AND OLD.state IS NOT NEW.state
BEGIN
    INSERT INTO events (type, issuance_id, occurred_at, data)
    SELECT 'charge.created', i.id,
           coalesce(NEW.finished_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
           json_object(
               'request_id', NEW.id,
               'issuance_id', NEW.issuance_id,
               'amount', NEW.amount,
               'status', i.status,
               'forced', json(CASE NEW.force WHEN 1 THEN 'true' ELSE 'false' END),
               'requested_at', NEW.requested_at,
               'sent_at', NEW.sent_at,
               'finished_at', coalesce(NEW.finished_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
               'vbank', json(CASE WHEN coalesce(i.vbank_due_at, i.vbank_account_number, i.bank_name, i.vbank_holder_name) IS NULL THEN NULL
                        ELSE json_object('due_at', i.vbank_due_at, 'account_number', i.vbank_account_number,
                                         'bank_name', i.bank_name, 'holder_name', i.vbank_holder_name) END),
               'problem', NEW.error_message)
    FROM (SELECT 1) AS one LEFT JOIN issuances i ON i.id = NEW.issuance_id;
END;

CREATE TRIGGER event_on_charge_refused AFTER UPDATE OF state ON charge_requests
WHEN NEW.state = 'refused' AND OLD.state IS NOT NEW.state
BEGIN
    INSERT INTO events (type, issuance_id, occurred_at, data)
    VALUES ('charge.refused', NULL,
            coalesce(NEW.finished_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            json_object(
                'request_id', NEW.id,
                'amount', NEW.amount,
                'forced', json(CASE NEW.force WHEN 1 THEN 'true' ELSE 'false' END),
                'requested_at', NEW.requested_at,
                'sent_at', NEW.sent_at,
                'finished_at', coalesce(NEW.finished_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
                'http_status', NEW.http_status,
                'code', NEW.error_code,
                'reason', NEW.error_message));
END;

CREATE TRIGGER event_on_charge_unknown AFTER UPDATE OF state ON charge_requests
WHEN NEW.state = 'unknown' AND OLD.state IS NOT NEW.state
BEGIN
    INSERT INTO events (type, issuance_id, occurred_at, data)
    VALUES ('charge.unknown', NULL,
            coalesce(NEW.finished_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            json_object(
                'request_id', NEW.id,
                'amount', NEW.amount,
                'forced', json(CASE NEW.force WHEN 1 THEN 'true' ELSE 'false' END),
                'requested_at', NEW.requested_at,
                'sent_at', NEW.sent_at,
                'finished_at', coalesce(NEW.finished_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
                'http_status', NEW.http_status,
                'code', NEW.error_code,
                'message', NEW.error_message,
                'action', 'A charge may exist: look in the partner console for a charge of this amount, then run '
                          || '`issuance-watcher charges resolve ' || NEW.id || ' --issuance ID` (the charge you found) or `--none`. '
                          || 'New charges are refused until then.'));
END;
