//! `issuance-watcher status [--json]`: one screen for a person on the host.
//! Everything comes from the database and the owner locks beside it (see
//! `store::status`), so it needs neither the HTTP listener nor the daemon's
//! cooperation: whether a daemon is alive, what is watched, the open flags with
//! their deadlines, the last successful poll and the errors of the last hour,
//! each webhook sink's health and backlog, and, first of all, what needs a
//! person (`attention.rs`): charges of unknown outcome, sinks not delivering.
//!
//! It opens the database read-only ([`Access::Read`]): it never creates one (a
//! missing file is an error that names the path: a typo in `database.path` must
//! not pass for an empty, healthy watcher) and never upgrades its schema.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::attention::{SinkView, attention, held_by, sink_line, sink_views};
use super::output::{FLAG_COLUMNS, ago_text, flag_cells, print_json, print_text, render_table};
use crate::app::open_store;
use crate::domain::money::krw;
use crate::domain::timefmt::{db_local, from_db, time_left};
use crate::settings::Settings;
use crate::store::{
    Access, Daemons, ErrorCount, FlagRow, IssuanceRow, SinkBacklog, StatusFacts, UnknownCharges,
};

/// How far back "recent errors" reach.
const ERRORS_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(1);
/// Open charges listed at most (an account has one or two).
const OPEN_CHARGES_SHOWN: i64 = 5;

/// What `status` shows; `--json` prints exactly this.
#[derive(Debug, Serialize)]
pub(super) struct StatusView {
    pub database: String,
    /// When this was read (UTC).
    pub now: String,
    /// What needs a person, most urgent first (the text's first section).
    pub attention: Vec<String>,
    /// The charges waiting to be paid (WAITED or READY), soonest deadline
    /// first: what a payer must transfer, where and by when (the text's
    /// second section, before everything an operator reads).
    pub open_charges: Vec<OpenCharge>,
    pub daemon: DaemonView,
    pub active: ActiveView,
    pub last_successful_poll: LastPollView,
    pub errors_last_hour: ErrorsView,
    /// Open DUE_SOON / OVERDUE flags, soonest deadline first.
    pub flags: Vec<FlagRow>,
    /// Each webhook sink: health, backlog, oldest undelivered event.
    pub webhooks: Vec<SinkView>,
    pub charge_requests: ChargesView,
}

/// One charge waiting to be paid.
#[derive(Debug, Serialize)]
pub(super) struct OpenCharge {
    pub issuance_id: String,
    pub status: Option<String>,
    pub amount: Option<i64>,
    pub bank: Option<String>,
    pub account_number: Option<String>,
    pub holder: Option<String>,
    /// The deposit deadline (UTC, as stored).
    pub due_at: Option<String>,
}

impl From<IssuanceRow> for OpenCharge {
    fn from(row: IssuanceRow) -> Self {
        Self {
            issuance_id: row.id,
            status: row.status,
            amount: row.amount,
            bank: row.bank_name,
            account_number: row.vbank_account_number,
            holder: row.vbank_holder_name,
            due_at: row.vbank_due_at,
        }
    }
}

/// One line a payer can act on: the amount, the account and the deadline in
/// `zone` with the time left; a charge without its account yet says so.
pub(super) fn open_charge_line(c: &OpenCharge, now: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    let amount = c.amount.map_or_else(|| "amount unknown".to_owned(), krw);
    let account = match (&c.bank, &c.account_number) {
        (Some(bank), Some(number)) => {
            let holder = c
                .holder
                .as_deref()
                .map_or_else(String::new, |h| format!(" ({h})"));
            format!("to {bank} {number}{holder}")
        }
        _ => format!(
            "{}: the account follows when it is READY",
            c.status.as_deref().unwrap_or("not seen yet")
        ),
    };
    let due = c.due_at.as_deref().map_or_else(String::new, |due| {
        format!(
            " by {} ({})",
            db_local(due, zone),
            time_left(Some(due), now)
        )
    });
    format!("{}  {amount} {account}{due}", c.issuance_id)
}

