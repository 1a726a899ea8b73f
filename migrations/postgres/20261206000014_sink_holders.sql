-- Which daemon holds each webhook sink (the one that sends its deliveries).
-- The same as migrations/sqlite/20261206000014_sink_holders.sql, which says why.
ALTER TABLE sinks ADD COLUMN holder text;
ALTER TABLE sinks ADD COLUMN holder_fence bigint NOT NULL DEFAULT 0;
ALTER TABLE sinks ADD COLUMN hold_expires_at timestamptz;
