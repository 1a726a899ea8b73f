//! Every key and what it accepts, ranges included: the one table the merged
//! layers are checked against. A range is stated here, beside its key, and
//! nowhere else in the code; the README's Configuration tables state the same
//! (a unit test compares them).
//!
//! The duration maxima are what make arithmetic on settings safe: added to
//! any instant of this millennium, none comes near chrono's or tokio's limits.

use std::time::Duration;

/// What one key accepts.
#[derive(Debug, Clone, Copy)]
pub(in crate::settings) enum Kind {
    /// A humantime duration string, within `[min, max]`.
    Duration { min: Duration, max: Duration },
    /// A whole number within `[min, max]`.
    Integer { min: u64, max: u64 },
    /// A number within `(0, max]`.
    Positive { max: f64 },
    /// Free text (checked further in `load`). Never shown in an error: this
    /// kind covers the secrets.
    Text,
    /// The API's base URL: http(s) with a host, neither query nor fragment.
    Url,
    /// A webhook sink's URL: http(s) with a host (a query may carry a token).
    /// Never shown in an error: a Slack URL is itself the secret.
    SinkUrl,
    /// A file path; `:memory:` and other SQLite special names are refused.
    DatabasePath,
    /// A `postgres://` URL that sqlx connects with: no password, only the
    /// connect parameters sqlx knows. Never shown in an error.
    DatabaseUrl,
    /// A path (checked when used).
    Path,
    /// An IANA time-zone name.
    Zone,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// One duration, or a list of them, each within `[min, max]`.
    Ladder { min: Duration, max: Duration },
    /// A non-empty list of event type names (`issuance.due_soon`).
    Events,
    /// A sink's name: 1 to 64 letters, digits, `-`, `_` or `.`.
    Name,
    /// An RFC 3339 instant with its offset (`2026-12-06T09:00:00+09:00`).
    Instant,
}

/// One key: its section (`webhooks` for a key of each `[[webhooks]]` entry),
/// its name and what it accepts.
#[derive(Debug, Clone, Copy)]
pub(in crate::settings) struct Key {
    pub section: &'static str,
    pub name: &'static str,
    pub kind: Kind,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

const fn duration(min: Duration, max: Duration) -> Kind {
    Kind::Duration { min, max }
}

const fn key(section: &'static str, name: &'static str, kind: Kind) -> Key {
    Key {
        section,
        name,
        kind,
    }
}

/// Every key of the sections (`[api]` ... `[top_up]`), in the order of the
/// example file.
pub(in crate::settings) const KEYS: &[Key] = &[
    key("api", "base_url", Kind::Url),
    key("api", "access_key", Kind::Text),
    key("api", "secret_key", Kind::Text),
    key("api", "secret_key_file", Kind::Path),
    key("api", "timeout", duration(ms(10), secs(10 * MINUTE))),
    key(
        "api",
        "connect_timeout",
        duration(ms(10), secs(10 * MINUTE)),
    ),
    key("api", "timezone", Kind::Zone),
    key(
        "api",
        "max_body_bytes",
        Kind::Integer {
            min: 1024,
            max: 1 << 30,
        },
    ),
    key(
        "api",
        "requests_per_second",
        Kind::Positive { max: 1_000_000.0 },
    ),
    key("api", "concurrency", Kind::Integer { min: 1, max: 4096 }),
    key("database", "path", Kind::DatabasePath),
    key("database", "busy_timeout", duration(ms(0), secs(HOUR))),
    key(
        "database",
        "wal_warn_bytes",
        Kind::Integer {
            min: 0,
            max: 1 << 40,
        },
    ),
    key("database", "url", Kind::DatabaseUrl),
    key("database", "password_file", Kind::Path),
    key("poll", "interval", duration(ms(1), secs(HOUR))),
    key("poll", "max_interval", duration(ms(1), secs(7 * DAY))),
    key("poll", "ready_divisor", Kind::Integer { min: 1, max: 1000 }),
    key("poll", "fresh_divisor", Kind::Integer { min: 1, max: 1000 }),
    key("poll", "ready_interval", duration(ms(1), secs(DAY))),
    key("poll", "quiet_hours", Kind::Text),
    key("poll", "quiet_interval", duration(ms(1), secs(7 * DAY))),
    key("poll", "after_due_delay", duration(ms(0), secs(DAY))),
    key("poll", "overdue_interval", duration(ms(1), secs(7 * DAY))),
    key("poll", "backoff_max", duration(ms(1), secs(DAY))),
    key("poll", "not_found_grace", duration(ms(0), secs(30 * DAY))),
    key("poll", "auth_pause", duration(ms(1), secs(HOUR))),
    key("poll", "auth_pause_max", duration(ms(1), secs(DAY))),
    key("poll", "lease", duration(ms(1), secs(DAY))),
    key("poll", "startup_spread", duration(ms(0), secs(HOUR))),
    key("poll", "idle_recheck", duration(ms(1), secs(HOUR))),
    key(
        "flags",
        "due_soon_lead",
        Kind::Ladder {
            min: ms(0),
            max: secs(3650 * DAY),
        },
    ),
    key("log", "format", Kind::Choice(&["text", "json"])),
    key("http", "listen", Kind::Text),
    key("http", "admin_token_file", Kind::Path),
    key(
        "charge",
        "max_amount",
        Kind::Integer {
            min: 1,
            max: 1_000_000_000,
        },
    ),
    key("balance", "interval", duration(secs(1), secs(DAY))),
    key(
        "balance",
        "low_threshold",
        Kind::Integer {
            min: 0,
            max: 1_000_000_000_000,
        },
    ),
    key(
        "top_up",
        "below",
        Kind::Integer {
            min: 0,
            max: 1_000_000_000_000,
        },
    ),
    key(
        "top_up",
        "to",
        Kind::Integer {
            min: 0,
            max: 1_000_000_000_000,
        },
    ),
    key(
        "top_up",
        "step",
        Kind::Integer {
            min: 1,
            max: 1_000_000_000,
        },
    ),
    key("top_up", "max_per_day", Kind::Integer { min: 0, max: 1000 }),
    key(
        "top_up",
        "max_per_month",
        Kind::Integer {
            min: 0,
            max: 1_000_000_000_000,
        },
    ),
];

/// The keys of one `[[webhooks]]` entry, each its own constant so that the
/// code building a sink names the key (and so its range) it reads.
pub(in crate::settings) mod sink {
    use super::*;

