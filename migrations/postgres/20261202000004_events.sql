-- Events out: the outbox (`events`), webhook sinks and their deliveries, and
-- the due-soon lead ladder (a DUE_SOON flag per rung). The same as
-- migrations/sqlite/20261202000004_events.sql, which says why.
--
-- Events are written by triggers on the facts they announce, so an event
-- exists if and only if its fact does, whichever program writes the fact.

-- Flags gain the rung they were raised for. SQLite rebuilds the table to
-- change its primary key; here the key is replaced in place.
DROP VIEW due_soon;
ALTER TABLE flags ADD COLUMN lead_ms bigint NOT NULL DEFAULT 0 CHECK (lead_ms >= 0);
ALTER TABLE flags DROP CONSTRAINT flags_pkey;
ALTER TABLE flags ADD CONSTRAINT flags_pkey PRIMARY KEY (issuance_id, kind, lead_ms);

-- One row per issuance and kind: the tightest rung reached so far. (Grouped
-- by i.id, the key the selected issuance columns depend on; it equals
-- f.issuance_id, SQLite's grouping.)
CREATE VIEW due_soon AS
    SELECT i.id, i.status, i.amount, i.vbank_due_at, i.vbank_account_number, i.bank_name,
           f.kind, max(f.raised_at) AS raised_at, min(f.lead_ms) AS lead_ms
    FROM flags f JOIN issuances i ON i.id = f.issuance_id
    WHERE f.cleared_at IS NULL
    GROUP BY i.id, f.kind
    ORDER BY i.vbank_due_at;

-- The outbox. `seq` is the consumers' cursor: it only grows (an identity:
-- never reused, even after deletes), and it grows in commit order (see the
-- trigger events_seq_in_commit_order below). `id` is the Standard Webhooks
-- `webhook-id`: 'evt_' and 32 lowercase hex digits, as on SQLite.
CREATE TABLE events (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           text NOT NULL UNIQUE DEFAULT ('evt_' || replace(gen_random_uuid()::text, '-', '')),
    -- issuance.status_changed | issuance.due_soon | issuance.overdue | issuance.watch_ended
    type         text NOT NULL,
    issuance_id  text NOT NULL REFERENCES issuances (id) ON DELETE CASCADE,
    occurred_at  timestamptz NOT NULL,
    -- The webhook body's `data` object (SQLite: text checked by json_valid).
    data         jsonb NOT NULL
);

CREATE INDEX events_by_issuance ON events (issuance_id, seq);

CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_update_append_only();

-- Consumers read `WHERE seq > last`. A sequence hands out numbers before
-- commit, so two writing transactions could commit out of `seq` order and a
-- reader could pass over the one that commits second, for ever. SQLite has
-- one writer at a time; here every statement that inserts events first takes
-- a transaction-level advisory lock (key 7599654455645267313, 'iwevtseq'),
-- before any `seq` is drawn (statement triggers fire before the rows are
-- built), and holds it until commit: transactions that write events commit
-- one at a time, in `seq` order. Only they wait; readers never do.
CREATE FUNCTION events_seq_in_commit_order() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7599654455645267313);
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_seq_in_commit_order BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_seq_in_commit_order();

-- `vbank` in event data: the issuance's virtual account as one object, or
-- null while none is known.
CREATE FUNCTION issuance_vbank(i issuances) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN coalesce(i.vbank_due_at::text, i.vbank_account_number, i.bank_name, i.vbank_holder_name) IS NULL
                THEN 'null'::jsonb
                ELSE jsonb_build_object('due_at', utc_text(i.vbank_due_at),
                                        'account_number', i.vbank_account_number,
                                        'bank_name', i.bank_name,
                                        'holder_name', i.vbank_holder_name) END
    $$;

