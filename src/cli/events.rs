//! `events`: the outbox for scripts and operators. Prints events after a
//! cursor (and follows new ones) and lists the deliveries that need a person,
//! each saying what it really waits for (retrying, given up, sink disabled,
//! sink removed); `redeliver` and `discard` act on them (`replay.rs`);
//! `ping` sends a `webhook.test` message to the sinks, outside the outbox.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::output::{left, print_table, print_text, render_table, right};
use super::replay;
use crate::app::open_store;
use crate::deliver::{self, Answer, Sinks};
use crate::domain::DeliveryState;
use crate::settings::Settings;
use crate::store::{Access, EventRow, FailedDelivery};

/// How often `--follow` looks for new events.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub action: Option<EventsAction>,
    /// Only events after this sequence number (the consumer's cursor).
    #[arg(long, default_value_t = 0, value_name = "SEQ")]
    pub after: i64,
    /// Keep printing events as they are written (until interrupted).
    #[arg(long)]
    pub follow: bool,
    /// One JSON object per line (seq, id, type, issuance_id, occurred_at, data).
    #[arg(long)]
    pub json: bool,
    /// Instead: undelivered deliveries that failed at least once or whose sink
    /// was removed from the configuration, each with what it waits for
    /// (retrying, given up, sink disabled, sink removed).
    #[arg(long, conflicts_with = "follow")]
    pub failed: bool,
    /// At most this many rows (without --follow).
    #[arg(long, default_value_t = 1000, value_parser = super::limit)]
    pub limit: i64,
}

#[derive(Debug, clap::Subcommand)]
pub enum EventsAction {
    /// Deliver events again (as new: attempts and the retry horizon start over),
    /// to every configured sink or to one: the SEQs given, or every event that
    /// occurred in a time range (`--since`, `--until`, `--type`).
    /// Each SEQ's outcome is printed; the exit code is non-zero if any was not
    /// scheduled.
    Redeliver {
        /// Sequence numbers of the events.
        #[arg(
            value_name = "SEQ",
            required_unless_present = "since",
            conflicts_with = "since"
        )]
        seqs: Vec<i64>,
        /// Only to this sink (a configured `name`; default: every `[[webhooks]]` sink).
        #[arg(long)]
        sink: Option<String>,
        /// Every event that occurred at or after this time: RFC 3339
        /// (`2026-12-05T09:00:00+09:00`), a local time in `api.timezone`
        /// (`2026-12-05 09:00`), or a duration ago (`2h`).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// ... and before this time (same forms; default: now).
        #[arg(long, value_name = "TIME", requires = "since")]
        until: Option<String>,
        /// ... of this event type only (e.g. `issuance.status_changed`).
        #[arg(long = "type", value_name = "TYPE", requires = "since")]
        event_type: Option<String>,
        /// Say how many events the range holds, and for which sinks; schedule nothing.
        #[arg(long, requires = "since")]
        dry_run: bool,
    },
    /// Print one event and, per sink, its delivery attempts (time, status or
    /// error, duration, the start of the receiver's answer, escaped), as kept
    /// for the sink's `attempts_retention`.
    Show {
        /// The event's sequence number.
        #[arg(value_name = "SEQ")]
        seq: i64,
        /// One JSON object: the event and its attempts.
        #[arg(long)]
        json: bool,
    },
    /// Give up a sink's undelivered deliveries by hand: never attempted again,
    /// no longer listed by `--failed` or counted by `status` (kept in the
    /// database with `discarded_at`). For a sink removed from the
    /// configuration, whose deliveries no worker will ever attempt.
    Discard {
        /// The sink (its `name`, as `events --failed` shows it).
        #[arg(long, required = true)]
        sink: String,
        /// Only these events (default: every undelivered one of the sink).
        #[arg(value_name = "SEQ")]
        seqs: Vec<i64>,
    },
    /// Send a `webhook.test` message once to every configured sink, or to one,
    /// signed as any event is (Slack sinks: a sentence), and print each
    /// receiver's answer and how long it took. Outside the outbox: nothing is
    /// written, no daemon or database needed. Exit code 1 if any sink did not
    /// answer with a 2xx.
    Ping {
        /// Only this sink (a configured `name`; default: every `[[webhooks]]` sink).
        #[arg(long)]
        sink: Option<String>,
    },
}

