//! The parts of `status` that say what needs a person: each webhook sink's
//! health and backlog, the charge requests whose outcome is unknown, and the
//! attention lines built from them, shown first. Pure: the facts come in,
//! the views and lines go out.
//!
//! Which sinks are shown: every configured one (`not_started` until a daemon
//! has registered it), and a sink the database knows but the configuration
//! no longer names (`removed`) while it still has deliveries that were never
//! made; a removed sink with nothing left is history, not news.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::output::ago_text;
use crate::domain::timefmt::{from_db, to_db};
use crate::domain::{SinkHealth, SinkRowFacts};
use crate::store::{LiveDaemon, SinkBacklog, SinkHolder, UnknownCharges};

/// One webhook sink as `status` shows it; `--json` prints exactly this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct SinkView {
    pub name: String,
    #[serde(skip)]
    pub judged: SinkHealth,
    /// `ok`, `failing`, `disabled`, `removed` or `not_started`.
    pub health: &'static str,
    /// The first failed attempt after its last 2xx, while failing.
    pub failing_since: Option<String>,
    pub last_problem: Option<String>,
    /// Since when, and why, it is disabled (410 Gone).
    pub disabled_at: Option<String>,
    pub disabled_reason: Option<String>,
    /// Events not delivered yet (a removed sink: its deliveries never to be attempted).
    pub backlog: i64,
    /// When the oldest undelivered event happened, and how long ago.
    pub oldest_undelivered_at: Option<String>,
    pub oldest_undelivered_seconds: Option<i64>,
    /// Deliveries given up after the retry horizon (see `events --failed`).
    pub given_up: i64,
    /// Which daemon sends it ([`held_by`]); `None`: none holds it.
    pub held_by: Option<String>,
}

/// The sinks to show: configured ones in configuration order, then removed
/// ones that still have undelivered deliveries.
pub(super) fn sink_views(
    configured: &[String],
    stored: Vec<SinkBacklog>,
    now: DateTime<Utc>,
) -> Vec<SinkView> {
    let view = |name: &str, stored: Option<&SinkBacklog>| {
        let row = stored.map(|s| &s.sink.row);
        let health = SinkHealth::judge(
            configured.iter().any(|c| c == name),
            row.map(|r| SinkRowFacts {
                disabled_at: r.disabled_at.as_deref(),
                disabled_reason: r.disabled_reason.as_deref(),
                failing_since: r.failing_since.as_deref(),
            }),
        );
        let oldest = stored.and_then(|s| s.backlog.oldest);
        SinkView {
            name: name.to_owned(),
            health: health.as_str(),
            judged: health,
            failing_since: row.and_then(|r| r.failing_since.clone()),
            last_problem: row.and_then(|r| r.last_problem.clone()),
            disabled_at: row.and_then(|r| r.disabled_at.clone()),
            disabled_reason: row.and_then(|r| r.disabled_reason.clone()),
            backlog: stored.map_or(0, |s| s.backlog.pending),
            oldest_undelivered_at: oldest.map(to_db),
            oldest_undelivered_seconds: oldest.map(|t| (now - t).num_seconds().max(0)),
            given_up: stored.map_or(0, |s| s.given_up),
            held_by: None,
        }
    };
    let mut views: Vec<SinkView> = configured
        .iter()
        .map(|name| view(name, stored.iter().find(|s| &s.sink.name == name)))
        .collect();
    for s in &stored {
        let removed = !configured.contains(&s.sink.name);
        if removed && (s.backlog.pending > 0 || s.given_up > 0) {
            views.push(view(&s.sink.name, Some(s)));
        }
    }
    views
}

