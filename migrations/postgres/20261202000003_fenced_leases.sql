-- Leases that fence, a database that has the last word on terminal statuses,
-- and a claim order in which new rows cannot starve due ones. The same as
-- migrations/sqlite/20261202000003_fenced_leases.sql, which says why.

ALTER TABLE issuances ADD COLUMN lease_owner text;
ALTER TABLE issuances ADD COLUMN lease_fence bigint NOT NULL DEFAULT 0;

CREATE INDEX issuances_leased ON issuances (lease_owner) WHERE lease_owner IS NOT NULL;

DROP INDEX issuances_due;
CREATE INDEX issuances_due ON issuances (next_poll_at, status, watch)
    WHERE watch = 'active' AND status IS NOT NULL;
CREATE INDEX issuances_new ON issuances (next_poll_at, status, watch)
    WHERE watch = 'active' AND status IS NULL;

UPDATE issuances SET watch = 'settled'
    WHERE watch = 'active' AND status IN ('DONE', 'CANCELLED', 'FAIL');

-- The database's word on terminal status: a row that any program inserts, or
-- whose status it sets, with DONE, CANCELLED or FAIL is settled, never polled.
-- SQLite does this with AFTER triggers that update the row again; here BEFORE
-- triggers change the row being written, with the same result.
CREATE FUNCTION issuances_terminal_settles() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.watch := 'settled';
    NEW.lease_owner := NULL;
    RETURN NEW;
END;
$$;

CREATE TRIGGER issuances_terminal_insert_settles BEFORE INSERT ON issuances
    FOR EACH ROW
    WHEN (NEW.watch = 'active' AND NEW.status IN ('DONE', 'CANCELLED', 'FAIL'))
    EXECUTE FUNCTION issuances_terminal_settles();

CREATE TRIGGER issuances_terminal_status_settles BEFORE UPDATE OF status ON issuances
    FOR EACH ROW
    WHEN (NEW.watch = 'active' AND NEW.status IN ('DONE', 'CANCELLED', 'FAIL'))
    EXECUTE FUNCTION issuances_terminal_settles();

-- Another program's edit of `status` or `watch` ends the lease on the row (the
-- daemon's own writes set `lease_owner` to NULL or bump the fence themselves).
CREATE FUNCTION issuances_external_edit_ends_lease() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.lease_owner := NULL;
    RETURN NEW;
END;
$$;

CREATE TRIGGER issuances_external_edit_ends_lease BEFORE UPDATE OF status, watch ON issuances
    FOR EACH ROW
    WHEN (OLD.lease_owner IS NOT NULL
          AND NEW.lease_owner IS NOT DISTINCT FROM OLD.lease_owner
          AND NEW.lease_fence = OLD.lease_fence)
    EXECUTE FUNCTION issuances_external_edit_ends_lease();