pub(super) async fn run(
    settings: &Settings,
    args: EventsArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    match args.action {
        Some(EventsAction::Redeliver {
            seqs: _,
            sink,
            since: Some(since),
            until,
            event_type,
            dry_run,
        }) => {
            let range = replay::Range {
                since,
                until,
                event_type,
            };
            return replay::redeliver_range(settings, &range, sink, dry_run).await;
        }
        Some(EventsAction::Redeliver { seqs, sink, .. }) => {
            return replay::redeliver(settings, &seqs, sink).await;
        }
        Some(EventsAction::Show { seq, json }) => {
            return super::show::show(settings, seq, json).await;
        }
        Some(EventsAction::Discard { sink, seqs }) => {
            return replay::discard(settings, &sink, &seqs).await;
        }
        Some(EventsAction::Ping { sink }) => return ping(settings, sink.as_deref()).await,
        None => {}
    }
    let access = if args.follow {
        Access::ReadLive
    } else {
        Access::Read
    };
    let store = open_store(settings, access).await?;
    if args.failed {
        let configured = replay::configured(settings);
        let rows = store.failed_deliveries(&configured, args.limit).await?;
        let columns = [
            right("SEQ"),
            left("SINK"),
            left("TYPE"),
            left("ISSUANCE"),
            right("ATTEMPTS"),
            left("STATE"),
            left("LAST PROBLEM"),
        ];
        print_table(&rows, args.json, &columns, |r| {
            vec![
                r.seq.to_string(),
                r.sink.clone(),
                r.event_type.clone(),
                r.issuance_id.clone().unwrap_or_else(|| "-".into()),
                r.attempts.to_string(),
                state_text(r),
                r.last_error.clone().unwrap_or_default(),
            ]
        })?;
        if !args.json
            && let Some(note) = removed_note(&rows)
        {
            eprintln!("{note}");
        }
        return Ok(());
    }
    let mut after = args.after;
    if !args.json {
        print_text(&format!(
            "{:>8}  {:<24}  {:<24}  {:<20}  WHAT\n",
            "SEQ", "OCCURRED (UTC)", "TYPE", "ISSUANCE"
        ))?;
    }
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let events = store.events_after(after, args.limit).await?;
        for event in &events {
            print_event(event, args.json)?;
            after = event.seq;
        }
        if !args.follow {
            return Ok(());
        }
        if events.len() as i64 == args.limit {
            continue;
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(FOLLOW_EVERY) => {}
        }
    }
}

/// `events ping`: the sinks built as the daemon builds them (secret files
/// read), the test message sent, one line per sink.
async fn ping(settings: &Settings, only: Option<&str>) -> anyhow::Result<()> {
    let sinks = Sinks::from_settings(settings).context("while building the webhook sinks")?;
    let pinged = deliver::ping(&sinks, only)
        .await
        .map_err(anyhow::Error::msg)?;
    let columns = [left("SINK"), left("URL"), left("ANSWER"), right("TIME")];
    let rows = pinged.iter().map(|p| {
        vec![
            p.sink.clone(),
            p.shown_url.clone(),
            answer_text(&p.answer),
            format!("{} ms", p.took.as_millis()),
        ]
    });
    print_text(&render_table(&columns, rows))?;
    let failed: Vec<&str> = pinged
        .iter()
        .filter(|p| !p.ok())
        .map(|p| p.sink.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "the test message was not accepted (no 2xx) by {}",
            failed.join(", ")
        );
    }
    Ok(())
}

/// A ping's answer in a few words: `HTTP 204`, or why there was none.
fn answer_text(answer: &Answer) -> String {
    match answer {
        Answer::Status { code, .. } if (200..300).contains(code) => format!("HTTP {code}"),
        other => other.problem().unwrap_or_default(),
    }
}

fn print_event(event: &EventRow, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, event)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{:>8}  {:<24}  {:<24}  {:<20}  {}",
            event.seq,
            event.occurred_at,
            event.event_type,
            event.issuance_id.as_deref().unwrap_or("-"),
            summary(event)
        )?;
    }
    out.flush()?;
    Ok(())
}

/// The gist of an event's data in a few words.
fn summary(event: &EventRow) -> String {
    let d = &event.data;
    let text = |key: &str| d[key].as_str().unwrap_or("-").to_owned();
    match event.event_type.as_str() {
        "issuance.status_changed" => {
            let anomaly = d["anomaly"]
                .as_str()
                .map(|a| format!("  [{a}]"))
                .unwrap_or_default();
            format!("{} -> {}{anomaly}", text("from_status"), text("to_status"))
        }
        "issuance.due_soon" => format!("due within {} (due {})", text("lead"), text("due_at")),
        "issuance.overdue" => format!("past due {}", text("due_at")),
        "issuance.watch_ended" => format!("{}: {}", text("reason"), text("detail")),
        "charge.created" => format!(
            "request {}: {} KRW, account {} {} due {}",
            d["request_id"],
            d["amount"],
            d["vbank"]["bank_name"].as_str().unwrap_or("-"),
            d["vbank"]["account_number"].as_str().unwrap_or("-"),
            d["vbank"]["due_at"].as_str().unwrap_or("-")
        ),
        "charge.refused" => format!(
            "request {}: {} KRW refused: {} {}",
            d["request_id"],
            d["amount"],
            d["http_status"],
            text("code")
        ),
        "charge.unknown" => format!(
            "request {}: {} KRW UNKNOWN ({}): check the partner console, then charges resolve",
            d["request_id"],
            d["amount"],
            text("code")
        ),
        "top_up.suspended" => format!("top-up rule suspended: {}", text("reason")),
        _ => String::new(),
    }
}

