-- Leases that fence, a database that has the last word on terminal statuses,
-- and a claim order in which new rows cannot starve due ones.
--
-- A claim now records who holds the lease (`lease_owner`, the claiming daemon's
-- id) and which claim it is (`lease_fence`, bumped by every claim). A poll's
-- result is written only while both still match, checked in the statement
-- that writes it: a daemon that resumes after its lease ran out (paused,
-- swapped out, stuck behind a lock) cannot write an old observation over a
-- newer one. A daemon holds an advisory lock on `<database>.owners/<id>.lock`
-- for its lifetime; another daemon that can take that lock knows the owner is
-- dead and makes its claims due at once (see README, "Reliability").

-- Who holds the lease on this row: the claiming daemon's id; NULL when no poll
-- of it is claimed or in flight.
ALTER TABLE issuances ADD COLUMN lease_owner TEXT;
-- Bumped by every claim: a result is written only under the fence it was claimed with.
ALTER TABLE issuances ADD COLUMN lease_fence INTEGER NOT NULL DEFAULT 0;

-- Finding a dead daemon's claims reads only the leased rows (a few per daemon).
CREATE INDEX issuances_leased ON issuances (lease_owner) WHERE lease_owner IS NOT NULL;

-- Two disjoint due indexes instead of one: rows seen at least once, and rows
-- never seen yet. The claim takes from both (see store/sql.rs, CLAIM_DUE), so
-- a backlog of new rows cannot push due READY rows back. Every active row is
-- in exactly one of them, so a poll still rewrites one due-index entry.
DROP INDEX issuances_due;
-- `status` and `watch` are in both, so that the claim reads them alone
-- (index-only); neither changes in the common write, a poll that saw no change.
CREATE INDEX issuances_due ON issuances (next_poll_at, status, watch)
    WHERE watch = 'active' AND status IS NOT NULL;
CREATE INDEX issuances_new ON issuances (next_poll_at, status, watch)
    WHERE watch = 'active' AND status IS NULL;

-- The database's word on terminal status: a row that any program inserts, or
-- whose status it sets, with DONE, CANCELLED or FAIL is settled, never polled.
-- (This is the way to import history.) Setting `watch = 'active'` alone on such
-- a row still watches it again: it is polled once more and settles again.
UPDATE issuances SET watch = 'settled'
    WHERE watch = 'active' AND status IN ('DONE', 'CANCELLED', 'FAIL');

CREATE TRIGGER issuances_terminal_insert_settles AFTER INSERT ON issuances
    WHEN NEW.watch = 'active' AND NEW.status IN ('DONE', 'CANCELLED', 'FAIL')
BEGIN
    UPDATE issuances SET watch = 'settled', lease_owner = NULL WHERE rowid = NEW.rowid;
END;

CREATE TRIGGER issuances_terminal_status_settles AFTER UPDATE OF status ON issuances
    WHEN NEW.watch = 'active' AND NEW.status IN ('DONE', 'CANCELLED', 'FAIL')
BEGIN
    UPDATE issuances SET watch = 'settled', lease_owner = NULL WHERE rowid = NEW.rowid;
END;

-- Another program's edit of `status` or `watch` ends the lease on the row, so
-- a poll in flight cannot overwrite the edit: its result no longer matches
-- the lease and is dropped. The daemon's own writes end the lease themselves
-- (they set `lease_owner` to NULL), which this trigger tells apart.
CREATE TRIGGER issuances_external_edit_ends_lease AFTER UPDATE OF status, watch ON issuances
    WHEN OLD.lease_owner IS NOT NULL
     AND NEW.lease_owner IS OLD.lease_owner
     AND NEW.lease_fence = OLD.lease_fence
BEGIN
    UPDATE issuances SET lease_owner = NULL WHERE rowid = NEW.rowid;
END;
