//! `events`: the outbox for scripts and operators. Prints events after a
//! cursor (and follows new ones), lists failing deliveries, and schedules
//! events to be delivered again.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::output::{print_table, print_text};
use crate::app::open_store;
use crate::settings::Settings;
use crate::store::{Access, EventRow};

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
    /// Instead: deliveries that failed at least once and are not delivered
    /// (still retrying, or given up after the retry horizon).
    #[arg(long, conflicts_with = "follow")]
    pub failed: bool,
    /// At most this many rows (without --follow).
    #[arg(long, default_value_t = 1000, value_parser = super::limit)]
    pub limit: i64,
}

#[derive(Debug, clap::Subcommand)]
pub enum EventsAction {
    /// Deliver events again (as new: attempts and the retry horizon start over),
    /// to every configured sink or to one.
    Redeliver {
        /// Sequence numbers of the events.
        #[arg(required = true, value_name = "SEQ")]
        seqs: Vec<i64>,
        /// Only to this sink (its `name`; default: every `[[webhooks]]` sink).
        #[arg(long)]
        sink: Option<String>,
    },
}

pub(super) async fn run(
    settings: &Settings,
    args: EventsArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if let Some(EventsAction::Redeliver { seqs, sink }) = args.action {
        return redeliver(settings, &seqs, sink).await;
    }
    let access = if args.follow {
        Access::ReadLive
    } else {
        Access::Read
    };
    let store = open_store(settings, access).await?;
    if args.failed {
        let rows = store.failed_deliveries(args.limit).await?;
        let header = format!(
            "{:>8} {:<16} {:<24} {:<20} {:>8} {:<24} LAST PROBLEM",
            "SEQ", "SINK", "TYPE", "ISSUANCE", "ATTEMPTS", "NEXT ATTEMPT / GAVE UP"
        );
        return print_table(&rows, args.json, &header, |r| {
            let next = match &r.failed_at {
                Some(at) => format!("gave up {at}"),
                None => r.next_attempt_at.clone(),
            };
            format!(
                "{:>8} {:<16} {:<24} {:<20} {:>8} {:<24} {}",
                r.seq,
                r.sink,
                r.event_type,
                r.issuance_id,
                r.attempts,
                next,
                r.last_error.as_deref().unwrap_or("")
            )
        });
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
            event.issuance_id,
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
        _ => String::new(),
    }
}

async fn redeliver(settings: &Settings, seqs: &[i64], sink: Option<String>) -> anyhow::Result<()> {
    let configured: Vec<String> = settings.webhooks.iter().map(|w| w.name()).collect();
    let sinks = match sink {
        Some(name) if configured.contains(&name) => vec![name],
        Some(name) => bail!(
            "no `[[webhooks]]` sink is named {name:?} (configured: {})",
            if configured.is_empty() {
                "none".to_owned()
            } else {
                configured.join(", ")
            }
        ),
        None if configured.is_empty() => {
            bail!("no `[[webhooks]]` sink is configured: nothing to deliver to")
        }
        None => configured,
    };
    let store = open_store(settings, Access::Write).await?;
    let found = store
        .redeliver(&sinks, seqs, chrono::Utc::now())
        .await
        .context("while scheduling redeliveries")?;
    let missing: Vec<String> = seqs
        .iter()
        .filter(|s| !found.contains(s))
        .map(i64::to_string)
        .collect();
    if found.is_empty() {
        bail!("no event with seq {} in the outbox", missing.join(", "));
    }
    for name in &sinks {
        if let Some(row) = store.sink(name).await?
            && let Some(at) = row.disabled_at
        {
            eprintln!(
                "note: sink {name:?} is disabled since {at} ({}); the events wait until `disabled_at` is cleared",
                row.disabled_reason.as_deref().unwrap_or("disabled")
            );
        }
    }
    if !missing.is_empty() {
        eprintln!("note: no event with seq {}", missing.join(", "));
    }
    print_text(&format!(
        "{} events scheduled for delivery again to {} (the running daemon sends them within a second)\n",
        found.len(),
        sinks.join(", ")
    ))
}