/// What a failed delivery waits for, in a few words (the `STATE` column).
fn state_text(r: &FailedDelivery) -> String {
    let at = |t: &Option<String>| t.clone().unwrap_or_else(|| "-".to_owned());
    match r.state {
        DeliveryState::Retrying => format!("retrying, next {}", at(&r.next_attempt_at)),
        DeliveryState::GivenUp => format!("given up {}", at(&r.failed_at)),
        DeliveryState::SinkDisabled => {
            format!("sink disabled since {}", at(&r.sink_disabled_at))
        }
        DeliveryState::SinkRemoved => "sink removed (never attempted)".to_owned(),
    }
}

/// The way out for deliveries of removed sinks, if the list has any.
fn removed_note(rows: &[FailedDelivery]) -> Option<String> {
    let mut removed: Vec<&str> = rows
        .iter()
        .filter(|r| r.state == DeliveryState::SinkRemoved)
        .map(|r| r.sink.as_str())
        .collect();
    removed.sort_unstable();
    removed.dedup();
    let first = *removed.first()?;
    Some(format!(
        "note: {} not in the configuration: nothing will ever send these. \
         Give them up with `events discard --sink {first}`, or send the events to a configured \
         sink with `events redeliver SEQ... --sink NAME` first.",
        match removed.as_slice() {
            [one] => format!("sink {one:?} is"),
            many => format!("sinks {} are", many.join(", ")),
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sink: &str, state: DeliveryState) -> FailedDelivery {
        FailedDelivery {
            sink: sink.into(),
            seq: 7,
            id: "evt_1".into(),
            event_type: "balance.low".into(),
            issuance_id: None,
            occurred_at: "2026-12-05T10:00:00.000Z".into(),
            state,
            attempts: 3,
            last_status: Some(503),
            last_error: Some("HTTP 503".into()),
            last_attempt_at: Some("2026-12-05T10:01:00.000Z".into()),
            next_attempt_at: (state == DeliveryState::Retrying)
                .then(|| "2026-12-05T10:02:00.000Z".into()),
            failed_at: (state == DeliveryState::GivenUp).then(|| "2026-12-08T10:00:00.000Z".into()),
            sink_disabled_at: (state == DeliveryState::SinkDisabled)
                .then(|| "2026-12-05T10:00:30.000Z".into()),
        }
    }

    #[test]
    fn each_state_says_what_the_delivery_waits_for_and_only_retrying_shows_a_next_attempt() {
        let texts: Vec<String> = [
            DeliveryState::Retrying,
            DeliveryState::GivenUp,
            DeliveryState::SinkDisabled,
            DeliveryState::SinkRemoved,
        ]
        .into_iter()
        .map(|s| state_text(&row("shop", s)))
        .collect();
        assert_eq!(
            texts,
            [
                "retrying, next 2026-12-05T10:02:00.000Z",
                "given up 2026-12-08T10:00:00.000Z",
                "sink disabled since 2026-12-05T10:00:30.000Z",
                "sink removed (never attempted)",
            ]
        );
        let json = serde_json::to_value(row("old", DeliveryState::SinkRemoved)).unwrap();
        assert_eq!(json["state"], "sink_removed");
        assert_eq!(json["next_attempt_at"], serde_json::Value::Null);
        assert_eq!(json["issuance_id"], serde_json::Value::Null);
    }

    #[test]
    fn removed_sinks_are_named_with_their_way_out() {
        assert_eq!(removed_note(&[row("shop", DeliveryState::Retrying)]), None);
        let note = removed_note(&[
            row("old", DeliveryState::SinkRemoved),
            row("old", DeliveryState::SinkRemoved),
            row("shop", DeliveryState::GivenUp),
        ])
        .unwrap();
        assert!(
            note.contains("sink \"old\" is not in the configuration"),
            "{note}"
        );
        assert!(note.contains("events discard --sink old"), "{note}");
    }
}