#[derive(Debug, Serialize)]
pub(super) struct ChargesView {
    /// Requests whose outcome is unknown (`state = 'unknown'`) and not yet
    /// resolved by a person: a charge may exist.
    pub unknown: UnknownCharges,
}

#[derive(Debug, Serialize)]
pub(super) struct DaemonView {
    /// A daemon holds its owner lock on this database now.
    pub alive: bool,
    #[serde(flatten)]
    pub daemons: Daemons,
}

#[derive(Debug, Serialize)]
pub(super) struct ActiveView {
    pub total: i64,
    /// `[status, count]` pairs, `UNSEEN` for not answered yet.
    pub by_status: Vec<(String, i64)>,
}

#[derive(Debug, Serialize)]
pub(super) struct LastPollView {
    pub at: Option<String>,
    pub seconds_ago: Option<i64>,
}

#[derive(Debug, Serialize)]
pub(super) struct ErrorsView {
    /// Active issuances whose last poll, within the hour, failed.
    pub issuances: i64,
    pub by_error: Vec<ErrorCount>,
}

pub(super) async fn status(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let path = &settings.database.path;
    let store = open_store(settings, Access::Read).await?;
    let now = Utc::now();
    let facts = store.status_facts(now - ERRORS_WINDOW).await?;
    let flags = store.flags(None).await?;
    let open_charges = store.open_charges(OPEN_CHARGES_SHOWN).await?;
    let configured: Vec<String> = settings.webhooks.iter().map(|w| w.name.clone()).collect();
    let sinks = store.sink_backlogs(&configured).await?;
    let holders = store.sink_holders().await?;
    let mut view = view(
        path.display().to_string(),
        facts,
        flags,
        (&configured, sinks),
        now,
    );
    view.open_charges = open_charges.into_iter().map(OpenCharge::from).collect();
    for sink in &mut view.webhooks {
        let holder = holders.iter().find(|h| h.sink == sink.name);
        sink.held_by = held_by(holder, &view.daemon.daemons.live);
    }
    let (day, month) = crate::watcher::top_up::windows(now, settings.api.timezone);
    let top_up = store.top_up_state(day, month).await?;
    if let (Some(at), Some(why)) = (top_up.suspended_at, top_up.suspended_reason) {
        view.attention.push(format!(
            "the top-up rule is SUSPENDED since {at}: {why}; after checking, `issuance-watcher top-up resume`"
        ));
    }
    if json {
        print_json(&view)
    } else {
        print_text(&render(&view, settings.api.timezone))
    }
}

/// The facts arranged for showing (pure: unit-tested).
///
/// `sinks`: the configured sinks' names and every sink the database knows.
pub(super) fn view(
    database: String,
    facts: StatusFacts,
    flags: Vec<FlagRow>,
    sinks: (&[String], Vec<SinkBacklog>),
    now: DateTime<Utc>,
) -> StatusView {
    let by_status: Vec<(String, i64)> = facts
        .active_by_status
        .into_iter()
        .map(|(s, n)| (s.unwrap_or_else(|| "UNSEEN".to_owned()), n))
        .collect();
    let seconds_ago = facts
        .last_success
        .as_deref()
        .and_then(from_db)
        .map(|at| (now - at).num_seconds());
    let webhooks = sink_views(sinks.0, sinks.1, now);
    StatusView {
        database,
        now: crate::domain::timefmt::to_db(now),
        attention: attention(&facts.unknown_charges, &webhooks, now),
        open_charges: Vec::new(),
        daemon: DaemonView {
            alive: !facts.daemons.live.is_empty(),
            daemons: facts.daemons,
        },
        active: ActiveView {
            total: by_status.iter().map(|(_, n)| n).sum(),
            by_status,
        },
        last_successful_poll: LastPollView {
            at: facts.last_success,
            seconds_ago,
        },
        errors_last_hour: ErrorsView {
            issuances: facts.errors.iter().map(|e| e.issuances).sum(),
            by_error: facts.errors,
        },
        flags,
        webhooks,
        charge_requests: ChargesView {
            unknown: facts.unknown_charges,
        },
    }
}

