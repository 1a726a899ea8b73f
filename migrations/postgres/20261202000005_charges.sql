-- Charges: requests to create one (`charge_requests`), the balance they feed
-- (`balance_history`), and events that belong to no issuance (`balance.low`).
-- The same as migrations/sqlite/20261202000005_charges.sql, which says why.
--
-- Money safety: a request row is performed at most once. It is claimed
-- (`pending` -> `sending`, with the performer's id) in one statement before its
-- POST is sent; the POST's outcome is written over `sending` afterwards. A row
-- still `sending` whose performer is dead becomes `unknown`: never sent again.

CREATE TABLE charge_requests (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- KRW, a positive integer.
    amount        bigint NOT NULL CHECK (amount > 0),
    requested_at  timestamptz NOT NULL DEFAULT now(),
    -- pending | sending | created | refused | unknown | rejected (see the SQLite file).
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'sending', 'created', 'refused', 'unknown', 'rejected')),
    -- 1: send even while the database holds a WAITED or READY issuance. An
    -- integer, not a boolean, so that `force = 1` means the same on both engines.
    force         bigint NOT NULL DEFAULT 0 CHECK (force IN (0, 1)),
    performed_by  text,
    sent_at       timestamptz,
    finished_at   timestamptz,
    issuance_id   text,
    http_status   bigint,
    error_code    text,
    error_message text
);

CREATE INDEX charge_requests_pending ON charge_requests (id) WHERE state = 'pending';
CREATE INDEX charge_requests_sending ON charge_requests (performed_by) WHERE state = 'sending';

-- What the balance endpoint answered, one row per poll (balance.interval).
CREATE TABLE balance_history (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    observed_at  timestamptz NOT NULL,
    balance      bigint NOT NULL,
    expiring_30d bigint NOT NULL
);

CREATE INDEX balance_history_by_time ON balance_history (observed_at);

-- Events that are about no issuance (balance.low): `events.issuance_id` becomes
-- nullable. SQLite rebuilds `events` and `deliveries` for this; here it is one
-- ALTER, and the tables, their rows, keys, triggers and the `seq` identity
-- (the cursor) stay as they are.
ALTER TABLE events ALTER COLUMN issuance_id DROP NOT NULL;

-- balance.low (the balance fell below balance.low_threshold, once per
-- crossing: watcher/balance.rs decides) is inserted by the daemon in the same
-- transaction as the balance_history row that crossed. Its deliveries carry
-- issuance_id '' (they are ordered among themselves).
