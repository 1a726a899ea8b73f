//! What every key accepts, in the user's words: the one table the merged layers
//! (defaults, file, environment) are checked against *before* they are turned
//! into typed settings, so that every problem is reported at once, each with
//! its full key path, and no value the rest of the program cannot live with
//! gets through.
//!
//! Invariants: every field of [`super::Settings`] has exactly one entry here
//! (a unit test serialises the tree and compares); every range is the one the
//! README's Configuration table states; a value accepted here deserialises.
//! The duration maxima are what make arithmetic on settings safe: added to
//! any instant of this millennium, none comes near chrono's or tokio's limits.
//!
//! Longer than most files on purpose: it is the one table of every key, and
//! split by section it would no longer be checked as one against the tree.

use std::time::Duration;

use config::{Value, ValueKind};

use super::error::Problem;

/// What one key accepts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// A humantime duration string, within `[min, max]`.
    Duration { min: Duration, max: Duration },
    /// A whole number within `[min, max]`.
    Integer { min: u64, max: u64 },
    /// A number within `(0, max]`.
    Positive { max: f64 },
    /// Free text (checked further in `load`).
    Text,
    /// An http(s) URL with a host and neither query nor fragment.
    Url,
    /// A file path; `:memory:` and other SQLite special names are refused.
    DatabasePath,
    /// A path (checked when used).
    Path,
    /// An IANA time-zone name.
    Zone,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// One duration, or a list of them, each within `[min, max]`.
    Ladder { min: Duration, max: Duration },
}

/// Top-level keys that hold a list of tables, checked where they are typed
/// (`webhooks.rs`, which names each problem `webhooks[N].key`).
const LISTS: &[&str] = &["webhooks"];

/// One key: its section, its name and what it accepts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Key {
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

/// Every key, in the order of the example file. The README's Configuration
/// table states the same ranges.
pub(super) const KEYS: &[Key] = &[
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
];

/// The sections, in order.
pub(super) fn sections() -> Vec<&'static str> {
    let mut sections: Vec<&'static str> = KEYS.iter().map(|k| k.section).collect();
    sections.dedup();
    sections
}

/// Checks the merged layers against [`KEYS`]: unknown keys (with the nearest
/// known one), values of the wrong kind, values out of range. Every problem, in
/// file order of the schema, then unknown keys sorted.
pub(super) fn check(root: &config::Map<String, Value>, env_prefix: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    let sections = sections();
    let mut names: Vec<&String> = root.keys().collect();
    names.sort();
    for name in names {
        let value = &root[name];
        if LISTS.contains(&name.as_str()) {
            continue;
        }
        if !sections.contains(&name.as_str()) {
            unknown.push(unknown_key(name, None, value, env_prefix));
            continue;
        }
        let ValueKind::Table(table) = &value.kind else {
            problems.push(Problem::new(
                name.clone(),
                format!("must be a table (a `[{name}]` section), not a single value"),
                origin(value, name, env_prefix).as_deref(),
            ));
            continue;
        };
        let mut keys: Vec<&String> = table.keys().collect();
        keys.sort();
        for key in keys {
            if !KEYS.iter().any(|k| k.section == name && k.name == key) {
                unknown.push(unknown_key(key, Some(name), &table[key], env_prefix));
            }
        }
    }
    for k in KEYS {
        let Some(value) = root
            .get(k.section)
            .and_then(|s| match &s.kind {
                ValueKind::Table(t) => t.get(k.name),
                _ => None,
            })
            .filter(|v| !matches!(v.kind, ValueKind::Nil))
        else {
            continue;
        };
        if let Err(reason) = check_value(k.kind, &value.kind) {
            let path = format!("{}.{}", k.section, k.name);
            let origin = origin(value, &path, env_prefix);
            problems.push(Problem::new(path, reason, origin.as_deref()));
        }
    }
    problems.extend(unknown);
    problems
}

