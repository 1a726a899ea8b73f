-- The daemons registered on this database: one row per running daemon (or
-- `charge` command), written when it takes its owner lock, its health noted
-- as it goes, removed when it stops cleanly (or when another daemon takes
-- over a dead one's claims).
--
-- The SQLite engine keeps this liveness in lock files beside the database
-- (`<database>.owners/<owner>.lock`, flocked for the process's lifetime) and
-- does not use this table yet; it exists so that both engines have the same
-- schema. On PostgreSQL a row says who holds which session-level advisory
-- lock, and what `status` shows about it.
CREATE TABLE daemons (
    -- Its owner id (as in issuances.lease_owner and charge_requests.performed_by).
    owner      TEXT PRIMARY KEY NOT NULL,
    -- The host it runs on, and its process id there.
    host       TEXT,
    pid        INTEGER,
    -- When it took its owner lock.
    started_at TEXT NOT NULL,
    -- Its own verdict on its health, as `/healthz` gives it: 'ok' or the
    -- problem; NULL until it has judged.
    health     TEXT,
    -- When it last wrote `health`.
    noted_at   TEXT
);
