-- What a sink's deliveries really are, for `status` and `events --failed`.
-- The same as migrations/sqlite/20261205000007_sink_health.sql, which says why.

-- Set at the first failed attempt after a 2xx (kept while failures go on),
-- cleared by the next 2xx.
ALTER TABLE sinks ADD COLUMN failing_since timestamptz;
ALTER TABLE sinks ADD COLUMN last_problem text;

-- An operator gave the delivery up by hand (`events discard`); such a
-- delivery also has `failed_at` set.
ALTER TABLE deliveries ADD COLUMN discarded_at timestamptz;
