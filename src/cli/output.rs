//! Output shared by the commands. Everything goes through `write!` on a locked
//! stdout, never `println!` (which panics when the reader has gone away), and a
//! closed pipe ends the command quietly with success ([`is_broken_pipe`]).

use std::io::Write;

use crate::store::FlagRow;

/// Pretty JSON on stdout, for scripts.
pub(super) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A listing: all of `rows` as JSON for scripts (`--json`), else `header` and
/// one `line` a row, for people.
pub(super) fn print_table<R: serde::Serialize>(
    rows: &[R],
    json: bool,
    header: &str,
    line: impl Fn(&R) -> String,
) -> anyhow::Result<()> {
    if json {
        return print_json(&rows);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{header}")?;
    for row in rows {
        writeln!(out, "{}", line(row))?;
    }
    Ok(())
}

/// The columns of an open flag (`flags`, `status`), with `due` naming the
/// deadline column; `status_width` wide enough for the statuses around it.
pub(super) fn flag_header(status_width: usize, due: &str) -> String {
    format!(
        "{:<20} {:<9} {:<status_width$} {due:<24} RAISED",
        "ID", "FLAG", "STATUS"
    )
}

/// One open flag under [`flag_header`].
pub(super) fn flag_line(f: &FlagRow, status_width: usize) -> String {
    format!(
        "{:<20} {:<9} {:<status_width$} {:<24} {}",
        f.issuance_id,
        f.kind,
        f.status.as_deref().unwrap_or("-"),
        f.vbank_due_at.as_deref().unwrap_or("-"),
        f.raised_at
    )
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

    use super::{ago_text, is_broken_pipe};

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
