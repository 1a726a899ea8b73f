//! `top-up [--json]`: the top-up rule's state (on, off or suspended and why,
//! today's and this month's use against the caps, the open charge, the last
//! decision), read from the database; `top-up resume`: a person clears a
//! suspension after checking what caused it.

use chrono::Utc;
use serde::Serialize;

use super::output::{print_json, print_text};
use crate::app::open_store;
use crate::settings::{Settings, TopUpSettings};
use crate::store::{Access, OpenCharge, TopUpState};
use crate::watcher::top_up::windows;

#[derive(Debug, clap::Args)]
pub struct TopUpArgs {
    #[command(subcommand)]
    pub action: Option<TopUpAction>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum TopUpAction {
    /// Let a suspended rule ask for charges again (after checking the partner
    /// console and resolving any request of unknown outcome).
    Resume,
}

/// What `top-up --json` prints.
#[derive(Debug, Serialize)]
struct Shown<'a> {
    /// `off`, `on` or `suspended`.
    rule: &'static str,
    settings: &'a TopUpSettings,
    state: &'a TopUpState,
    /// What stands in the way of a new charge, if anything.
    open_charge: Option<String>,
}

pub(super) async fn run(settings: &Settings, args: TopUpArgs) -> anyhow::Result<()> {
    if let Some(TopUpAction::Resume) = args.action {
        let store = open_store(settings, Access::Write).await?;
        let by = format!("cli:{}", super::output::user_at_host());
        let resumed = store.resume_top_up(&by, Utc::now()).await?;
        return print_text(if resumed {
            "the top-up rule is resumed: it may ask for a charge after the next balance poll\n"
        } else {
            "the top-up rule was not suspended: nothing to resume\n"
        });
    }
    let store = open_store(settings, Access::Read).await?;
    let (day, month) = windows(Utc::now(), settings.api.timezone);
    let state = store.top_up_state(day, month).await?;
    let open = store
        .open_charge(i64::MAX, settings.charge.max_amount)
        .await?;
    let rule = &settings.top_up;
    let shown = Shown {
        rule: match (rule.enabled(), state.suspended_at.is_some()) {
            (_, true) => "suspended",
            (true, false) => "on",
            (false, false) => "off",
        },
        settings: rule,
        state: &state,
        open_charge: open.as_ref().map(describe),
    };
    if args.json {
        return print_json(&shown);
    }
    let mut text = String::new();
    match shown.rule {
        "suspended" => text.push_str(&format!(
            "top-up rule: SUSPENDED since {}: {}\n  after checking, run `issuance-watcher top-up resume`\n",
            state.suspended_at.as_deref().unwrap_or("-"),
            state.suspended_reason.as_deref().unwrap_or("-")
        )),
        "on" => text.push_str("top-up rule: on\n"),
        _ => text.push_str("top-up rule: off (top_up.below = 0)\n"),
    }
    if rule.enabled() {
        text.push_str(&format!("  {}\n", rule.describe(settings.balance.interval)));
    }
    text.push_str(&format!(
        "today (KST):      {} of {} charges\nthis month (KST): {} of {} KRW\nopen charge:      {}\nlast decision:    {}{}\n",
        state.day_count,
        rule.max_per_day,
        state.month_sum,
        rule.max_per_month,
        shown.open_charge.as_deref().unwrap_or("none"),
        state.last_decision.as_deref().unwrap_or("none yet"),
        state
            .last_decided_at
            .as_deref()
            .map_or_else(String::new, |at| format!(" (at {at})")),
    ));
    print_text(&text)
}

fn describe(open: &OpenCharge) -> String {
    match open {
        OpenCharge::Unknown { id, amount, since } => format!(
            "charge request {id} ({amount} KRW) of UNKNOWN outcome since {since}: `issuance-watcher charges resolve {id}`"
        ),
        OpenCharge::Issuance { id, status } => format!("issuance {id} ({status})"),
        OpenCharge::Request { id, state } => format!("charge request {id} ({state})"),
    }
}
