//! `issuance-watcher status [--json]`: one screen for a person on the host.
//! Everything comes from the database and the owner locks beside it (see
//! `store::status`), so it needs neither the HTTP listener nor the daemon's
//! cooperation: whether a daemon is alive, what is watched, the open flags with
//! their deadlines, the last successful poll and the errors of the last hour.
//!
//! It opens the database read-only ([`Access::Read`]): it never creates one (a
//! missing file is an error that names the path: a typo in `database.path` must
//! not pass for an empty, healthy watcher) and never upgrades its schema.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::output::{flag_header, flag_line, print_json, print_text};
use crate::app::open_store;
use crate::domain::timefmt::from_db;
use crate::settings::Settings;
use crate::store::{Access, Daemons, ErrorCount, FlagRow, StatusFacts};

/// How far back "recent errors" reach.
const ERRORS_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// What `status` shows; `--json` prints exactly this.
#[derive(Debug, Serialize)]
pub(super) struct StatusView {
    pub database: String,
    /// When this was read (UTC).
    pub now: String,
    pub daemon: DaemonView,
    pub active: ActiveView,
    pub last_successful_poll: LastPollView,
    pub errors_last_hour: ErrorsView,
    /// Open DUE_SOON / OVERDUE flags, soonest deadline first.
    pub flags: Vec<FlagRow>,
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
    let view = view(path.display().to_string(), facts, flags, now);
    if json {
        print_json(&view)
    } else {
        print_text(&render(&view))
    }
}

/// The facts arranged for showing (pure: unit-tested).
pub(super) fn view(
    database: String,
    facts: StatusFacts,
    flags: Vec<FlagRow>,
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
    StatusView {
        database,
        now: crate::domain::timefmt::to_db(now),
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
    }
}

/// The screen, as text.
pub(super) fn render(v: &StatusView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "database              {}", v.database);
    let d = &v.daemon.daemons;
    if v.daemon.alive {
        let who: Vec<String> = d
            .live
            .iter()
            .map(|l| {
                let pid = l.pid.map_or_else(String::new, |p| format!("pid {p}, "));
                let since = l.since.as_deref().unwrap_or("-");
                format!("{pid}since {since}")
            })
            .collect();
        let _ = writeln!(out, "daemon                alive ({})", who.join("; "));
    } else {
        let _ = writeln!(
            out,
            "daemon                NOT RUNNING: no process holds a lock on this database"
        );
    }
    if d.dead > 0 {
        let _ = writeln!(
            out,
            "                      {} lock file(s) of daemons that died (taken over at the next start)",
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
        let _ = writeln!(out, "  {}", flag_header(8, "DEADLINE (UTC)"));
        for f in &v.flags {
            let _ = writeln!(out, "  {}", flag_line(f, 8));
        }
    }
    out
}

/// `42 s`, `3 min`, `2 h 5 min`, `3 d 4 h`: how long ago, for a person.
fn ago_text(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LiveDaemon;

    fn facts(live: bool) -> StatusFacts {
        StatusFacts {
            daemons: Daemons {
                live: if live {
                    vec![LiveDaemon {
                        owner: "o1".into(),
                        pid: Some(4242),
                        since: Some("2026-12-02T08:00:00.000Z".into()),
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
        }
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
    fn the_screen_names_each_fact() {
        let v = view("/var/lib/w.db".into(), facts(true), vec![flag()], now());
        let text = render(&v);
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
  ID                   FLAG      STATUS   DEADLINE (UTC)           RAISED
  1000001              DUE_SOON  READY    2026-12-02T14:59:59.000Z 2026-12-02T09:00:00.000Z
"
        );
    }

    #[test]
    fn a_dead_daemon_and_a_quiet_database_say_so() {
        let mut f = facts(false);
        f.errors.clear();
        f.active_by_status.clear();
        f.last_success = None;
        let text = render(&view("w.db".into(), f, vec![], now()));
        assert!(text.contains("daemon                NOT RUNNING"), "{text}");
        assert!(
            text.contains("1 lock file(s) of daemons that died"),
            "{text}"
        );
        assert!(text.contains("active issuances      0\n"), "{text}");
        assert!(text.contains("last successful poll  never\n"), "{text}");
        assert!(text.contains("errors (last hour)    none\n"), "{text}");
        assert!(text.contains("open flags            none\n"), "{text}");
    }

    #[test]
    fn json_has_the_same_facts_for_scripts() {
        let v = view("w.db".into(), facts(true), vec![flag()], now());
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

    #[test]
    fn ago_reads_like_a_person_would_say_it() {
        assert_eq!(ago_text(-3), "0 s");
        assert_eq!(ago_text(59), "59 s");
        assert_eq!(ago_text(125), "2 min");
        assert_eq!(ago_text(7500), "2 h 5 min");
        assert_eq!(ago_text(3 * 86400 + 4 * 3600), "3 d 4 h");
    }
}
