-- What a sink's deliveries really are, for `status` and `events --failed`.
--
-- `sinks.failing_since` / `sinks.last_problem`: written by the sink's worker
-- with each batch of attempts: set at the first failed attempt after a 2xx
-- (kept while failures go on), cleared by the next 2xx. So "failing since" is
-- known to any reader of the file (`status` runs without the daemon's memory),
-- and survives a restart of the daemon.
ALTER TABLE sinks ADD COLUMN failing_since TEXT;
ALTER TABLE sinks ADD COLUMN last_problem TEXT;

-- `deliveries.discarded_at`: an operator gave the delivery up by hand
-- (`events discard`), typically those of a sink removed from the
-- configuration, which no worker will ever attempt. A discarded delivery also
-- has `failed_at` set (to the same instant unless it had been given up
-- already), so every reader that treats `failed_at IS NOT NULL` as "no more
-- attempts" stays right, and the open-delivery indexes need no change.
-- `events redeliver` clears both.
ALTER TABLE deliveries ADD COLUMN discarded_at TEXT;
