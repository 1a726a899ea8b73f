-- The API's request budget, shared by every daemon on this database. The same
-- as migrations/sqlite/20261206000009_api_budget.sql, which says what each
-- column means. Times are integer microseconds since the Unix epoch on the
-- server's clock (clock_timestamp()), so that hosts with skewed clocks agree.
CREATE TABLE api_budget (
    id              bigint PRIMARY KEY NOT NULL CHECK (id = 1),
    next_slot_us    bigint NOT NULL,
    paused_until_us bigint,
    pause_reason    text
);
INSERT INTO api_budget (id, next_slot_us) VALUES (1, 0);
