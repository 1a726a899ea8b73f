-- Wake-ups: every commit that inserts issuances, charge requests or events
-- sends one notification on the channel `issuance_watcher`, its payload naming
-- the table's topic (`issuances`, `charges`, `events`). A running daemon
-- LISTENs on its own connection and looks at once, instead of waiting for its
-- next `poll.idle_recheck`. The triggers are statement-level: a 1,000-row
-- INSERT sends one notification, and PostgreSQL folds identical ones sent in
-- one transaction into one (delivered after commit; nothing if it rolls back).
--
-- Notifications are a hint, never the record: one sent while a daemon's
-- listening connection was down is lost, so a daemon reads everything again
-- after each reconnect. SQLite has no notifications: its migration of this
-- name is a comment, and a daemon on SQLite re-checks every poll.idle_recheck.
CREATE FUNCTION issuance_watcher_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('issuance_watcher', TG_ARGV[0]);
    RETURN NULL;
END;
$$;

CREATE TRIGGER issuances_wake_up AFTER INSERT ON issuances
    FOR EACH STATEMENT EXECUTE FUNCTION issuance_watcher_notify('issuances');

CREATE TRIGGER charge_requests_wake_up AFTER INSERT ON charge_requests
    FOR EACH STATEMENT EXECUTE FUNCTION issuance_watcher_notify('charges');

CREATE TRIGGER events_wake_up AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION issuance_watcher_notify('events');
