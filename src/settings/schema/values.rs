//! What one value of a [`Kind`] must be, in the user's words: each kind's
//! parser turns a merged-layer value into its type (a duration in range, a
//! URL, a list of event types) or says what is wrong. The checks over the
//! whole tree and the typed `[[webhooks]]` entries both use these parsers, so
//! a value is judged by one rule wherever it is read.

use std::time::Duration;

use chrono::{DateTime, Utc};
use config::ValueKind;

use super::keys::Kind;
use super::urls::{base_url, database_url, sink_url};
use crate::domain::EventType;

pub(in crate::settings) use crate::domain::time::human;

/// Whether `value` is what `kind` accepts; `Err` says why not.
pub(in crate::settings) fn check(kind: Kind, value: &ValueKind) -> Result<(), String> {
    match kind {
        Kind::Ladder { min, max } => match value {
            ValueKind::Array(rungs) if !rungs.is_empty() => rungs
                .iter()
                .try_for_each(|rung| check(Kind::Duration { min, max }, &rung.kind)),
            ValueKind::Array(_) => Err("expected at least one duration, got an empty list".into()),
            one @ ValueKind::String(_) => check(Kind::Duration { min, max }, one),
            other => Err(wrong(kind, other)),
        },
        Kind::Duration { .. } => duration(kind, value).map(drop),
        Kind::Integer { .. } => integer(kind, value).map(drop),
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
        Kind::Text | Kind::Path => text(kind, value).map(drop),
        Kind::DatabasePath => match value {
            ValueKind::String(path) => database_path(path),
            _ => Err(wrong(kind, value)),
        },
        Kind::Url => match value {
            ValueKind::String(url) => base_url(url),
            _ => Err(wrong(kind, value)),
        },
        Kind::SinkUrl => sink_url(value).map(drop),
        Kind::DatabaseUrl => database_url(value).map(drop),
        Kind::Zone => match value {
            ValueKind::String(name) if name.parse::<chrono_tz::Tz>().is_ok() => Ok(()),
            ValueKind::String(_) => Err(format!(
                "{} is not a known time zone: expected {}",
                shown(value),
                expected(kind)
            )),
            _ => Err(wrong(kind, value)),
        },
        Kind::Choice(_) => choice(kind, value).map(drop),
        Kind::Events => events(value).map(drop),
        Kind::Name => name(value).map(drop),
        Kind::Instant => instant(value).map(drop),
    }
}

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

fn number(value: &ValueKind) -> Option<f64> {
    match value {
        ValueKind::Float(f) => Some(*f),
        ValueKind::String(s) => s.trim().parse().ok(),
        other => whole(other).map(|n| n as f64),
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

pub(super) fn clip(text: &str) -> String {
    text.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use config::Value;

    use super::super::keys::{KEYS, sink};
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    const HOUR: u64 = 3600;
    const DAY: u64 = 24 * HOUR;

    fn dur_kind(min: Duration, max: Duration) -> Kind {
        Kind::Duration { min, max }
    }

    #[test]
    fn durations_in_user_words() {
        let kind = dur_kind(ms(1), secs(HOUR));
        assert!(check(kind, &ValueKind::String("5s".into())).is_ok());
        let err = check(kind, &ValueKind::I64(5)).unwrap_err();
        assert!(err.contains("a duration such as \"5s\""), "{err}");
        assert!(err.contains("needs a unit"), "{err}");
        let err = check(kind, &ValueKind::String("10000000000h".into())).unwrap_err();
        assert!(err.contains("out of range") && err.contains("1h"), "{err}");
        // Larger than humantime can represent at all: still a clear error.
        let err = check(kind, &ValueKind::String("99999999999999999999h".into()));
        assert!(err.is_err());
    }

    #[test]
    fn choices_are_listed() {
        let err = check(
            Kind::Choice(&["text", "json"]),
            &ValueKind::String("xml".into()),
        )
        .unwrap_err();
        assert!(err.contains("\"text\" or \"json\""), "{err}");
        assert_eq!(one_of(&["a", "b", "c"]), "\"a\", \"b\" or \"c\"");
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
        assert!(check(ladder, &ValueKind::String("6h".into())).is_ok());
        assert!(check(ladder, &list(&["24h", "3h", "30m"])).is_ok());
        let empty = check(ladder, &list(&[])).unwrap_err();
        assert!(empty.contains("at least one"), "{empty}");
        let far = check(ladder, &list(&["3h", "2d"])).unwrap_err();
        assert!(far.contains("out of range"), "{far}");
        let bare = check(ladder, &ValueKind::I64(5)).unwrap_err();
        assert!(bare.contains("a list such as"), "{bare}");
    }

    #[test]
    fn every_range_accepts_its_own_bounds() {
        for k in KEYS.iter().chain(sink::KEYS) {
            if let Kind::Duration { min, max } | Kind::Ladder { min, max } = k.kind {
                for d in [min, max] {
                    let text = ValueKind::String(human(d));
                    assert!(check(k.kind, &text).is_ok(), "{}.{}", k.section, k.name);
                }
            }
        }
    }

    #[test]
    fn event_lists_are_typed_and_every_unknown_name_is_listed() {
        let list = |items: &[&str]| {
            ValueKind::Array(
                items
                    .iter()
                    .map(|t| Value::new(None, ValueKind::String((*t).to_owned())))
                    .collect(),
            )
        };
        assert_eq!(
            events(&list(&[
                "issuance.due_soon",
                "balance.low",
                "issuance.due_soon"
            ]))
            .unwrap(),
            [EventType::DueSoon, EventType::BalanceLow]
        );
        let err = events(&list(&["issuance.paid", "balance.low", "nope"])).unwrap_err();
        assert!(
            err.contains("\"issuance.paid\", \"nope\"") && err.contains("issuance.status_changed"),
            "{err}"
        );
        assert!(events(&list(&[])).unwrap_err().contains("at least one"));
        assert!(events(&ValueKind::String("balance.low".into())).is_err());
    }

    #[test]
    fn names_and_choices_are_checked_by_their_table_entry() {
        assert_eq!(
            name(&ValueKind::String("shop-1.a_b".into())).unwrap(),
            "shop-1.a_b"
        );
        for bad in ["", "a b", "ü", &"x".repeat(65)] {
            assert!(name(&ValueKind::String(bad.into())).is_err(), "{bad:?}");
        }
        assert_eq!(
            choice(sink::FORMAT.kind, &ValueKind::String("slack".into())),
            Ok("slack")
        );
        let err = choice(sink::FORMAT.kind, &ValueKind::String("teams".into())).unwrap_err();
        assert!(err.contains("\"standard\" or \"slack\""), "{err}");
        let err = integer(sink::CONCURRENCY.kind, &ValueKind::I64(257)).unwrap_err();
        assert!(err.contains("from 1 to 256"), "{err}");
        let err = duration(sink::TIMEOUT.kind, &ValueKind::String("6m".into())).unwrap_err();
        assert!(err.contains("from 1ms to 5m"), "{err}");
    }
}
