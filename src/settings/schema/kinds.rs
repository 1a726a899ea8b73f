//! Whether one value is what its [`Kind`] accepts: each kind handed to its
//! parser (`values`, and `urls` for the URL kinds), so the checks over the
//! whole tree judge a value by the same rule as the typed settings that read it.

use config::ValueKind;

use super::keys::Kind;
use super::urls::{base_url, database_url, sink_url};
use super::values::{
    choice, database_path, duration, events, expected, instant, integer, name, number, shown, text,
    wrong,
};

/// Whether `value` is what `kind` accepts; `Err` says why not.
pub(super) fn check(kind: Kind, value: &ValueKind) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use config::Value;

    use super::super::keys::{KEYS, sink};
    use super::super::values::{human, one_of};
    use super::*;
    use crate::domain::EventType;

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
