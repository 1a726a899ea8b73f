//! `events redeliver` and `events discard`: what an operator does with
//! deliveries that did not happen.
//!
//! Invariants:
//! - `redeliver` schedules each SEQ in a transaction of its own and prints
//!   each SEQ's outcome: one event that cannot be scheduled never keeps the
//!   others of the list from being; the exit code is non-zero if any was not,
//!   and the error names which and why;
//! - it sends only to configured sinks: a worker runs for those alone, so a
//!   delivery to a removed sink would wait forever. A removed sink's
//!   deliveries are given up with `discard` (after redelivering the events to
//!   a configured sink, if they are still wanted);
//! - a range replay (`--since`, `--until`, `--type`) selects the events
//!   that occurred in `[since, until)` and schedules each like a listed SEQ,
//!   to each target sink only if the sink takes its type (its `events`); its
//!   dry run counts them per sink and schedules nothing;
//! - `discard` deletes nothing: it closes the deliveries (`failed_at`) and
//!   marks them `discarded_at`, so the record of what was never delivered
//!   stays, and `redeliver` can still open any of them again.

use std::fmt::Write as _;

use anyhow::{Context as _, bail};
use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone as _, Utc};
use chrono_tz::Tz;

use super::output::print_text;
use crate::app::open_store;
use crate::domain::EventType;
use crate::domain::timefmt::local;
use crate::settings::Settings;
use crate::store::{Access, EventRange};

/// A range replay's times and type as typed.
#[derive(Debug, Clone)]
pub(super) struct Range {
    pub since: String,
    pub until: Option<String>,
    pub event_type: Option<String>,
}

/// A time typed on the command line, at `now`: RFC 3339 with its offset; a
/// local date and time in `zone` (`2026-12-05 09:00[:00]`, `T` or a space,
/// or a date alone: its midnight); or a duration ago (`90m`, `2h`, `3d`).
pub(super) fn parse_time(
    text: &str,
    zone: Tz,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(crate::domain::time::before(now, ago));
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|layout| NaiveDateTime::parse_from_str(text, layout).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    });
    let Some(naive) = naive else {
        return Err(format!(
            "{text:?} is not a time: give RFC 3339 (2026-12-05T09:00:00+09:00), a local time in {zone} \
             (2026-12-05 09:00) or a duration ago (2h)"
        ));
    };
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Ok(t.with_timezone(&Utc)),
        LocalResult::None => Err(format!("{text:?} does not exist in {zone}")),
    }
}

impl Range {
    /// The range as the store selects it, at `now`, times read in `zone`.
    fn resolve(&self, zone: Tz, now: DateTime<Utc>) -> Result<EventRange, String> {
        let since = parse_time(&self.since, zone, now).map_err(|e| format!("--since: {e}"))?;
        let until = self
            .until
            .as_deref()
            .map(|u| parse_time(u, zone, now).map_err(|e| format!("--until: {e}")))
            .transpose()?;
        if let Some(until) = until.filter(|u| *u <= since) {
            return Err(format!(
                "--until ({}) must be after --since ({})",
                local(until, zone),
                local(since, zone)
            ));
        }
        let event_type = self
            .event_type
            .as_deref()
            .map(|t| t.parse::<EventType>().map(|t| t.as_str().to_owned()))
            .transpose()
            .map_err(|e| format!("--type: {e}"))?;
        Ok(EventRange {
            since,
            until,
            event_type,
        })
    }
}

/// The range in words, times in `zone`.
fn range_text(range: &EventRange, zone: Tz) -> String {
    let mut text = format!("since {}", local(range.since, zone));
    if let Some(until) = range.until {
        text.push_str(&format!(" until {}", local(until, zone)));
    }
    if let Some(t) = &range.event_type {
        text.push_str(&format!(" of type {t}"));
    }
    text
}

/// Each target sink with the events of `found` it takes (its `events`).
fn per_sink<'a>(
    settings: &Settings,
    sinks: &[String],
    found: &'a [(i64, String)],
) -> Vec<(String, Vec<&'a (i64, String)>)> {
    sinks
        .iter()
        .map(|name| {
            let takes: Vec<&str> = settings
                .webhooks
                .iter()
                .find(|w| &w.name == name)
                .map(|w| w.events.iter().map(|t| t.as_str()).collect())
                .unwrap_or_default();
            let events = found
                .iter()
                .filter(|(_, t)| takes.contains(&t.as_str()))
                .collect();
            (name.clone(), events)
        })
        .collect()
}

