//! The commands that read or feed the database: `add`, `list`, `show`, `flags`.
//! Each opens the store, does one thing and prints it for a person (a table)
//! or for a script (`--json`).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context as _, bail};

use super::output::{
    FLAG_COLUMNS, flag_cells, left, local_or_dash, print_json, print_table, print_text, right,
};
use crate::app::open_store;
use crate::domain::money;
use crate::settings::Settings;
use crate::store::Access;
use crate::store::{FlagRow, IssuanceRow, TransitionRow};

pub(super) async fn add(settings: &Settings, mut ids: Vec<String>) -> anyhow::Result<()> {
    if ids.is_empty() || ids == ["-"] {
        ids.clear();
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            bail!("no ids given: pass them as arguments or one per line on stdin");
        }
        for line in stdin.lock().lines() {
            let line = line.context("while reading ids from stdin")?;
            let id = line.trim();
            if !id.is_empty() {
                ids.push(id.to_owned());
            }
        }
    }
    for id in &ids {
        if let Some(reason) = crate::api::reject_reason(id) {
            bail!(
                "refusing id {:?}: {reason}",
                id.chars().take(64).collect::<String>()
            );
        }
    }
    let store = open_store(settings, Access::Write).await?;
    let added = store.add_ids(&ids).await.context("while adding ids")?;
    print_text(&format!(
        "{added} added, {} already watched\n",
        ids.len() as u64 - added
    ))
}

pub(super) async fn list(
    settings: &Settings,
    status: Option<String>,
    limit: i64,
    json: bool,
) -> anyhow::Result<()> {
    let store = open_store(settings, Access::Read).await?;
    let status = status.map(|s| s.to_uppercase());
    // One row more than asked for tells whether the limit cut the list.
    let mut rows = store
        .list(status.as_deref(), limit.saturating_add(1))
        .await?;
    let shown = usize::try_from(limit).unwrap_or(usize::MAX);
    let truncated = rows.len() > shown;
    rows.truncate(shown);
    let zone = settings.api.timezone;
    let columns = [
        left("ID"),
        left("STATUS"),
        right("AMOUNT"),
        left("DUE"),
        left("DUE (UTC)"),
        left("WATCH"),
        right("POLLS"),
        left("LAST ERROR"),
    ];
    print_table(&rows, json, &columns, |r| {
        vec![
            r.id.clone(),
            r.status.clone().unwrap_or_else(|| "-".into()),
            r.amount.map_or_else(|| "-".into(), money::grouped),
            local_or_dash(r.vbank_due_at.as_deref(), zone),
            r.vbank_due_at.clone().unwrap_or_else(|| "-".into()),
            r.watch.clone(),
            r.polls.to_string(),
            r.last_error.clone().unwrap_or_default(),
        ]
    })?;
    if truncated {
        // On stderr, so that the table stays a table for scripts.
        eprintln!("(stopped at --limit {limit}; there may be more)");
    }
    Ok(())
}

