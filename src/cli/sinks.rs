//! `issuance-watcher sinks [--json]`: each webhook sink with its health and
//! backlog, as `status` judges them (`attention::sink_views`, over
//! `store.sink_backlogs`), plus its last successful delivery and the attempts
//! made at its open deliveries; `sinks disable NAME [--reason TEXT]` and
//! `sinks enable NAME` switch one by writing its `sinks` row. A running
//! daemon's worker re-reads a disabled sink's row every 5 s, so enabling takes
//! effect without a restart, and survives one (it is the row).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::attention::{SinkView, sink_views};
use super::output::{ago_text, left, print_table, print_text, right, user_at_host};
use crate::app::open_store;
use crate::domain::SinkHealth;
use crate::domain::timefmt::{from_db, to_db};
use crate::settings::Settings;
use crate::store::{Access, SinkActivity, Store};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SinksArgs {
    #[command(subcommand)]
    pub action: Option<SinksAction>,
    /// Print JSON (an array of sinks, the same facts) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum SinksAction {
    /// Stop sending to sink NAME: its events wait (they are still recorded)
    /// until `sinks enable NAME`. A running daemon stops within seconds.
    Disable {
        /// The sink's name (`[[webhooks]] name`).
        name: String,
        /// Why, recorded with who disabled it (`sinks`, `status` show it).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Send to sink NAME again (disabled by hand or by a 410 Gone): its
    /// backlog goes out at once; a running daemon resumes within seconds.
    Enable {
        /// The sink's name (`[[webhooks]] name`).
        name: String,
    },
}

/// One sink as `sinks --json` prints it: what `status` shows of it, and more.
#[derive(Debug, Serialize)]
struct SinkListing {
    #[serde(flatten)]
    view: SinkView,
    /// When its latest delivery was made (`null`: never).
    last_success: Option<String>,
    /// Attempts made so far at its undelivered deliveries.
    attempts: i64,
}

pub(super) async fn run(settings: &Settings, args: SinksArgs) -> anyhow::Result<()> {
    match args.action {
        None => list(settings, args.json).await,
        Some(SinksAction::Disable { name, reason }) => {
            disable(settings, &name, reason.as_deref()).await
        }
        Some(SinksAction::Enable { name }) => enable(settings, &name).await,
    }
}

fn configured(settings: &Settings) -> Vec<String> {
    settings.webhooks.iter().map(|w| w.name.clone()).collect()
}

async fn list(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let store = open_store(settings, Access::Read).await?;
    let now = Utc::now();
    let configured = configured(settings);
    let stored = store.sink_backlogs(&configured).await?;
    let mut rows = Vec::new();
    for view in sink_views(&configured, stored, now) {
        let activity = if view.judged == SinkHealth::NotStarted {
            SinkActivity::default()
        } else {
            store.sink_activity(&view.name).await?
        };
        rows.push(SinkListing {
            view,
            last_success: activity.last_delivered_at,
            attempts: activity.open_attempts,
        });
    }
    if !json && rows.is_empty() {
        return print_text("no webhook sinks: none configured ([[webhooks]]) or known\n");
    }
    print_table(
        &rows,
        json,
        &[
            left("NAME"),
            left("HEALTH"),
            right("BACKLOG"),
            right("OLDEST"),
            left("LAST PROBLEM"),
        ],
        |r| cells(r, now),
    )
}

/// One sink's row of the table.
fn cells(r: &SinkListing, now: DateTime<Utc>) -> Vec<String> {
    let v = &r.view;
    vec![
        v.name.clone(),
        health_text(&v.judged, now),
        v.backlog.to_string(),
        v.oldest_undelivered_seconds
            .map_or_else(|| "-".to_owned(), ago_text),
        v.last_problem.clone().unwrap_or_else(|| "-".to_owned()),
    ]
}

/// `ok`, `failing since … (… ago)`, `disabled since …: reason`, `removed`, `not started`.
fn health_text(health: &SinkHealth, now: DateTime<Utc>) -> String {
    let ago = |at: &str| {
        from_db(at)
            .map(|t| format!(" ({} ago)", ago_text((now - t).num_seconds())))
            .unwrap_or_default()
    };
    match health {
        SinkHealth::Ok => "ok".to_owned(),
        SinkHealth::Failing { since } => format!("failing since {since}{}", ago(since)),
        SinkHealth::Disabled { since, reason } => {
            format!("disabled since {since}{}: {reason}", ago(since))
        }
        SinkHealth::Removed => "removed".to_owned(),
        SinkHealth::NotStarted => "not started".to_owned(),
    }
}

/// Refuses a name neither configured nor in the database, naming those that are.
async fn known(settings: &Settings, store: &Store, name: &str) -> anyhow::Result<()> {
    let mut names = configured(settings);
    for s in store.sinks().await? {
        if !names.contains(&s.name) {
            names.push(s.name);
        }
    }
    if names.iter().any(|n| n == name) {
        return Ok(());
    }
    if names.is_empty() {
        anyhow::bail!(
            "no webhook sink named `{name}`: there are none (no [[webhooks]] configured)"
        );
    }
    anyhow::bail!(
        "no webhook sink named `{name}`; known sinks: {}",
        names.join(", ")
    )
}

/// What `disable` records: who, and why if they said.
fn hand_reason(reason: Option<&str>) -> String {
    let who = format!("disabled by hand by {}", user_at_host());
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(why) => format!("{who}: {why}"),
        None => who,
    }
}