    const fn sink(name: &'static str, kind: Kind) -> Key {
        key(LIST, name, kind)
    }

    /// The top-level key holding the list of sinks.
    pub const LIST: &str = "webhooks";
    pub const URL: Key = sink("url", Kind::SinkUrl);
    pub const SECRET: Key = sink("secret", Kind::Text);
    pub const SECRET_FILE: Key = sink("secret_file", Kind::Path);
    pub const PREVIOUS_SECRET: Key = sink("previous_secret", Kind::Text);
    pub const PREVIOUS_SECRET_FILE: Key = sink("previous_secret_file", Kind::Path);
    pub const PREVIOUS_UNTIL: Key = sink("previous_until", Kind::Instant);
    pub const NAME: Key = sink("name", Kind::Name);
    pub const EVENTS: Key = sink("events", Kind::Events);
    pub const FORMAT: Key = sink("format", Kind::Choice(&["standard", "slack"]));
    pub const TIMEOUT: Key = sink("timeout", duration(ms(1), secs(5 * MINUTE)));
    pub const BACKOFF_FIRST: Key = sink("backoff_first", duration(ms(1), secs(7 * DAY)));
    pub const BACKOFF_MAX: Key = sink("backoff_max", duration(ms(1), secs(7 * DAY)));
    pub const RETRY_HORIZON: Key = sink("retry_horizon", duration(ms(1), secs(365 * DAY)));
    pub const UNHEALTHY_AFTER: Key = sink("unhealthy_after", duration(ms(1), secs(365 * DAY)));
    pub const CONCURRENCY: Key = sink("concurrency", Kind::Integer { min: 1, max: 256 });
    pub const DISABLE_AFTER: Key = sink("disable_after", duration(secs(1), secs(365 * DAY)));
    pub const ATTEMPTS_RETENTION: Key =
        sink("attempts_retention", duration(secs(1), secs(3650 * DAY)));
    pub const LEASE: Key = sink("lease", duration(secs(1), secs(HOUR)));

    /// Every key of an entry, in the order of the example file.
    pub const KEYS: &[Key] = &[
        URL,
        SECRET,
        SECRET_FILE,
        PREVIOUS_SECRET,
        PREVIOUS_SECRET_FILE,
        PREVIOUS_UNTIL,
        NAME,
        EVENTS,
        FORMAT,
        TIMEOUT,
        BACKOFF_FIRST,
        BACKOFF_MAX,
        RETRY_HORIZON,
        UNHEALTHY_AFTER,
        CONCURRENCY,
        DISABLE_AFTER,
        ATTEMPTS_RETENTION,
        LEASE,
    ];
}