/// The screen, as text; deadlines also in `zone` (`api.timezone`).
pub(super) fn render(v: &StatusView, zone: chrono_tz::Tz) -> String {
    let mut out = String::new();
    if !v.attention.is_empty() {
        let _ = writeln!(out, "ATTENTION");
        for line in &v.attention {
            let _ = writeln!(out, "  ! {line}");
        }
        let _ = writeln!(out);
    }
    if !v.open_charges.is_empty() {
        let _ = writeln!(out, "TO PAY");
        let now = from_db(&v.now).unwrap_or_else(Utc::now);
        for charge in &v.open_charges {
            let _ = writeln!(out, "  {}", open_charge_line(charge, now, zone));
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "database              {}", v.database);
    let d = &v.daemon.daemons;
    if v.daemon.alive {
        let who: Vec<String> = d
            .live
            .iter()
            .map(|l| {
                let host = l
                    .host
                    .as_deref()
                    .map_or_else(String::new, |h| format!(" on {h}"));
                let pid = l
                    .pid
                    .map_or_else(String::new, |p| format!("pid {p}{host}, "));
                let since = l.since.as_deref().unwrap_or("-");
                format!("{pid}since {since}")
            })
            .collect();
        let _ = writeln!(out, "daemon                alive ({})", who.join("; "));
        for l in &d.live {
            if let Some(problem) = l.health.as_deref().filter(|h| *h != "ok") {
                let pid = l.pid.map_or_else(String::new, |p| format!(" (pid {p})"));
                let _ = writeln!(out, "                      UNHEALTHY{pid}: {problem}");
            }
        }
    } else {
        let _ = writeln!(
            out,
            "daemon                NOT RUNNING: no process holds a lock on this database"
        );
    }
    if d.dead > 0 {
        let _ = writeln!(
            out,
            "                      {} daemon(s) that died (their claims are taken over at the next start)",
            d.dead
        );
    }
    for why in &d.undecided {
        let _ = writeln!(out, "                      cannot tell: {why}");
    }
    let parts: Vec<String> = v
        .active
        .by_status
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "active issuances      {}{}",
        v.active.total,
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    );
    let last = match (
        &v.last_successful_poll.at,
        v.last_successful_poll.seconds_ago,
    ) {
        (Some(at), Some(ago)) => format!("{at} ({} ago)", ago_text(ago)),
        (Some(at), None) => at.clone(),
        _ => "never".to_owned(),
    };
    let _ = writeln!(out, "last successful poll  {last}");
    let e = &v.errors_last_hour;
    if e.issuances == 0 {
        let _ = writeln!(out, "errors (last hour)    none");
    } else {
        let _ = writeln!(
            out,
            "errors (last hour)    {} active issuance(s) whose last poll failed:",
            e.issuances
        );
        for err in &e.by_error {
            let _ = writeln!(
                out,
                "  {:>5}  {} (last {})",
                err.issuances, err.error, err.last_at
            );
        }
    }
    if v.flags.is_empty() {
        let _ = writeln!(out, "open flags            none");
    } else {
        let _ = writeln!(out, "open flags            {}", v.flags.len());
        let table = render_table(&FLAG_COLUMNS, v.flags.iter().map(|f| flag_cells(f, zone)));
        for line in table.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    if v.webhooks.is_empty() {
        let _ = writeln!(out, "webhooks              none configured");
    } else {
        let _ = writeln!(out, "webhooks              {} sink(s)", v.webhooks.len());
        let now = from_db(&v.now).unwrap_or_else(Utc::now);
        for s in &v.webhooks {
            let _ = writeln!(out, "{}", sink_line(s, now));
            if let Some(by) = &s.held_by {
                let _ = writeln!(out, "                       sent by {by}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEOUL: chrono_tz::Tz = chrono_tz::Asia::Seoul;
    use crate::domain::timefmt::{local, to_db};
    use crate::store::LiveDaemon;

    fn facts(live: bool) -> StatusFacts {
        StatusFacts {
            daemons: Daemons {
                live: if live {
                    vec![LiveDaemon {
                        owner: "o1".into(),
                        host: None,
                        pid: Some(4242),
                        since: Some("2026-12-02T08:00:00.000Z".into()),
                        health: Some("ok".into()),
                    }]
                } else {
                    vec![]
                },
                dead: usize::from(!live),
                undecided: vec![],
            },
            active_by_status: vec![(None, 1), (Some("READY".into()), 2)],
            last_success: Some("2026-12-02T09:59:18.000Z".into()),
            errors: vec![ErrorCount {
                error: "server error: HTTP 503".into(),
                issuances: 2,
                last_at: "2026-12-02T09:58:00.000Z".into(),
            }],
            unknown_charges: UnknownCharges::default(),
        }
    }

    fn no_sinks() -> (&'static [String], Vec<SinkBacklog>) {
        (&[], vec![])
    }

    fn flag() -> FlagRow {
        FlagRow {
            issuance_id: "1000001".into(),
            kind: "DUE_SOON".into(),
            raised_at: "2026-12-02T09:00:00.000Z".into(),
            cleared_at: None,
            vbank_due_at: Some("2026-12-02T14:59:59.000Z".into()),
            status: Some("READY".into()),
        }
    }

    fn now() -> DateTime<Utc> {
        from_db("2026-12-02T10:00:00.000Z").unwrap()
    }

    #[test]
    fn a_daemon_that_says_it_is_unhealthy_is_shown_so() {
        let mut facts = facts(true);
        facts.daemons.live[0].health = Some("468 of 469 poll results were dropped".into());
        let text = render(
            &view("/var/lib/w.db".into(), facts, vec![], no_sinks(), now()),
            SEOUL,
        );
        assert!(
            text.contains(
                "alive (pid 4242, since 2026-12-02T08:00:00.000Z)\n                      UNHEALTHY (pid 4242): 468 of 469 poll results were dropped\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_screen_names_each_fact() {
        let v = view(
            "/var/lib/w.db".into(),
            facts(true),
            vec![flag()],
            no_sinks(),
            now(),
        );
        let text = render(&v, SEOUL);
        assert_eq!(
            text,
            "\
database              /var/lib/w.db
daemon                alive (pid 4242, since 2026-12-02T08:00:00.000Z)
active issuances      3 (UNSEEN 1, READY 2)
last successful poll  2026-12-02T09:59:18.000Z (42 s ago)
errors (last hour)    2 active issuance(s) whose last poll failed:
      2  server error: HTTP 503 (last 2026-12-02T09:58:00.000Z)
open flags            1
  ID       FLAG      STATUS  DUE                      DUE (UTC)                 RAISED (UTC)
  1000001  DUE_SOON  READY   2026-12-02 23:59:59 KST  2026-12-02T14:59:59.000Z  2026-12-02T09:00:00.000Z
webhooks              none configured
"
        );
    }

    #[test]
    fn what_needs_a_person_comes_first_and_each_sink_is_listed() {
        use crate::store::{Backlog, NamedSinkRow, SinkRow, UnknownCharge};
        let mut f = facts(true);
        f.unknown_charges = UnknownCharges {
            total: 1,
            newest: vec![UnknownCharge {
                id: 3,
                amount: 50_000,
                requested_at: "2026-12-02T09:00:00.000Z".into(),
                error_code: Some("TIMEOUT".into()),
            }],
        };
        let configured = ["shop".to_owned()];
        let shop = SinkBacklog {
            sink: NamedSinkRow {
                name: "shop".into(),
                row: SinkRow {
                    admitted_seq: 4,
                    disabled_at: None,
                    disabled_reason: None,
                    failing_since: Some("2026-12-02T09:58:00.000Z".into()),
                    last_problem: Some("HTTP 503".into()),
                },
            },
            backlog: Backlog {
                pending: 2,
                oldest: from_db("2026-12-02T09:57:00.000Z"),
            },
            given_up: 0,
        };
        let v = view("w.db".into(), f, vec![], (&configured, vec![shop]), now());
        let text = render(&v, SEOUL);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ATTENTION", "{text}");
        assert!(
            lines[1].contains("UNKNOWN outcome") && lines[1].contains("#3"),
            "{text}"
        );
        assert!(lines[2].contains("`shop` is FAILING since 2026-12-02T09:58:00.000Z (2 min ago): HTTP 503; 2 event(s) waiting, the oldest for 3 min"), "{text}");
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with("database"), "{text}");
        assert!(text.ends_with(
            "webhooks              1 sink(s)\n  shop                 FAILING since 2026-12-02T09:58:00.000Z (2 min ago): HTTP 503; backlog 2, oldest 3 min\n"
        ), "{text}");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["webhooks"][0]["health"], "failing");
        assert_eq!(json["webhooks"][0]["backlog"], 2);
        assert_eq!(json["webhooks"][0]["oldest_undelivered_seconds"], 180);
        assert_eq!(json["charge_requests"]["unknown"]["total"], 1);
        assert_eq!(json["attention"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn the_charges_to_pay_come_before_the_operators_facts() {
        let mut v = view("w.db".into(), facts(true), vec![], no_sinks(), now());
        let ready = OpenCharge {
            issuance_id: "P1".into(),
            status: Some("READY".into()),
            amount: Some(2_880_000),
            bank: Some("신한은행".into()),
            account_number: Some("110-123-456789".into()),
            holder: Some("번개장터".into()),
            due_at: Some(to_db(now() + chrono::Duration::minutes(95))),
        };
        let waited = OpenCharge {
            issuance_id: "P2".into(),
            status: Some("WAITED".into()),
            amount: Some(10_000),
            bank: None,
            account_number: None,
            holder: None,
            due_at: None,
        };
        v.open_charges = vec![ready, waited];
        let text = render(&v, SEOUL);
        let to_pay = text.find("TO PAY").expect(&text);
        assert!(to_pay < text.find("database").unwrap(), "{text}");
        let due = local(now() + chrono::Duration::minutes(95), SEOUL);
        assert!(
            text.contains(&format!(
                "P1  2,880,000 KRW to 신한은행 110-123-456789 (번개장터) by {due} (1h 35m left)"
            )),
            "{text}"
        );
        assert!(
            text.contains("P2  10,000 KRW WAITED: the account follows when it is READY"),
            "{text}"
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["open_charges"][0]["account_number"], "110-123-456789");
    }

    #[test]
    fn a_dead_daemon_and_a_quiet_database_say_so() {
        let mut f = facts(false);
        f.errors.clear();
        f.active_by_status.clear();
        f.last_success = None;
        let text = render(&view("w.db".into(), f, vec![], no_sinks(), now()), SEOUL);
        assert!(text.contains("daemon                NOT RUNNING"), "{text}");
        assert!(text.contains("1 daemon(s) that died"), "{text}");
        assert!(text.contains("active issuances      0\n"), "{text}");
        assert!(text.contains("last successful poll  never\n"), "{text}");
        assert!(text.contains("errors (last hour)    none\n"), "{text}");
        assert!(text.contains("open flags            none\n"), "{text}");
        assert!(!text.contains("ATTENTION"), "{text}");
    }

    #[test]
    fn json_has_the_same_facts_for_scripts() {
        let v = view("w.db".into(), facts(true), vec![flag()], no_sinks(), now());
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["daemon"]["alive"], true);
        assert_eq!(json["daemon"]["live"][0]["pid"], 4242);
        assert_eq!(json["active"]["total"], 3);
        assert_eq!(
            json["active"]["by_status"][1],
            serde_json::json!(["READY", 2])
        );
        assert_eq!(json["last_successful_poll"]["seconds_ago"], 42);
        assert_eq!(json["errors_last_hour"]["issuances"], 2);
        assert_eq!(json["flags"][0]["kind"], "DUE_SOON");
    }
}