async fn disable(settings: &Settings, name: &str, reason: Option<&str>) -> anyhow::Result<()> {
    let store = open_store(settings, Access::Write).await?;
    known(settings, &store, name).await?;
    let reason = hand_reason(reason);
    let now = Utc::now();
    let before = store.disable_sink_by_hand(name, now, &reason).await?;
    store.close().await;
    match (before.disabled_at, before.disabled_reason) {
        (Some(since), why) => print_text(&format!(
            "sink `{name}` was already disabled since {since} ({}): left as it was\n",
            why.as_deref().unwrap_or("disabled")
        )),
        (None, _) => print_text(&format!(
            "sink `{name}` disabled at {} ({reason}): nothing is sent to it, its events wait; \
             `issuance-watcher sinks enable {name}` resumes\n",
            to_db(now)
        )),
    }
}

async fn enable(settings: &Settings, name: &str) -> anyhow::Result<()> {
    let store = open_store(settings, Access::Write).await?;
    known(settings, &store, name).await?;
    let before = store.enable_sink(name, Utc::now()).await?;
    let backlog = store.sink_backlog(name).await?.pending;
    store.close().await;
    match before.and_then(|r| r.disabled_at.map(|at| (at, r.disabled_reason))) {
        Some((since, why)) => print_text(&format!(
            "sink `{name}` enabled (it was disabled since {since}: {}); {backlog} event(s) \
             waiting go out now (a running daemon resumes within seconds)\n",
            why.as_deref().unwrap_or("disabled")
        )),
        None => print_text(&format!("sink `{name}` is not disabled: nothing to do\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_reads_as_the_table_shows_it() {
        let now = from_db("2026-12-05T10:02:00.000Z").unwrap();
        let since = "2026-12-05T10:00:00.000Z".to_owned();
        assert_eq!(health_text(&SinkHealth::Ok, now), "ok");
        assert_eq!(
            health_text(
                &SinkHealth::Failing {
                    since: since.clone()
                },
                now
            ),
            "failing since 2026-12-05T10:00:00.000Z (2 min ago)"
        );
        assert_eq!(
            health_text(
                &SinkHealth::Disabled {
                    since,
                    reason: "the receiver answered 410 Gone".into()
                },
                now
            ),
            "disabled since 2026-12-05T10:00:00.000Z (2 min ago): the receiver answered 410 Gone"
        );
        assert_eq!(health_text(&SinkHealth::NotStarted, now), "not started");
        assert_eq!(health_text(&SinkHealth::Removed, now), "removed");
    }

    #[test]
    fn a_hand_disable_records_who_and_why() {
        let who = user_at_host();
        assert_eq!(
            hand_reason(Some(" maintenance ")),
            format!("disabled by hand by {who}: maintenance")
        );
        assert_eq!(hand_reason(Some("")), format!("disabled by hand by {who}"));
        assert_eq!(hand_reason(None), format!("disabled by hand by {who}"));
    }
}
