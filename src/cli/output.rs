//! Output shared by the commands. Everything goes through `write!` on a locked
//! stdout, never `println!` (which panics when the reader has gone away), and a
//! closed pipe ends the command quietly with success ([`is_broken_pipe`]).

use std::io::Write;

use chrono_tz::Tz;

use crate::domain::timefmt::db_local;
use crate::store::FlagRow;

/// Pretty JSON on stdout, for scripts.
pub(super) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A column of a table: its header, and whether its cells align right (numbers).
#[derive(Debug, Clone, Copy)]
pub(super) struct Column {
    pub header: &'static str,
    pub right: bool,
}

/// A column whose cells align left.
pub(super) const fn left(header: &'static str) -> Column {
    Column {
        header,
        right: false,
    }
}

/// A column whose cells align right (counts, amounts).
pub(super) const fn right(header: &'static str) -> Column {
    Column {
        header,
        right: true,
    }
}

/// `columns` over `rows`, each column as wide as its widest cell, two spaces
/// apart, no borders, no trailing spaces: what `list`, `flags`, `charges` and
/// `events --failed` print, and what a script can still split on runs of spaces.
pub(super) fn render_table(
    columns: &[Column],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(columns.iter().map(|c| c.header));
    for row in rows {
        table.add_row(row);
    }
    let last = columns.len().saturating_sub(1);
    for (i, (column, spec)) in table.column_iter_mut().zip(columns).enumerate() {
        column.set_padding((0, if i == last { 0 } else { 2 }));
        if spec.right {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    let mut text = String::new();
    for line in table.lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// A listing: all of `rows` as JSON for scripts (`--json`), else a table of
/// `columns` with one row of `cells` per row, for people.
pub(super) fn print_table<R: serde::Serialize>(
    rows: &[R],
    json: bool,
    columns: &[Column],
    cells: impl Fn(&R) -> Vec<String>,
) -> anyhow::Result<()> {
    if json {
        return print_json(&rows);
    }
    print_text(&render_table(columns, rows.iter().map(cells)))
}

/// The columns of an open flag (`flags`, `status`).
pub(super) const FLAG_COLUMNS: [Column; 6] = [
    left("ID"),
    left("FLAG"),
    left("STATUS"),
    left("DUE"),
    left("DUE (UTC)"),
    left("RAISED (UTC)"),
];

/// One open flag under [`FLAG_COLUMNS`], its deadline also in `zone`.
pub(super) fn flag_cells(f: &FlagRow, zone: Tz) -> Vec<String> {
    vec![
        f.issuance_id.clone(),
        f.kind.clone(),
        f.status.clone().unwrap_or_else(|| "-".into()),
        local_or_dash(f.vbank_due_at.as_deref(), zone),
        f.vbank_due_at.clone().unwrap_or_else(|| "-".into()),
        f.raised_at.clone(),
    ]
}

/// A stored instant in `zone` (`2026-12-02 23:59:59 KST`), or `-` when there is none.
pub(super) fn local_or_dash(at: Option<&str>, zone: Tz) -> String {
    at.map_or_else(|| "-".to_owned(), |at| db_local(at, zone))
}

/// Text on stdout, as it is (include the final newline).
pub(super) fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Whether `error` is, somewhere in its chain, a write to a closed pipe
/// (`issuance-watcher list | head -1`): the reader has what it wanted.
pub(super) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| {
                cause
                    .downcast_ref::<serde_json::Error>()
                    .and_then(serde_json::Error::io_error_kind)
            })
            == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// `USER@HOST` of the person running the command (`unknown` for what cannot
/// be told), for what records who did something by hand.
pub(super) fn user_at_host() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{user}@{host}")
}

/// `42 s`, `3 min`, `2 h 5 min`, `3 d 4 h`: how long ago, for a person.
pub(super) fn ago_text(seconds: i64) -> String {
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
    use std::io::{Error, ErrorKind};

    use anyhow::Context as _;

    use super::{ago_text, is_broken_pipe, left, render_table, right};

    #[test]
    fn a_table_is_as_wide_as_its_widest_cell_and_ends_no_line_in_spaces() {
        let long_id = "an-issuance-id-longer-than-twenty-characters";
        let text = render_table(
            &[left("ID"), right("AMOUNT"), left("NOTE")],
            [
                vec!["1".into(), "70,000".into(), "".into()],
                vec![long_id.into(), "5".into(), "last".into()],
            ],
        );
        let expected = format!(
            "ID{pad}  AMOUNT  NOTE\n1{pad1}  70,000\n{long_id}       5  last\n",
            pad = " ".repeat(long_id.len() - 2),
            pad1 = " ".repeat(long_id.len() - 1),
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn a_closed_pipe_is_recognised_through_context_and_json() {
        let plain = anyhow::Error::new(Error::from(ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&plain));
        let wrapped: anyhow::Result<()> =
            Err(Error::from(ErrorKind::BrokenPipe)).context("while listing");
        assert!(is_broken_pipe(&wrapped.unwrap_err()));
        let json = anyhow::Error::new(serde_json::Error::io(Error::from(ErrorKind::BrokenPipe)));
        assert!(is_broken_pipe(&json));
        let other = anyhow::Error::new(Error::from(ErrorKind::PermissionDenied));
        assert!(!is_broken_pipe(&other));
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
