//! `events show SEQ`: one event and, per sink, its delivery attempts as the
//! delivery log keeps them (`attempts_retention`). The receiver's answer is
//! hostile input: it is stored sanitised, and printed escaped on one line
//! (`\n`, `\t`, any control character), as is every other text from the
//! database.

use std::fmt::Write as _;

use anyhow::bail;
use chrono_tz::Tz;
use serde::Serialize;

use super::output::{left, local_or_dash, print_json, print_text, render_table, right};
use crate::app::open_store;
use crate::domain::excerpt::one_line;
use crate::settings::Settings;
use crate::store::{Access, EventRow, LoggedAttempt};

/// What `--json` prints.
#[derive(Serialize)]
struct Shown<'a> {
    event: &'a EventRow,
    attempts: &'a [LoggedAttempt],
}

pub(super) async fn show(settings: &Settings, seq: i64, json: bool) -> anyhow::Result<()> {
    let store = open_store(settings, Access::Read).await?;
    let Some(event) = store.event(seq).await? else {
        bail!("no event with seq {seq} in the outbox");
    };
    let attempts = store.attempts_of(seq).await?;
    if json {
        return print_json(&Shown {
            event: &event,
            attempts: &attempts,
        });
    }
    print_text(&render(&event, &attempts, settings.api.timezone))
}

/// The event, then one table of attempts per sink.
fn render(event: &EventRow, attempts: &[LoggedAttempt], zone: Tz) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "seq        {}", event.seq);
    let _ = writeln!(out, "id         {}", one_line(&event.id));
    let _ = writeln!(out, "type       {}", one_line(&event.event_type));
    let issuance = event.issuance_id.as_deref().unwrap_or("-");
    let _ = writeln!(out, "issuance   {}", one_line(issuance));
    let _ = writeln!(
        out,
        "occurred   {} ({})",
        local_or_dash(Some(&event.occurred_at), zone),
        one_line(&event.occurred_at)
    );
    let _ = writeln!(out, "data       {}", one_line(&event.data.to_string()));
    if attempts.is_empty() {
        out.push_str(
            "\nno attempts logged: none made yet, or older than the sink's attempts_retention\n",
        );
        return out;
    }
    let mut sinks: Vec<&str> = attempts.iter().map(|a| a.sink.as_str()).collect();
    sinks.dedup();
    let columns = [
        left("ATTEMPTED"),
        left("RESULT"),
        right("TIME"),
        left("ANSWER (first KiB, escaped)"),
    ];
    for sink in sinks {
        let of_sink: Vec<&LoggedAttempt> = attempts.iter().filter(|a| a.sink == sink).collect();
        let _ = writeln!(
            out,
            "\nsink {} ({} attempts)",
            one_line(sink),
            of_sink.len()
        );
        let rows = of_sink.iter().map(|a| {
            vec![
                local_or_dash(Some(&a.attempted_at), zone),
                result(a),
                format!("{} ms", a.duration_ms),
                a.response
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), one_line),
            ]
        });
        out.push_str(&render_table(&columns, rows));
    }
    out
}

/// `HTTP 204`, `HTTP 500`, or why there was no answer.
fn result(a: &LoggedAttempt) -> String {
    match (a.http_status, &a.error) {
        (Some(code), _) => format!("HTTP {code}"),
        (None, Some(error)) => one_line(error),
        (None, None) => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_answer_is_printed_escaped_on_one_line() {
        let event = EventRow {
            seq: 7,
            id: "evt_1".into(),
            event_type: "issuance.status_changed".into(),
            issuance_id: Some("1000001".into()),
            occurred_at: "2026-12-05T10:00:00.000Z".into(),
            data: serde_json::json!({"to_status": "DONE"}),
        };
        let attempt = |status, error: Option<&str>, response: Option<&str>| LoggedAttempt {
            sink: "shop".into(),
            attempted_at: "2026-12-05T10:00:01.000Z".into(),
            duration_ms: 42,
            http_status: status,
            error: error.map(str::to_owned),
            response: response.map(str::to_owned),
        };
        let text = render(
            &event,
            &[
                attempt(Some(500), Some("HTTP 500"), Some("oops\n\u{1b}[31mred\tx")),
                attempt(None, Some("timed out"), None),
            ],
            chrono_tz::Asia::Seoul,
        );
        assert!(
            text.contains("occurred   2026-12-05 19:00:00 KST"),
            "{text}"
        );
        assert!(text.contains("sink shop (2 attempts)"), "{text}");
        assert!(text.contains("HTTP 500"), "{text}");
        assert!(text.contains("oops\\n\\u{1b}[31mred\\tx"), "{text}");
        assert!(text.contains("timed out"), "{text}");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "no raw control character: {text:?}"
        );
        let none = render(&event, &[], chrono_tz::Asia::Seoul);
        assert!(none.contains("no attempts logged"), "{none}");
    }
}
