-- The daemons registered on this database. The same as
-- migrations/sqlite/20261206000008_daemons.sql, which says what each column
-- means.
--
-- Liveness is not in this table: a running daemon holds a session-level
-- advisory lock (key hashtextextended('issuance-watcher owner ' || owner, 0))
-- on a connection of its own, which the server ends when that connection
-- ends, however the daemon dies. A row whose lock nobody holds is a dead
-- daemon's: the next daemon takes over its claims and removes the row.
-- The row is written after the lock is taken and removed before it is
-- released, so a row with a free lock is never a daemon still starting or
-- stopping cleanly.
CREATE TABLE daemons (
    owner      text PRIMARY KEY NOT NULL,
    host       text,
    pid        bigint,
    started_at timestamptz NOT NULL,
    health     text,
    noted_at   timestamptz
);
