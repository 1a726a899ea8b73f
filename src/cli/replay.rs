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
//! - `discard` deletes nothing: it closes the deliveries (`failed_at`) and
//!   marks them `discarded_at`, so the record of what was never delivered
//!   stays, and `redeliver` can still open any of them again.

use std::fmt::Write as _;

use anyhow::bail;
use chrono::Utc;

use super::output::print_text;
use crate::app::open_store;
use crate::settings::Settings;
use crate::store::Access;

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
    for name in &sinks {
        if let Some(row) = store.sink(name).await?
            && let Some(at) = row.disabled_at
        {
            eprintln!(
                "note: sink {name:?} is disabled since {at} ({}); the events wait until `sinks enable {name}`",
                row.disabled_reason.as_deref().unwrap_or("disabled")
            );
        }
    }
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