pub(super) async fn show(settings: &Settings, id: &str, json: bool) -> anyhow::Result<()> {
    let store = open_store(settings, Access::Read).await?;
    let Some(issuance) = store.issuance(id).await? else {
        bail!("issuance {id:?} is not in the database");
    };
    let transitions = store.transitions_of(id).await?;
    let flags = store.flags(Some(id)).await?;
    if json {
        // A struct, not `json!`: its fields keep their order, the same as `list --json`'s.
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            issuance: &'a IssuanceRow,
            transitions: &'a [TransitionRow],
            flags: &'a [FlagRow],
        }
        return print_json(&Shown {
            issuance: &issuance,
            transitions: &transitions,
            flags: &flags,
        });
    }
    let mut out = std::io::stdout().lock();
    for (key, value) in issuance_fields(&issuance, settings.api.timezone) {
        writeln!(out, "{key:<22} {}", value.as_deref().unwrap_or("-"))?;
    }
    writeln!(out, "\ntransitions:")?;
    for t in transitions {
        let anomaly = t.anomaly.map(|a| format!("  [{a}]")).unwrap_or_default();
        writeln!(
            out,
            "  {}  {:>9} -> {:<9}{anomaly}",
            t.observed_at,
            t.from_status.as_deref().unwrap_or("-"),
            t.to_status
        )?;
    }
    writeln!(out, "\nflags:")?;
    for f in flags {
        writeln!(
            out,
            "  {:<8}  raised {}  cleared {}",
            f.kind,
            f.raised_at,
            f.cleared_at.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

pub(super) async fn flags(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let store = open_store(settings, Access::Read).await?;
    let rows = store.flags(None).await?;
    let zone = settings.api.timezone;
    print_table(&rows, json, &FLAG_COLUMNS, |f| flag_cells(f, zone))
}

/// An issuance's columns for a person: what they look for first (id, status,
/// amount, deadline, where to pay), then the watcher's bookkeeping.
/// Every column of an issuance, the essentials first; the amount grouped by
/// thousands and the deadline also in `zone`, where a person reads them.
fn issuance_fields(r: &IssuanceRow, zone: chrono_tz::Tz) -> Vec<(&'static str, Option<String>)> {
    let text = |v: &Option<String>| v.clone();
    vec![
        ("id", Some(r.id.clone())),
        ("status", text(&r.status)),
        ("amount", r.amount.map(money::krw)),
        ("vbank_due_at", text(&r.vbank_due_at)),
        (
            "vbank_due_local",
            r.vbank_due_at
                .as_deref()
                .map(|at| crate::domain::timefmt::db_local(at, zone)),
        ),
        ("bank_name", text(&r.bank_name)),
        ("vbank_account_number", text(&r.vbank_account_number)),
        ("vbank_holder_name", text(&r.vbank_holder_name)),
        ("created_at", text(&r.created_at)),
        ("modified_at", text(&r.modified_at)),
        ("watch", Some(r.watch.clone())),
        ("next_poll_at", Some(r.next_poll_at.clone())),
        ("polls", Some(r.polls.to_string())),
        ("attempts", Some(r.attempts.to_string())),
        ("last_polled_at", text(&r.last_polled_at)),
        ("last_seen_at", text(&r.last_seen_at)),
        ("last_error", text(&r.last_error)),
        ("added_at", Some(r.added_at.clone())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_lists_every_column_once_with_the_essentials_first() {
        let row = IssuanceRow {
            id: "42".into(),
            status: Some("READY".into()),
            amount: Some(10_000),
            created_at: None,
            modified_at: None,
            vbank_due_at: Some("2026-12-03T14:59:59Z".into()),
            vbank_account_number: None,
            bank_name: None,
            vbank_holder_name: None,
            watch: "active".into(),
            next_poll_at: "2026-12-02T10:00:00Z".into(),
            attempts: 0,
            polls: 1,
            last_polled_at: None,
            last_seen_at: None,
            last_error: None,
            added_at: "2026-12-02T09:00:00Z".into(),
        };
        let fields = issuance_fields(&row, chrono_tz::Asia::Seoul);
        let value = |key: &str| fields.iter().find(|(k, _)| *k == key).unwrap().1.clone();
        assert_eq!(value("amount").as_deref(), Some("10,000 KRW"));
        assert_eq!(
            value("vbank_due_local").as_deref(),
            Some("2026-12-03 23:59:59 KST")
        );
        let mut shown: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            shown[..5],
            ["id", "status", "amount", "vbank_due_at", "vbank_due_local"]
        );
        // Shown beside the stored deadline, not a column of its own.
        shown.retain(|k| *k != "vbank_due_local");
        // A column added to the row later must be added here too.
        let serde_json::Value::Object(columns) = serde_json::to_value(&row).unwrap() else {
            panic!("a row serialises as an object");
        };
        let mut expected: Vec<&str> = columns.keys().map(String::as_str).collect();
        let mut got = shown.clone();
        expected.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, expected);
    }
}
