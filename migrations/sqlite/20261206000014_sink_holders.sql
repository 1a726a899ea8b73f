-- Which daemon holds each webhook sink: several daemons on one database
-- each run a worker per configured sink, but only the holder sends the
-- sink's deliveries, so one backlog is never sent twice in parallel and an
-- issuance's events leave in order whichever daemon sends them.
--
-- A hold is a fenced lease, like an issuance's claim: `holder` is the
-- daemon's owner id (as in issuances.lease_owner), `holder_fence` grows by
-- one at every take, and every write of the sink's worker (admitting events,
-- an attempt's outcome) checks both, so a daemon that lost the sink while
-- frozen cannot write late. `hold_expires_at`: the holder renews it; past it,
-- another daemon may take the sink (a frozen holder); a dead holder's sink
-- is taken at once (its owner lock is free).
ALTER TABLE sinks ADD COLUMN holder TEXT;
ALTER TABLE sinks ADD COLUMN holder_fence INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sinks ADD COLUMN hold_expires_at TEXT;
