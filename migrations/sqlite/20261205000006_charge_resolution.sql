-- Resolving charge requests of unknown outcome, and recording forced sends.
--
-- Money safety: a request left `unknown` may have created a charge that
-- nobody watches. Until a person has looked in the partner console and said
-- what they found (`charges resolve N --issuance ID` or `--none`), every new
-- charge is refused (LOCAL_CHARGE_UNKNOWN; watcher/charges.rs), whoever asks:
-- the `charge` command, a row inserted here by another program, any later
-- caller of `perform`. `--force` (force = 1) still sends, and the row records
-- what it was sent past (`forced_past`).
--
-- A resolved request keeps state 'unknown' (what the program knew) and gains
-- what the person found: the state is history, the resolution is the answer.

-- 'issuance': the person found the charge, issuance `issuance_id`, which is
-- watched from then on; 'none': the person found that no charge was created.
-- NULL: not resolved (for an 'unknown' row: it blocks new charges).
ALTER TABLE charge_requests ADD COLUMN resolution TEXT
    CHECK (resolution IS NULL OR resolution IN ('issuance', 'none'));
-- When, and by whom: `cli:USER@HOST` for the command.
ALTER TABLE charge_requests ADD COLUMN resolved_at TEXT;
ALTER TABLE charge_requests ADD COLUMN resolved_by TEXT;
-- A forced request (force = 1) sent although something stood in the way: what
-- it was, as shown to whoever forced it (e.g. "charge request 7 (unknown ...)").
ALTER TABLE charge_requests ADD COLUMN forced_past TEXT;

-- Only an unresolved 'unknown' request can be resolved, once, completely;
-- the command checks this too and says why, this holds for other programs.
CREATE TRIGGER charge_requests_resolve_once
BEFORE UPDATE OF resolution, resolved_at, resolved_by ON charge_requests
WHEN OLD.resolved_at IS NOT NULL
  OR (NEW.resolved_at IS NOT NULL AND OLD.state <> 'unknown')
  OR (NEW.resolution IS NULL) <> (NEW.resolved_at IS NULL)
  OR (NEW.resolution IS NULL) <> (NEW.resolved_by IS NULL)
  OR (NEW.resolution = 'issuance' AND NEW.issuance_id IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'only an unresolved unknown charge request can be resolved, once, with resolution, resolved_at and resolved_by');
END;

-- What blocks every new charge: the unresolved unknown requests.
CREATE INDEX charge_requests_unresolved ON charge_requests (id)
    WHERE state = 'unknown' AND resolved_at IS NULL;
