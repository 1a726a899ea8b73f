-- issuance-watcher schema, version 1, on PostgreSQL.
--
-- The same public interface as migrations/sqlite/ (same file names, tables,
-- columns and meanings; the comments there say what each column means): other
-- programs insert ids into `issuances` and read results out of every table and
-- view here. Change it only through new migrations, in both folders.
--
-- Types: every instant is `timestamptz` (SQLite: UTC text in the layout
-- 2026-11-25T03:04:05.123Z), every integer `bigint` (SQLite's INTEGER is 64-bit),
-- JSON is `jsonb`. Where an instant goes into JSON (event data), `utc_text`
-- writes it in the SQLite layout, so event payloads are the same text on both.

-- An instant as UTC text in the SQLite schema's layout (2026-11-25T03:04:05.123Z).
CREATE FUNCTION utc_text(instant timestamptz) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT to_char(instant AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

CREATE TABLE issuances (
    -- Inserting just this column is a valid way to start watching an id.
    id                   text PRIMARY KEY NOT NULL,
    -- WAITED, READY, DONE, CANCELLED, FAIL. NULL until first seen.
    status               text,
    amount               bigint,
    created_at           timestamptz,
    modified_at          timestamptz,
    vbank_due_at         timestamptz,
    vbank_account_number text,
    bank_name            text,
    vbank_holder_name    text,
    watch                text NOT NULL DEFAULT 'active'
                         CHECK (watch IN ('active', 'settled', 'not_found', 'rejected')),
    -- (SQLite checks this column's text layout; the type does it here.)
    next_poll_at         timestamptz NOT NULL DEFAULT now(),
    attempts             bigint NOT NULL DEFAULT 0,
    polls                bigint NOT NULL DEFAULT 0,
    last_polled_at       timestamptz,
    last_seen_at         timestamptz,
    last_error           text,
    not_found_since      timestamptz,
    added_at             timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX issuances_due ON issuances (next_poll_at) WHERE watch = 'active';
CREATE INDEX issuances_status ON issuances (status);

-- Append-only history: one row per observed status change.
CREATE TABLE transitions (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    issuance_id  text NOT NULL REFERENCES issuances (id) ON DELETE CASCADE,
    from_status  text,
    to_status    text NOT NULL,
    observed_at  timestamptz NOT NULL,
    modified_at  timestamptz,
    anomaly      text
);

CREATE INDEX transitions_by_issuance ON transitions (issuance_id, seq);
CREATE INDEX transitions_by_time ON transitions (observed_at);

-- Refuses any UPDATE of the table it is on (SQLite: RAISE(ABORT, ...)).
CREATE FUNCTION refuse_update_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER transitions_are_append_only_update BEFORE UPDATE ON transitions
    FOR EACH ROW EXECUTE FUNCTION refuse_update_append_only();

-- Deadline flags on READY issuances. Each kind at most once per issuance.
CREATE TABLE flags (
    issuance_id  text NOT NULL REFERENCES issuances (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('DUE_SOON', 'OVERDUE')),
    raised_at    timestamptz NOT NULL,
    cleared_at   timestamptz,
    CONSTRAINT flags_pkey PRIMARY KEY (issuance_id, kind)
);

CREATE INDEX flags_open ON flags (raised_at) WHERE cleared_at IS NULL;

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
    WHERE t.observed_at >= now() - interval '1 day'
    ORDER BY t.seq DESC;
