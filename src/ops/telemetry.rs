//! Logging setup, in one place: `RUST_LOG` wins, otherwise info for us and warn
//! for noisy dependencies. Under journald (detected by `JOURNAL_STREAM`) lines
//! carry no timestamp of their own and no colours: journald adds both.
//! Colours only ever go to a terminal, and never when `NO_COLOR` is set
//! (<https://no-color.org>): a log file full of escape codes is unreadable.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::settings::LogFormat;

pub const DEFAULT_FILTER: &str = "info,sqlx=warn,hyper=warn,reqwest=warn,h2=warn,rustls=warn";

/// Whether log lines may carry ANSI colours: only on a terminal, never under
/// journald (it stores the codes verbatim) or with `NO_COLOR` set to anything non-empty.
pub fn use_colour(
    terminal: bool,
    under_journald: bool,
    no_color: Option<&std::ffi::OsStr>,
) -> bool {
    terminal && !under_journald && no_color.is_none_or(|v| v.is_empty())
}

/// Colours for standard error, decided from the environment.
fn stderr_colour() -> bool {
    use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("JOURNAL_STREAM").is_some(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// Installs the global subscriber writing to standard error.
/// Calling it twice is harmless: the second call is ignored.
pub fn init_stderr(format: LogFormat) {
    init(format, std::io::stderr, stderr_colour());
}

/// Installs the global subscriber writing to `writer` (a sink in tests), with
/// colours only if `colour`. Calling it twice is harmless: the second call is ignored.
pub fn init<W>(format: LogFormat, writer: W, colour: bool)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(colour);
    let _ = match (format, under_journald) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder.without_time().try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
}

/// Warnings and errors only (the demo prints its own progress); `RUST_LOG` still wins.
pub fn init_quiet() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_colour())
        .try_init();
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::use_colour;

    #[test]
    fn colours_only_on_a_terminal_outside_journald_without_no_color() {
        assert!(use_colour(true, false, None));
        assert!(
            !use_colour(false, false, None),
            "a redirected stderr gets no colours"
        );
        assert!(
            !use_colour(true, true, None),
            "journald stores escape codes verbatim"
        );
        assert!(!use_colour(true, false, Some(OsStr::new("1"))));
        // no-color.org: an empty NO_COLOR does not count.
        assert!(use_colour(true, false, Some(OsStr::new(""))));
    }
}
