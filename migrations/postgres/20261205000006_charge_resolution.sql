-- Resolving charge requests of unknown outcome, and recording forced sends.
-- The same as migrations/sqlite/20261205000006_charge_resolution.sql, which
-- says why: an unresolved `unknown` request blocks every new charge until a
-- person says what they found in the partner console.

-- 'issuance' (the charge is `issuance_id`) or 'none'; NULL: not resolved.
ALTER TABLE charge_requests ADD COLUMN resolution text
    CHECK (resolution IS NULL OR resolution IN ('issuance', 'none'));
ALTER TABLE charge_requests ADD COLUMN resolved_at timestamptz;
ALTER TABLE charge_requests ADD COLUMN resolved_by text;
ALTER TABLE charge_requests ADD COLUMN forced_past text;

-- Only an unresolved 'unknown' request can be resolved, once, completely.
CREATE FUNCTION charge_requests_resolve_once() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'only an unresolved unknown charge request can be resolved, once, with resolution, resolved_at and resolved_by';
END;
$$;

CREATE TRIGGER charge_requests_resolve_once
BEFORE UPDATE OF resolution, resolved_at, resolved_by ON charge_requests
FOR EACH ROW
WHEN (OLD.resolved_at IS NOT NULL
  OR (NEW.resolved_at IS NOT NULL AND OLD.state <> 'unknown')
  OR (NEW.resolution IS NULL) <> (NEW.resolved_at IS NULL)
  OR (NEW.resolution IS NULL) <> (NEW.resolved_by IS NULL)
  OR (NEW.resolution = 'issuance' AND NEW.issuance_id IS NULL))
EXECUTE FUNCTION charge_requests_resolve_once();

-- What blocks every new charge: the unresolved unknown requests.
CREATE INDEX charge_requests_unresolved ON charge_requests (id)
    WHERE state = 'unknown' AND resolved_at IS NULL;