fn unknown_key(name: &str, section: Option<&str>, value: &Value, env_prefix: &str) -> Problem {
    let path = match section {
        Some(section) => format!("{section}.{name}"),
        None => name.to_owned(),
    };
    let mut reason = String::from("unknown key");
    if let Some(near) = nearest(&path) {
        reason.push_str(&format!("; did you mean `{near}`?"));
    }
    let origin = origin(value, &path, env_prefix);
    Problem::new(path, reason, origin.as_deref())
}

/// Where a value was set: a file path, or `the environment: VAR` naming the variable.
fn origin(value: &Value, path: &str, env_prefix: &str) -> Option<String> {
    match value.origin() {
        Some("the environment") => Some(format!(
            "the environment: {env_prefix}__{}",
            path.replace('.', "__").to_uppercase()
        )),
        other => other.map(file_shown),
    }
}

/// A configuration file as the user can find it. The config crate names a
/// file relative to the working directory (`../.tmpX/my.toml`), which reads
/// as a different file from where the user is; the resolved path does not.
fn file_shown(origin: &str) -> String {
    let path = std::path::Path::new(origin);
    if path.is_relative()
        && let Ok(resolved) = std::fs::canonicalize(path)
    {
        return resolved.display().to_string();
    }
    origin.to_owned()
}

/// Where `section.name` was set, if it was set anywhere but the built-in defaults.
pub(super) fn origin_of(
    root: &config::Map<String, Value>,
    section: &str,
    name: &str,
    env_prefix: &str,
) -> Option<String> {
    let ValueKind::Table(table) = &root.get(section)?.kind else {
        return None;
    };
    origin(table.get(name)?, &format!("{section}.{name}"), env_prefix)
}

/// The known key (or section) closest to `path`, if any is close enough to be
/// a likely typo: same section preferred, then the key name alone anywhere
/// (`api.interval` → `poll.interval`).
fn nearest(path: &str) -> Option<String> {
    const CLOSE_ENOUGH: f64 = 0.8;
    let candidates = KEYS
        .iter()
        .map(|k| format!("{}.{}", k.section, k.name))
        .chain(sections().into_iter().map(str::to_owned));
    let best = candidates
        .map(|known| {
            let whole = strsim::jaro_winkler(path, &known);
            let by_name = match (path.rsplit_once('.'), known.rsplit_once('.')) {
                (Some((_, a)), Some((_, b))) if a == b => 0.95,
                _ => 0.0,
            };
            (whole.max(by_name), known)
        })
        // On a tie the key listed first wins (`interval` alone is `poll.interval`).
        .reduce(|best, next| if next.0 > best.0 { next } else { best })?;
    (best.0 >= CLOSE_ENOUGH && best.1 != path).then_some(best.1)
}

/// What `kind` accepts, said the way a user would write it.
fn expected(kind: Kind) -> String {
    match kind {
        Kind::Duration { min, max } => format!(
            "a duration such as \"5s\" or \"10m\", from {} to {}",
            human(min),
            human(max)
        ),
        Kind::Integer { min, max } => format!("a whole number from {min} to {max}"),
        Kind::Positive { max } => format!("a number above 0, at most {max}"),
        Kind::Text | Kind::Path | Kind::DatabasePath => "text in quotes".to_owned(),
        Kind::Url => "an http(s) URL such as \"https://openapi.bunjang.co.kr\"".to_owned(),
        Kind::Zone => "a time-zone name such as \"Asia/Seoul\"".to_owned(),
        Kind::Choice(words) => one_of(words),
        Kind::Ladder { min, max } => format!(
            "a duration such as \"6h\", or a list such as [\"24h\", \"3h\"], each from {} to {}",
            human(min),
            human(max)
        ),
    }
}