-- issuance.status_changed: one per transition row.
CREATE FUNCTION event_on_transition() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (type, issuance_id, occurred_at, data)
    SELECT 'issuance.status_changed', NEW.issuance_id, NEW.observed_at,
           jsonb_build_object(
               'id', i.id,
               'from_status', NEW.from_status,
               'to_status', NEW.to_status,
               'amount', i.amount,
               'observed_at', utc_text(NEW.observed_at),
               'modified_at', utc_text(NEW.modified_at),
               'anomaly', NEW.anomaly,
               'transition_seq', NEW.seq,
               'vbank', issuance_vbank(i))
    FROM issuances i WHERE i.id = NEW.issuance_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER event_on_transition AFTER INSERT ON transitions
    FOR EACH ROW EXECUTE FUNCTION event_on_transition();

-- issuance.due_soon (one per rung) and issuance.overdue: one per flag row.
CREATE FUNCTION event_on_flag() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (type, issuance_id, occurred_at, data)
    SELECT CASE NEW.kind WHEN 'DUE_SOON' THEN 'issuance.due_soon' ELSE 'issuance.overdue' END,
           NEW.issuance_id, NEW.raised_at,
           jsonb_build_object(
               'id', i.id,
               'status', i.status,
               'amount', i.amount,
               'due_at', utc_text(i.vbank_due_at),
               'raised_at', utc_text(NEW.raised_at),
               'vbank', issuance_vbank(i))
           || CASE NEW.kind WHEN 'DUE_SOON' THEN jsonb_build_object(
                  'lead', CASE
                      WHEN NEW.lead_ms % 3600000 = 0 THEN (NEW.lead_ms / 3600000) || 'h'
                      WHEN NEW.lead_ms % 60000 = 0 THEN (NEW.lead_ms / 60000) || 'm'
                      WHEN NEW.lead_ms % 1000 = 0 THEN (NEW.lead_ms / 1000) || 's'
                      ELSE NEW.lead_ms || 'ms' END,
                  -- An integer when whole, else a fraction (1.5, not 1.5000000000000000).
                  'lead_seconds', CASE WHEN NEW.lead_ms % 1000 = 0 THEN to_jsonb(NEW.lead_ms / 1000)
                                       ELSE to_jsonb(NEW.lead_ms::double precision / 1000) END)
              ELSE '{}'::jsonb END
    FROM issuances i WHERE i.id = NEW.issuance_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER event_on_flag AFTER INSERT ON flags
    FOR EACH ROW EXECUTE FUNCTION event_on_flag();

-- issuance.watch_ended: the watch ended without a terminal status.
CREATE FUNCTION event_on_watch_ended() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (type, issuance_id, occurred_at, data)
    VALUES ('issuance.watch_ended', NEW.id,
            coalesce(NEW.last_polled_at, now()),
            jsonb_build_object(
                'id', NEW.id,
                'reason', NEW.watch,
                'detail', NEW.last_error,
                'status', NEW.status,
                'amount', NEW.amount,
                'ended_at', utc_text(coalesce(NEW.last_polled_at, now()))));
    RETURN NULL;
END;
$$;

CREATE TRIGGER event_on_watch_ended AFTER UPDATE OF watch ON issuances
    FOR EACH ROW
    WHEN (NEW.watch IN ('not_found', 'rejected') AND OLD.watch IS DISTINCT FROM NEW.watch)
    EXECUTE FUNCTION event_on_watch_ended();

-- Webhook sinks (`[[webhooks]]` in the configuration), by name.
CREATE TABLE sinks (
    name            text PRIMARY KEY NOT NULL,
    admitted_seq    bigint NOT NULL,
    added_at        timestamptz NOT NULL DEFAULT now(),
    disabled_at     timestamptz,
    disabled_reason text
);

-- One row per sink and event.
CREATE TABLE deliveries (
    sink             text NOT NULL REFERENCES sinks (name) ON DELETE CASCADE,
    seq              bigint NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    issuance_id      text NOT NULL,
    created_at       timestamptz NOT NULL,
    attempts         bigint NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    last_attempt_at  timestamptz,
    last_status      bigint,
    last_error       text,
    delivered_at     timestamptz,
    failed_at        timestamptz,
    PRIMARY KEY (sink, seq)
);

CREATE INDEX deliveries_open ON deliveries (sink, next_attempt_at, seq)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX deliveries_open_by_issuance ON deliveries (sink, issuance_id, seq)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX deliveries_failed ON deliveries (failed_at) WHERE failed_at IS NOT NULL;