/// What needs a person, most urgent first: charges that may exist unseen,
/// then sinks that are not delivering (removed, disabled, failing) or gave
/// deliveries up.
pub(super) fn attention(
    charges: &UnknownCharges,
    sinks: &[SinkView],
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut lines = Vec::new();
    if charges.total > 0 {
        let listed: Vec<String> = charges
            .newest
            .iter()
            .map(|c| {
                format!(
                    "#{} {} KRW at {}{}",
                    c.id,
                    c.amount,
                    c.requested_at,
                    c.error_code
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let more = if charges.total > listed.len() as i64 {
            format!(", and {} more", charges.total - listed.len() as i64)
        } else {
            String::new()
        };
        lines.push(format!(
            "{} charge request(s) with an UNKNOWN outcome: a charge may exist for each ({}{more}); \
             look in the Bunjang partner console before asking again (`charges`)",
            charges.total,
            listed.join(", ")
        ));
    }
    let ago = |at: &Option<String>| {
        at.as_deref()
            .and_then(from_db)
            .map(|t| format!(" ({} ago)", ago_text((now - t).num_seconds())))
            .unwrap_or_default()
    };
    let waiting = |s: &SinkView| match s.oldest_undelivered_seconds {
        Some(age) if s.backlog > 0 => format!(
            "{} event(s) waiting, the oldest for {}",
            s.backlog,
            ago_text(age)
        ),
        _ => format!("{} event(s) waiting", s.backlog),
    };
    for s in sinks {
        let health = &s.judged;
        let line = match health {
            SinkHealth::Removed => Some(format!(
                "webhook sink `{}` is REMOVED from the configuration: {} delivery(ies) will never be \
                 attempted; `events --failed` lists them, `events discard --sink {}` gives them up",
                s.name,
                s.backlog + s.given_up,
                s.name
            )),
            SinkHealth::Disabled { since, reason } => Some(format!(
                "webhook sink `{}` is DISABLED since {since}{} ({reason}): {}; `sinks enable {}` resumes",
                s.name,
                ago(&Some(since.clone())),
                waiting(s),
                s.name
            )),
            SinkHealth::Failing { since } => Some(format!(
                "webhook sink `{}` is FAILING since {since}{}: {}; {}",
                s.name,
                ago(&Some(since.clone())),
                s.last_problem.as_deref().unwrap_or("no answer"),
                waiting(s)
            )),
            SinkHealth::Ok | SinkHealth::NotStarted => None,
        };
        if let Some(line) = line {
            lines.push(line);
        }
        if s.given_up > 0 && *health != SinkHealth::Removed {
            lines.push(format!(
                "webhook sink `{}`: {} delivery(ies) given up after the retry horizon \
                 (`events --failed`; `events redeliver SEQ...` or `events discard --sink {}`)",
                s.name, s.given_up, s.name
            ));
        }
    }
    lines
}

/// Which daemon sends a sink (the one holding it): its pid and host as the
/// daemons' registry or lock files say, or that its holder no longer runs
/// (another daemon takes the sink over). `None`: nobody holds it.
pub(super) fn held_by(holder: Option<&SinkHolder>, live: &[LiveDaemon]) -> Option<String> {
    let holder = holder?;
    let owner = holder.holder.as_deref()?;
    Some(match live.iter().find(|d| d.owner == owner) {
        Some(d) => {
            let pid = d
                .pid
                .map_or_else(|| "a daemon".to_owned(), |p| format!("pid {p}"));
            match d.host.as_deref() {
                Some(host) => format!("{pid} on {host}"),
                None => pid,
            }
        }
        None => format!(
            "a daemon no longer running (until {}; another takes it over)",
            holder.hold_expires_at.as_deref().unwrap_or("-")
        ),
    })
}

/// One sink under the `webhooks` heading of the text screen.
pub(super) fn sink_line(s: &SinkView, now: DateTime<Utc>) -> String {
    let since_ago = |at: &Option<String>| {
        let at = at.as_deref().unwrap_or("-");
        match from_db(at) {
            Some(t) => format!("{at} ({} ago)", ago_text((now - t).num_seconds())),
            None => at.to_owned(),
        }
    };
    let health = match &s.judged {
        SinkHealth::Failing { since } => format!(
            "FAILING since {}: {}",
            since_ago(&Some(since.clone())),
            s.last_problem.as_deref().unwrap_or("no answer")
        ),
        SinkHealth::Disabled { since, reason } => {
            format!(
                "DISABLED since {} ({reason})",
                since_ago(&Some(since.clone()))
            )
        }
        SinkHealth::Removed => "REMOVED from the configuration".to_owned(),
        SinkHealth::NotStarted => "not started (no daemon has run with it yet)".to_owned(),
        SinkHealth::Ok => "ok".to_owned(),
    };
    let oldest = match s.oldest_undelivered_seconds {
        Some(age) if s.backlog > 0 => format!(", oldest {}", ago_text(age)),
        _ => String::new(),
    };
    let given_up = if s.given_up > 0 {
        format!(", {} given up", s.given_up)
    } else {
        String::new()
    };
    format!(
        "  {:<20} {health}; backlog {}{oldest}{given_up}",
        s.name, s.backlog
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Backlog, NamedSinkRow, SinkRow, UnknownCharge};

    #[test]
    fn a_sink_is_sent_by_its_live_holder_or_shown_as_held_by_a_gone_one() {
        let live = |owner: &str, host: Option<&str>| LiveDaemon {
            owner: owner.into(),
            host: host.map(Into::into),
            pid: Some(42),
            since: None,
            health: None,
        };
        let holder = |owner: Option<&str>| SinkHolder {
            sink: "shop".into(),
            holder: owner.map(Into::into),
            hold_expires_at: owner.map(|_| "2026-12-05T10:00:15.000Z".into()),
        };
        let daemons = [live("a", Some("web-1")), live("b", None)];
        let by = |h: Option<SinkHolder>| held_by(h.as_ref(), &daemons);
        assert_eq!(
            by(Some(holder(Some("a")))).as_deref(),
            Some("pid 42 on web-1")
        );
        assert_eq!(by(Some(holder(Some("b")))).as_deref(), Some("pid 42"));
        assert_eq!(
            by(Some(holder(Some("gone")))).as_deref(),
            Some(
                "a daemon no longer running (until 2026-12-05T10:00:15.000Z; another takes it over)"
            )
        );
        assert_eq!(by(Some(holder(None))), None);
        assert_eq!(by(None), None);
    }

    fn now() -> DateTime<Utc> {
        from_db("2026-12-05T10:00:00.000Z").unwrap()
    }

    fn stored(
        name: &str,
        failing: Option<&str>,
        disabled: Option<&str>,
        pending: i64,
    ) -> SinkBacklog {
        SinkBacklog {
            sink: NamedSinkRow {
                name: name.into(),
                row: SinkRow {
                    admitted_seq: 10,
                    disabled_at: disabled.map(str::to_owned),
                    disabled_reason: disabled.map(|_| "the receiver answered 410 Gone".into()),
                    failing_since: failing.map(str::to_owned),
                    last_problem: failing.map(|_| "cannot connect: Connection refused".into()),
                },
            },
            backlog: Backlog {
                pending,
                oldest: (pending > 0).then(|| from_db("2026-12-05T09:55:00.000Z").unwrap()),
            },
            given_up: 0,
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn each_sink_says_its_health_backlog_and_oldest_age() {
        let views = sink_views(
            &names(&["shop", "erp", "chat", "new"]),
            vec![
                stored("chat", None, Some("2026-12-05T09:00:00.000Z"), 4),
                stored("erp", None, None, 0),
                stored("gone", None, None, 0),
                stored("old", None, None, 3),
                stored("shop", Some("2026-12-05T09:57:00.000Z"), None, 12),
            ],
            now(),
        );
        let summary: Vec<(&str, &str, i64, Option<i64>)> = views
            .iter()
            .map(|v| {
                (
                    v.name.as_str(),
                    v.health,
                    v.backlog,
                    v.oldest_undelivered_seconds,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("shop", "failing", 12, Some(300)),
                ("erp", "ok", 0, None),
                ("chat", "disabled", 4, Some(300)),
                ("new", "not_started", 0, None),
                // "gone" was removed with nothing left: not shown.
                ("old", "removed", 3, Some(300)),
            ]
        );
        assert_eq!(
            sink_line(&views[0], now()),
            "  shop                 FAILING since 2026-12-05T09:57:00.000Z (3 min ago): \
             cannot connect: Connection refused; backlog 12, oldest 5 min"
        );
        assert_eq!(
            sink_line(&views[1], now()),
            "  erp                  ok; backlog 0"
        );
    }

    #[test]
    fn unknown_charges_come_first_then_each_sink_not_delivering() {
        let mut shop = stored("shop", Some("2026-12-05T09:57:00.000Z"), None, 12);
        shop.given_up = 2;
        let views = sink_views(
            &names(&["shop", "erp", "chat"]),
            vec![
                shop,
                stored("erp", None, None, 1),
                stored("chat", None, Some("2026-12-05T09:00:00.000Z"), 4),
                stored("old", None, None, 3),
            ],
            now(),
        );
        let charges = UnknownCharges {
            total: 1,
            newest: vec![UnknownCharge {
                id: 7,
                amount: 50_000,
                requested_at: "2026-12-05T08:00:00.000Z".into(),
                error_code: Some("TIMEOUT".into()),
            }],
        };
        let lines = attention(&charges, &views, now());
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert!(
            lines[0].starts_with("1 charge request(s) with an UNKNOWN outcome")
                && lines[0].contains("#7 50000 KRW at 2026-12-05T08:00:00.000Z (TIMEOUT)"),
            "{}",
            lines[0]
        );
        assert_eq!(
            lines[1],
            "webhook sink `shop` is FAILING since 2026-12-05T09:57:00.000Z (3 min ago): \
             cannot connect: Connection refused; 12 event(s) waiting, the oldest for 5 min"
        );
        assert!(
            lines[2].contains("`shop`: 2 delivery(ies) given up"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].starts_with("webhook sink `chat` is DISABLED since"),
            "{}",
            lines[3]
        );
        assert!(
            lines[4].contains("`old` is REMOVED") && lines[4].contains("events discard --sink old"),
            "{}",
            lines[4]
        );
        // Nothing wrong: nothing to say.
        let calm = sink_views(&names(&["erp"]), vec![stored("erp", None, None, 1)], now());
        assert!(attention(&UnknownCharges::default(), &calm, now()).is_empty());
    }
}
