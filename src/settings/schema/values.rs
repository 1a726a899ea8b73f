//! What one value of a [`Kind`] must be, in the user's words: each kind's
//! parser turns a merged-layer value into its type (a duration in range, a
//! URL, a list of event types) or says what is wrong. The checks over the
//! whole tree and the typed `[[webhooks]]` entries both use these parsers, so
//! a value is judged by one rule wherever it is read.

use std::time::Duration;

use chrono::{DateTime, Utc};
use config::ValueKind;

use super::keys::Kind;
use crate::domain::EventType;

pub(in crate::settings) use crate::domain::time::human;

/// A [`Kind::Instant`]: RFC 3339 with an offset (TOML's offset date-times
/// arrive as this text too); a date or time without an offset is refused, as
/// its instant depends on the host's zone.
pub(in crate::settings) fn instant(value: &ValueKind) -> Result<DateTime<Utc>, String> {
    match value {
        ValueKind::String(text) => DateTime::parse_from_rfc3339(text.trim())
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| wrong(Kind::Instant, value)),
        _ => Err(wrong(Kind::Instant, value)),
    }
}

/// A [`Kind::Duration`] value.
pub(in crate::settings) fn duration(kind: Kind, value: &ValueKind) -> Result<Duration, String> {
    let Kind::Duration { min, max } = kind else {
        return Err(wrong(kind, value));
    };
    let ValueKind::String(text) = value else {
        let hint = if whole(value).is_some() {
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
    Ok(d)
}

/// A [`Kind::Integer`] value.
pub(in crate::settings) fn integer(kind: Kind, value: &ValueKind) -> Result<u64, String> {
    let Kind::Integer { min, max } = kind else {
        return Err(wrong(kind, value));
    };
    let n = whole(value).ok_or_else(|| wrong(kind, value))?;
    if n < i128::from(min) || n > i128::from(max) {
        return Err(format!("{n} is out of range: must be from {min} to {max}"));
    }
    u64::try_from(n).map_err(|_| wrong(kind, value))
}

/// A [`Kind::Text`] or [`Kind::Path`] value. The error never shows the value:
/// these kinds cover the secrets.
pub(in crate::settings) fn text(kind: Kind, value: &ValueKind) -> Result<String, String> {
    match value {
        ValueKind::String(text) => Ok(text.clone()),
        _ => Err(format!("expected {}", expected(kind))),
    }
}

/// A [`Kind::Choice`] value: the word, as listed.
pub(in crate::settings) fn choice(kind: Kind, value: &ValueKind) -> Result<&'static str, String> {
    let Kind::Choice(words) = kind else {
        return Err(wrong(kind, value));
    };
    match value {
        ValueKind::String(word) => words
            .iter()
            .copied()
            .find(|w| w == word)
            .ok_or_else(|| wrong(kind, value)),
        _ => Err(wrong(kind, value)),
    }
}

/// A [`Kind::Events`] list: every name a known event type, at least one.
pub(in crate::settings) fn events(value: &ValueKind) -> Result<Vec<EventType>, String> {
    let ValueKind::Array(items) = value else {
        return Err(wrong(Kind::Events, value));
    };
    if items.is_empty() {
        return Err("must name at least one event type (leave the key out for all)".into());
    }
    let mut types = Vec::new();
    let mut unknown = Vec::new();
    for item in items {
        match &item.kind {
            ValueKind::String(name) => match name.trim().parse::<EventType>() {
                Ok(t) if !types.contains(&t) => types.push(t),
                Ok(_) => {}
                Err(_) => unknown.push(format!("{:?}", crate::domain::names::shown(name))),
            },
            other => unknown.push(shown(other)),
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "unknown event type {}: expected {}",
            unknown.join(", "),
            expected(Kind::Events)
        ));
    }
    Ok(types)
}

/// A [`Kind::Name`].
pub(in crate::settings) fn name(value: &ValueKind) -> Result<String, String> {
    match value {
        ValueKind::String(name) if valid_name(name) => Ok(name.clone()),
        _ => Err(wrong(Kind::Name, value)),
    }
}

/// 1 to 64 letters, digits, `-`, `_` or `.`: a name that is safe in a log
/// line, a metric label and a command-line argument.
pub(in crate::settings) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// What `kind` accepts, said the way a user would write it.
pub(in crate::settings) fn expected(kind: Kind) -> String {
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
        Kind::SinkUrl => "an http(s) URL such as \"https://shop.example/hooks\"".to_owned(),
        Kind::DatabaseUrl => {
            "a PostgreSQL URL such as \"postgres://watcher@db.example:5432/watch\"".to_owned()
        }
        Kind::Zone => "a time-zone name such as \"Asia/Seoul\"".to_owned(),
        Kind::Choice(words) => one_of(words),
        Kind::Ladder { min, max } => format!(
            "a duration such as \"6h\", or a list such as [\"24h\", \"3h\"], each from {} to {}",
            human(min),
            human(max)
        ),
        Kind::Events => {
            let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            format!("a list of event types, each one of {}", one_of(&names))
        }
        Kind::Name => "a name of 1 to 64 letters, digits, '-', '_' or '.'".to_owned(),
        Kind::Instant => {
            "an RFC 3339 instant with its offset, such as \"2026-12-06T09:00:00+09:00\"".to_owned()
        }
    }
}

pub(super) fn one_of(words: &[&str]) -> String {
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

/// What the user wrote, for an error message (clipped; never called for
/// secrets, whose kinds' errors do not show the value).
pub(super) fn shown(value: &ValueKind) -> String {
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

pub(super) fn wrong(kind: Kind, value: &ValueKind) -> String {
    format!("expected {}, got {}", expected(kind), shown(value))
}

/// A whole number, as TOML writes it or as an environment variable's text.
fn whole(value: &ValueKind) -> Option<i128> {
    match value {
        ValueKind::I64(n) => Some(i128::from(*n)),
        ValueKind::U64(n) => Some(i128::from(*n)),
        ValueKind::I128(n) => Some(*n),
        ValueKind::U128(n) => i128::try_from(*n).ok(),
        ValueKind::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn number(value: &ValueKind) -> Option<f64> {
    match value {
        ValueKind::Float(f) => Some(*f),
        ValueKind::String(s) => s.trim().parse().ok(),
        other => whole(other).map(|n| n as f64),
    }
}

/// SQLite reads some names as something other than a file: `:memory:` (a new,
/// empty database per connection: every statement would find no table) and
/// `file:` URIs. The daemon needs one durable file.
pub(super) fn database_path(path: &str) -> Result<(), String> {
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

pub(super) fn clip(text: &str) -> String {
    text.chars().take(120).collect()
}
