-- The API's request budget, shared by every daemon on this database: the
-- account's `api.requests_per_second` at Bunjang is one budget, whatever the
-- number of daemons (src/store/budget.rs decides; this row only keeps it).
--
-- One row. Times are integer microseconds since the Unix epoch on the
-- database's clock (SQLite: the host's wall clock; PostgreSQL: the server's
-- clock_timestamp()), so that hosts with skewed clocks still agree.
CREATE TABLE api_budget (
    id              INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    -- The next free request slot: a daemon takes `n` slots from here (or
    -- from now, if that is later), each `1 / requests_per_second` apart,
    -- and moves this past them. Slots are never handed out twice.
    next_slot_us    INTEGER NOT NULL,
    -- No daemon sends before this (a 429's Retry-After, refused credentials).
    paused_until_us INTEGER,
    -- Why: 'retry_after' or 'auth'.
    pause_reason    TEXT
);
INSERT INTO api_budget (id, next_slot_us) VALUES (1, 0);