/// `events redeliver --since ...`: every event of the range, to each target
/// sink that takes its type; with `dry_run`, only how many.
pub(super) async fn redeliver_range(
    settings: &Settings,
    range: &Range,
    sink: Option<String>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let zone = settings.api.timezone;
    let range = range
        .resolve(zone, Utc::now())
        .map_err(anyhow::Error::msg)?;
    let sinks = match target_sinks(&configured(settings), sink) {
        Ok(sinks) => sinks,
        Err(why) => bail!(why),
    };
    let access = if dry_run { Access::Read } else { Access::Write };
    let store = open_store(settings, access).await?;
    let found = store
        .events_in_range(&range)
        .await
        .context("while selecting the events of the range")?;
    let plan = per_sink(settings, &sinks, &found);
    let counts: Vec<String> = plan
        .iter()
        .map(|(name, events)| format!("{} to {name}", events.len()))
        .collect();
    let what = range_text(&range, zone);
    if dry_run {
        return print_text(&format!(
            "dry run: {} events occurred {what}; they would be redelivered: {} (nothing was scheduled)\n",
            found.len(),
            counts.join(", ")
        ));
    }
    let mut out = String::new();
    let mut missed = Vec::new();
    let mut scheduled = 0;
    for (name, events) in &plan {
        let target = std::slice::from_ref(name);
        for (seq, _) in events {
            match store.redeliver(target, *seq, Utc::now()).await {
                Ok(true) => scheduled += 1,
                Ok(false) => {
                    let _ = writeln!(
                        out,
                        "seq {seq}: NOT scheduled for {name}: no such event in the outbox"
                    );
                    missed.push(format!("seq {seq} to {name} (no such event)"));
                }
                Err(e) => {
                    let why = format!("{:#}", anyhow::Error::new(e));
                    let _ = writeln!(out, "seq {seq}: NOT scheduled for {name}: {why}");
                    missed.push(format!("seq {seq} to {name} ({why})"));
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "{} events occurred {what}; {scheduled} deliveries scheduled again ({}); the running daemon sends them within a second",
        found.len(),
        counts.join(", ")
    );
    print_text(&out)?;
    note_disabled(&store, &sinks).await?;
    if !missed.is_empty() {
        bail!(
            "{} deliveries not scheduled: {}",
            missed.len(),
            missed.join(", ")
        );
    }
    Ok(())
}

/// A note for each of `sinks` that is disabled: the events wait.
async fn note_disabled(store: &crate::store::Store, sinks: &[String]) -> anyhow::Result<()> {
    for name in sinks {
        if let Some(row) = store.sink(name).await?
            && let Some(at) = row.disabled_at
        {
            eprintln!(
                "note: sink {name:?} is disabled since {at} ({}); the events wait until `sinks enable {name}`",
                row.disabled_reason.as_deref().unwrap_or("disabled")
            );
        }
    }
    Ok(())
}

/// The names of the configured `[[webhooks]]` sinks.
pub(super) fn configured(settings: &Settings) -> Vec<String> {
    settings.webhooks.iter().map(|w| w.name.clone()).collect()
}

/// The sinks a redelivery goes to: the one asked for, which must be
/// configured, or every configured one.
fn target_sinks(configured: &[String], requested: Option<String>) -> Result<Vec<String>, String> {
    let listed = || {
        if configured.is_empty() {
            "none".to_owned()
        } else {
            configured.join(", ")
        }
    };
    match requested {
        Some(name) if configured.contains(&name) => Ok(vec![name]),
        Some(name) => Err(format!(
            "no `[[webhooks]]` sink is named {name:?} (configured: {}); events are redelivered \
             only to configured sinks, which a worker sends to. If {name:?} was removed from the \
             configuration, give its deliveries up with `events discard --sink {name}`",
            listed()
        )),
        None if configured.is_empty() => {
            Err("no `[[webhooks]]` sink is configured: nothing to deliver to".to_owned())
        }
        None => Ok(configured.to_vec()),
    }
}

/// What became of one SEQ of a `redeliver` list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Scheduled,
    NoSuchEvent,
    Failed(String),
}

/// Each SEQ's outcome as lines for stdout, and, if any was not scheduled, the
/// error to exit with (naming every such SEQ and why).
fn report(sinks: &[String], outcomes: &[(i64, Outcome)]) -> (String, Option<String>) {
    let mut out = String::new();
    let mut missed = Vec::new();
    for (seq, outcome) in outcomes {
        let why = match outcome {
            Outcome::Scheduled => {
                let _ = writeln!(out, "seq {seq}: scheduled for {}", sinks.join(", "));
                continue;
            }
            Outcome::NoSuchEvent => "no such event in the outbox".to_owned(),
            Outcome::Failed(error) => error.clone(),
        };
        let _ = writeln!(out, "seq {seq}: NOT scheduled: {why}");
        missed.push(format!("seq {seq} ({why})"));
    }
    let scheduled = outcomes.len() - missed.len();
    if scheduled > 0 {
        let _ = writeln!(
            out,
            "{scheduled} of {} events scheduled for delivery again (the running daemon sends them within a second)",
            outcomes.len()
        );
    }
    let error = (!missed.is_empty()).then(|| {
        format!(
            "{} of {} events not scheduled: {}",
            missed.len(),
            outcomes.len(),
            missed.join(", ")
        )
    });
    (out, error)
}

pub(super) async fn redeliver(
    settings: &Settings,
    seqs: &[i64],
    sink: Option<String>,
) -> anyhow::Result<()> {
    let sinks = match target_sinks(&configured(settings), sink) {
        Ok(sinks) => sinks,
        Err(why) => bail!(why),
    };
    let store = open_store(settings, Access::Write).await?;
    let mut outcomes = Vec::with_capacity(seqs.len());
    for &seq in seqs {
        let outcome = match store.redeliver(&sinks, seq, Utc::now()).await {
            Ok(true) => Outcome::Scheduled,
            Ok(false) => Outcome::NoSuchEvent,
            Err(e) => Outcome::Failed(format!("{:#}", anyhow::Error::new(e))),
        };
        outcomes.push((seq, outcome));
    }
    note_disabled(&store, &sinks).await?;
    let (text, error) = report(&sinks, &outcomes);
    print_text(&text)?;
    match error {
        Some(error) => bail!(error),
        None => Ok(()),
    }
}

pub(super) async fn discard(settings: &Settings, sink: &str, seqs: &[i64]) -> anyhow::Result<()> {
    let store = open_store(settings, Access::Write).await?;
    if store.sink(sink).await?.is_none() {
        let known: Vec<String> = store.sinks().await?.into_iter().map(|s| s.name).collect();
        bail!(
            "no sink named {sink:?} in the database (known: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
    }
    if configured(settings).iter().any(|c| c == sink) {
        eprintln!(
            "note: sink {sink:?} is configured: its discarded deliveries will not be sent (`events redeliver` sends an event again)"
        );
    }
    let only = (!seqs.is_empty()).then_some(seqs);
    let discarded = store.discard(sink, only, Utc::now()).await?;
    print_text(&format!(
        "{discarded} undelivered deliveries to {sink} discarded{}: never attempted again, kept in the \
         database with `discarded_at` (`events redeliver SEQ... --sink NAME` sends an event again)\n",
        if only.is_some() {
            format!(" (of {} SEQs given)", seqs.len())
        } else {
            String::new()
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339_local_or_a_duration_ago() {
        let seoul = chrono_tz::Asia::Seoul;
        let now: DateTime<Utc> = "2026-12-05T10:00:00Z".parse().unwrap();
        let at = |t: &str| parse_time(t, seoul, now).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2026-12-05T09:00:00+09:00").unwrap(),
            "2026-12-05T00:00:00+00:00"
        );
        assert_eq!(at("2026-12-05 09:00").unwrap(), "2026-12-05T00:00:00+00:00");
        assert_eq!(
            at("2026-12-05T09:00:30").unwrap(),
            "2026-12-05T00:00:30+00:00"
        );
        assert_eq!(at("2026-12-05").unwrap(), "2026-12-04T15:00:00+00:00");
        assert_eq!(at("2h").unwrap(), "2026-12-05T08:00:00+00:00");
        assert!(at("yesterday").unwrap_err().contains("RFC 3339"));
        let range = Range {
            since: "1h".into(),
            until: Some("2h".into()),
            event_type: None,
        };
        assert!(
            range
                .resolve(seoul, now)
                .unwrap_err()
                .contains("must be after")
        );
        let range = Range {
            since: "1h".into(),
            until: None,
            event_type: Some("issuance.paid".into()),
        };
        assert!(
            range
                .resolve(seoul, now)
                .unwrap_err()
                .starts_with("--type: unknown event type")
        );
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_redelivery_goes_only_to_configured_sinks() {
        let configured = names(&["shop", "erp"]);
        assert_eq!(target_sinks(&configured, None), Ok(configured.clone()));
        assert_eq!(
            target_sinks(&configured, Some("erp".into())),
            Ok(names(&["erp"]))
        );
        let removed = target_sinks(&configured, Some("old".into())).unwrap_err();
        assert!(
            removed.contains("configured: shop, erp")
                && removed.contains("events discard --sink old"),
            "{removed}"
        );
        assert!(
            target_sinks(&[], None)
                .unwrap_err()
                .contains("no `[[webhooks]]`")
        );
    }

    #[test]
    fn each_seq_has_its_outcome_and_any_miss_is_an_error_naming_it() {
        let sinks = names(&["shop"]);
        let (text, error) = report(
            &sinks,
            &[
                (3, Outcome::Scheduled),
                (99, Outcome::NoSuchEvent),
                (4, Outcome::Failed("database is locked".into())),
                (5, Outcome::Scheduled),
            ],
        );
        assert_eq!(
            text,
            "\
seq 3: scheduled for shop
seq 99: NOT scheduled: no such event in the outbox
seq 4: NOT scheduled: database is locked
seq 5: scheduled for shop
2 of 4 events scheduled for delivery again (the running daemon sends them within a second)
"
        );
        assert_eq!(
            error.as_deref(),
            Some(
                "2 of 4 events not scheduled: seq 99 (no such event in the outbox), seq 4 (database is locked)"
            )
        );
        let (_, error) = report(&sinks, &[(3, Outcome::Scheduled)]);
        assert_eq!(error, None);
    }
}
