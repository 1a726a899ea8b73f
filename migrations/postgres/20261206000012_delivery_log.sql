-- The delivery log: one row per attempt at a delivery (`events show SEQ`),
-- written in the same transaction as the attempt's outcome on `deliveries`.
--
-- `response` is the first KiB of the receiver's answer, as text: decoded
-- lossily, control characters replaced, never more than 1024 bytes (the
-- receiver is not trusted). Rows go with their delivery (ON DELETE CASCADE),
-- and the daemon prunes those older than the sink's `attempts_retention`,
-- together with delivered deliveries delivered before it (undelivered
-- deliveries are never pruned).
--
-- `sink.disabled`: an event about no issuance, written with the disabling
-- of a sink that failed continuously for its `disable_after`.
CREATE TABLE attempts (
    sink          text NOT NULL,
    seq           bigint NOT NULL,
    attempted_at  timestamptz NOT NULL,
    duration_ms   bigint NOT NULL CHECK (duration_ms >= 0),
    -- HTTP status (NULL: no answer, see error).
    http_status   bigint,
    error         text,
    response      text CHECK (octet_length(response) <= 1024),
    FOREIGN KEY (sink, seq) REFERENCES deliveries (sink, seq) ON DELETE CASCADE
);

-- An event's attempts per sink, in order (`events show`).
CREATE INDEX attempts_by_event ON attempts (seq, sink, attempted_at);
-- Pruning by time, per sink (each has its attempts_retention).
CREATE INDEX attempts_by_time ON attempts (sink, attempted_at);
-- Pruning delivered deliveries by time.
CREATE INDEX deliveries_delivered ON deliveries (sink, delivered_at) WHERE delivered_at IS NOT NULL;