fn one_of(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => format!("\"{one}\""),
        [init @ .., last] => format!(
            "{} or \"{last}\"",
            init.iter()
                .map(|w| format!("\"{w}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub(super) use crate::domain::time::human;

/// What the user wrote, for an error message (clipped; never called for secrets,
/// whose kind is [`Kind::Text`] and is never rejected by kind).
fn shown(value: &ValueKind) -> String {
    let text = match value {
        ValueKind::String(s) => format!("{s:?}"),
        ValueKind::Boolean(b) => b.to_string(),
        ValueKind::I64(n) => n.to_string(),
        ValueKind::I128(n) => n.to_string(),
        ValueKind::U64(n) => n.to_string(),
        ValueKind::U128(n) => n.to_string(),
        ValueKind::Float(f) => f.to_string(),
        ValueKind::Table(_) => "a table".to_owned(),
        ValueKind::Array(_) => "a list".to_owned(),
        ValueKind::Nil => "nothing".to_owned(),
    };
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(80).collect::<String>())
    } else {
        text
    }
}

fn wrong(kind: Kind, value: &ValueKind) -> String {
    format!("expected {}, got {}", expected(kind), shown(value))
}

fn check_value(kind: Kind, value: &ValueKind) -> Result<(), String> {
    match kind {
        Kind::Ladder { min, max } => match value {
            ValueKind::Array(rungs) if !rungs.is_empty() => rungs
                .iter()
                .try_for_each(|rung| check_value(Kind::Duration { min, max }, &rung.kind)),
            ValueKind::Array(_) => Err("expected at least one duration, got an empty list".into()),
            one @ ValueKind::String(_) => check_value(Kind::Duration { min, max }, one),
            other => Err(wrong(kind, other)),
        },
        Kind::Duration { min, max } => {
            let ValueKind::String(text) = value else {
                let hint = if integer(value).is_some() {
                    " (a number needs a unit: \"5s\", \"500ms\")"
                } else {
                    ""
                };
                return Err(format!("{}{hint}", wrong(kind, value)));
            };
            let d = humantime::parse_duration(text.trim()).map_err(|_| wrong(kind, value))?;
            if d < min || d > max {
                return Err(format!(
                    "{} is out of range: must be from {} to {}",
                    shown(value),
                    human(min),
                    human(max)
                ));
            }
            Ok(())
        }
        Kind::Integer { min, max } => {
            let n = integer(value).ok_or_else(|| wrong(kind, value))?;
            if n < i128::from(min) || n > i128::from(max) {
                return Err(format!("{n} is out of range: must be from {min} to {max}"));
            }
            Ok(())
        }
        Kind::Positive { max } => {
            let n = number(value).ok_or_else(|| wrong(kind, value))?;
            if !(n.is_finite() && n > 0.0 && n <= max) {
                return Err(format!(
                    "{} is out of range: must be above 0 and at most {max}",
                    shown(value)
                ));
            }
            Ok(())
        }
        Kind::Text | Kind::Path => match value {
            ValueKind::String(_) => Ok(()),
            // Never show the value: this kind covers the secret.
            _ => Err(format!("expected {}", expected(kind))),
        },
        Kind::DatabasePath => match value {
            ValueKind::String(path) => database_path(path),
            _ => Err(wrong(kind, value)),
        },
        Kind::Url => match value {
            ValueKind::String(url) => base_url(url),
            _ => Err(wrong(kind, value)),
        },
        Kind::Zone => match value {
            ValueKind::String(name) if name.parse::<chrono_tz::Tz>().is_ok() => Ok(()),
            ValueKind::String(_) => Err(format!(
                "{} is not a known time zone: expected {}",
                shown(value),
                expected(kind)
            )),
            _ => Err(wrong(kind, value)),
        },
        Kind::Choice(words) => match value {
            ValueKind::String(word) if words.contains(&word.as_str()) => Ok(()),
            _ => Err(wrong(kind, value)),
        },
    }
}

/// A whole number, as TOML writes it or as an environment variable's text.
fn integer(value: &ValueKind) -> Option<i128> {
    match value {
        ValueKind::I64(n) => Some(i128::from(*n)),
        ValueKind::U64(n) => Some(i128::from(*n)),
        ValueKind::I128(n) => Some(*n),
        ValueKind::U128(n) => i128::try_from(*n).ok(),
        ValueKind::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn number(value: &ValueKind) -> Option<f64> {
    match value {
        ValueKind::Float(f) => Some(*f),
        ValueKind::String(s) => s.trim().parse().ok(),
        other => integer(other).map(|n| n as f64),
    }
}

/// The API's base: requests go to `{base_url}/api/v1/...`, so anything after
/// the path would end up in the middle of every request's URL. A user name or
/// password is refused first, and errors echo the text without one.
fn base_url(text: &str) -> Result<(), String> {
    let shown = clip(&without_userinfo(text));
    let url = reqwest::Url::parse(text).map_err(|e| format!("{shown:?} is not a URL: {e}"))?;
    if super::userinfo::present(&url) {
        return Err(super::userinfo::REFUSED.into());
    }
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "{shown:?} must be an http(s) URL with a host, such as \"https://openapi.bunjang.co.kr\""
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || text.contains(['?', '#']) {
        return Err(format!(
            "{shown:?} has a query or fragment (`?...`, `#...`): the request paths are appended \
             to the base URL, so it must end at its path"
        ));
    }
    Ok(())
}

/// URL text with whatever stands before an `@` in its authority replaced, for
/// echoing text that may not even parse.
fn without_userinfo(text: &str) -> String {
    let (scheme, rest) = text.split_once("://").unwrap_or(("", text));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) if scheme.is_empty() => format!("[REDACTED]{}", &rest[at..]),
        Some(at) => format!("{scheme}://[REDACTED]{}", &rest[at..]),
        None => text.to_owned(),
    }
}

/// SQLite reads some names as something other than a file: `:memory:` (a new,
/// empty database per connection: every statement would find no table) and
/// `file:` URIs. The daemon needs one durable file.
fn database_path(path: &str) -> Result<(), String> {
    let trimmed = path.trim();
    if trimmed.is_empty() {
        return Err("is required: the SQLite file to keep the watch list in".into());
    }
    if trimmed.starts_with(':') || trimmed.starts_with("file:") {
        return Err(format!(
            "{:?} is not a file path: an in-memory or URI database would be a new, empty \
             database for every connection and lose everything at exit; name a file such \
             as \"/var/lib/issuance-watcher/watcher.db\"",
            clip(path)
        ));
    }
    Ok(())
}

fn clip(text: &str) -> String {
    text.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_user_words() {
        let kind = duration(ms(1), secs(HOUR));
        assert!(check_value(kind, &ValueKind::String("5s".into())).is_ok());
        let err = check_value(kind, &ValueKind::I64(5)).unwrap_err();
        assert!(err.contains("a duration such as \"5s\""), "{err}");
        assert!(err.contains("needs a unit"), "{err}");
        let err = check_value(kind, &ValueKind::String("10000000000h".into())).unwrap_err();
        assert!(err.contains("out of range") && err.contains("1h"), "{err}");
        // Larger than humantime can represent at all: still a clear error.
        let err = check_value(kind, &ValueKind::String("99999999999999999999h".into()));
        assert!(err.is_err());
    }

    #[test]
    fn choices_are_listed() {
        let err = check_value(
            Kind::Choice(&["text", "json"]),
            &ValueKind::String("xml".into()),
        )
        .unwrap_err();
        assert!(err.contains("\"text\" or \"json\""), "{err}");
        assert_eq!(one_of(&["a", "b", "c"]), "\"a\", \"b\" or \"c\"");
    }

    #[test]
    fn typos_find_the_key_meant() {
        assert_eq!(nearest("poll.intervall").as_deref(), Some("poll.interval"));
        assert_eq!(nearest("api.interval").as_deref(), Some("poll.interval"));
        assert_eq!(nearest("pol").as_deref(), Some("poll"));
        assert_eq!(nearest("zzz.qqqq"), None);
    }

    #[test]
    fn base_urls_that_cannot_take_a_path_are_refused() {
        assert!(base_url("https://openapi.bunjang.co.kr").is_ok());
        assert!(base_url("http://127.0.0.1:8080/prefix/").is_ok());
        for bad in [
            "http://h/p?x=1",
            "http://h/p#f",
            "http://h/?",
            "ftp://h",
            "not a url",
            "http://u:p@h",
        ] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
        for with_password in [
            "http://u:hunter2@h",
            "ftp://u:hunter2@h",
            "http://u:hunter2@h/?x",
            "http://u:hunter2@[::1",
        ] {
            let err = base_url(with_password).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn in_memory_databases_are_refused() {
        for bad in [":memory:", "file::memory:?cache=shared", "", "  "] {
            assert!(database_path(bad).is_err(), "{bad:?}");
        }
        assert!(database_path("local/watcher.db").is_ok());
    }

    #[test]
    fn a_lead_ladder_is_one_duration_or_a_list_each_in_range() {
        let ladder = Kind::Ladder {
            min: ms(0),
            max: secs(DAY),
        };
        let text = |t: &str| Value::new(None, ValueKind::String(t.to_owned()));
        let list = |items: &[&str]| ValueKind::Array(items.iter().map(|t| text(t)).collect());
        assert!(check_value(ladder, &ValueKind::String("6h".into())).is_ok());
        assert!(check_value(ladder, &list(&["24h", "3h", "30m"])).is_ok());
        let empty = check_value(ladder, &list(&[])).unwrap_err();
        assert!(empty.contains("at least one"), "{empty}");
        let far = check_value(ladder, &list(&["3h", "2d"])).unwrap_err();
        assert!(far.contains("out of range"), "{far}");
        let bare = check_value(ladder, &ValueKind::I64(5)).unwrap_err();
        assert!(bare.contains("a list such as"), "{bare}");
    }

    #[test]
    fn every_range_accepts_its_own_bounds() {
        for k in KEYS {
            if let Kind::Duration { min, max } | Kind::Ladder { min, max } = k.kind {
                for d in [min, max] {
                    let text = ValueKind::String(human(d));
                    assert!(
                        check_value(k.kind, &text).is_ok(),
                        "{}.{}",
                        k.section,
                        k.name
                    );
                }
            }
        }
    }

    /// The README's Configuration table states each key's default and range:
    /// they must be the ones the code uses.
    #[test]
    fn the_readme_states_every_key_with_its_default_and_range() {
        let readme = include_str!("../../README.md");
        let defaults: toml::Table = toml::from_str(super::super::DEFAULTS_TOML).unwrap();
        for k in KEYS {
            let path = format!("{}.{}", k.section, k.name);
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{path}` |")))
                .unwrap_or_else(|| panic!("README has no row for {path}"));
            if let Kind::Duration { min, max } | Kind::Ladder { min, max } = k.kind {
                let range = format!("| {} – {}", human(min), human(max));
                assert!(
                    row.contains(&range),
                    "{path}: README says {row}, code {range}"
                );
            }
            if let Kind::Integer { min, max } = k.kind {
                let range = format!("| {min} – {max}");
                assert!(
                    row.contains(&range),
                    "{path}: README says {row}, code {range}"
                );
            }
            if let Some(value) = defaults.get(k.section).and_then(|s| s.get(k.name)) {
                let shown = match value {
                    toml::Value::String(s) if s.is_empty() => "`\"\"`".to_owned(),
                    toml::Value::String(s) => format!("`{s}`"),
                    toml::Value::Float(f) => format!("`{f}`"),
                    other => format!("`{other}`"),
                };
                assert!(
                    row.contains(&format!("| {shown}")),
                    "{path}: default {shown} not in README row {row}"
                );
            }
        }
    }
}
