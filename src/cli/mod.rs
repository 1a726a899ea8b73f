//! The command line: parse, load settings, dispatch to [`crate::app`] (the
//! daemon) or to a `commands` function. Errors reach the user here
//! as one `error:` line with their context chain, and a non-zero exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

use crate::app::shutdown_signal;

use crate::settings::{LogFormat, Settings};

mod attention;
mod charge;
mod clock;
mod commands;
mod events;
mod generate;
mod output;
mod replay;
mod show;
mod sinks;
mod status;
mod top_up;

/// `--version`: the package version and the commit it was built from (build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ISSUANCE_WATCHER_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "issuance-watcher",
    version = VERSION,
    about = "Watches Bunjang point issuances until they settle"
)]
pub struct Cli {
    /// Configuration file (TOML). Default: /etc/issuance-watcher/config.toml if it exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format: text or json (overrides log.format).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the watcher in the foreground until SIGTERM or SIGINT.
    Run {
        /// Follow the clock of the simulator at api.base_url (`simulate --speed N`), read
        /// from its GET /_sim/clock at start. Without it, `run` refuses to start against a
        /// simulator whose time runs faster than real time.
        #[arg(long)]
        follow_simulator_clock: bool,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Validate the configuration (every problem at once) and print the effective
    /// settings, saying where the secret key was found without showing it.
    CheckConfig,
    /// Start watching issuance ids (arguments, or one per line on stdin).
    Add {
        /// Issuance ids as Bunjang returned them; none or `-`: read one per line from stdin.
        ids: Vec<String>,
    },
    /// List issuances, oldest added first.
    List {
        /// Only issuances with this last seen status (UNSEEN: not answered yet).
        #[arg(long, ignore_case = true, value_parser = ["WAITED", "READY", "DONE", "CANCELLED", "FAIL", "UNSEEN"])]
        status: Option<String>,
        /// At most this many rows (the table says when it stopped there).
        #[arg(long, default_value_t = 1000, value_parser = limit)]
        limit: i64,
        /// Print JSON (an array of rows with the database's column names) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one issuance with its transitions and flags.
    Show {
        /// The issuance id.
        id: String,
        /// Print JSON (`issuance`, `transitions`, `flags`) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Open DUE_SOON / OVERDUE flags.
    Flags {
        /// Print JSON (an array of flags) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One screen for a person on the host: what needs attention first, daemon
    /// alive, active issuances, open flags, last successful poll, errors in the
    /// last hour, webhook sinks' health and backlog (from the database).
    Status {
        /// Print JSON (the same facts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Events of the outbox (`--after SEQ`, `--follow`, `--json`), deliveries
    /// that need a person (`--failed`), `redeliver SEQ...` and `discard --sink NAME`.
    Events(events::EventsArgs),
    /// Webhook sinks with their health and backlog; `disable NAME` / `enable NAME`
    /// stop and resume sending to one (a running daemon follows within seconds).
    Sinks(sinks::SinksArgs),
    /// Ask Bunjang for a charge of AMOUNT KRW and print the account to pay into.
    Charge {
        /// A positive whole number of KRW, at most charge.max_amount.
        #[arg(allow_hyphen_values = true)]
        amount: String,
        /// Send even while a charge is open here (WAITED or READY).
        #[arg(long)]
        force: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a READY charge.
    Cancel {
        /// The issuance id.
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Show the point balance and the points expiring within 30 days.
    Balance {
        #[arg(long)]
        json: bool,
    },
    /// List charge requests (charge_requests), newest first; `resolve N`
    /// says what became of a request of unknown outcome.
    Charges(charge::ChargesArgs),
    /// The top-up rule's state (on/off/suspended and why, today's and this month's
    /// use against the caps, the open charge, the last decision); `resume` lets a
    /// suspended rule ask for charges again.
    TopUp(top_up::TopUpArgs),
    /// Serve the Bunjang point-API simulator (for trying the watcher without credentials).
    Simulate(bunjang_sim::cli::SimulateArgs),
    /// The whole job in about a minute: simulator, charges, watcher, ground-truth check.
    Demo(crate::tools::demo::DemoArgs),
    /// Write shell completions or man pages (for packaging).
    #[command(subcommand, hide = true)]
    Generate(generate::Generate),
}

/// `--limit N`: a row count, from 1 (clap's own range check would name
/// `i64::MAX` as the upper bound).
pub(super) fn limit(text: &str) -> Result<i64, String> {
    match text.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number of rows, at least 1".to_owned()),
    }
}

/// Entry point used by `main.rs`. Exit codes: 0 success, 1 failure (one
/// `error:` line), 2 a usage error (clap's: its `error:` line, then a hint).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // `list | head -1`: the reader has all it wanted; that is a normal end.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_settings(cli: &Cli) -> anyhow::Result<Settings> {
    let mut settings =
        Settings::load(cli.config.as_deref()).context("while loading the configuration")?;
    if let Some(format) = cli.log_format {
        settings.log.format = match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    Ok(settings)
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    // The simulator and the demo bring their own settings: no configuration needed.
    match cli.command {
        Command::Simulate(args) => {
            crate::ops::telemetry::init_stderr(LogFormat::Text);
            return bunjang_sim::cli::run(args, shutdown_signal()).await;
        }
        Command::Demo(args) => {
            crate::ops::telemetry::init_quiet();
            return crate::tools::demo::run(args, shutdown_signal()).await;
        }
        Command::Generate(what) => {
            let files = generate::run(&what, <Cli as clap::CommandFactory>::command())?;
            let list: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
            return output::print_text(&list);
        }
        _ => {}
    }
    let settings = load_settings(&cli)?;
    crate::ops::telemetry::init_stderr(settings.log.format);
    match cli.command {
        Command::Run {
            follow_simulator_clock,
        } => {
            // Listening for SIGTERM from the start: a stop during the clock question
            // at start-up is a clean exit, not death by signal.
            let shutdown = shutdown_signal();
            tokio::pin!(shutdown);
            let clock = tokio::select! {
                () = &mut shutdown => return Ok(()),
                clock = clock::choose(&settings, follow_simulator_clock) => clock?,
            };
            crate::app::run_on(settings, clock, shutdown).await
        }
        Command::CheckConfig => {
            // The credentials' and every sink's problems reported together.
            let (source, sinks) = match (
                settings.secret_source(),
                crate::deliver::Sinks::from_settings(&settings),
            ) {
                (Ok(source), Ok(sinks)) => (source, sinks),
                (Err(e), Ok(_)) => return Err(e).context("while checking the credentials"),
                (Ok(_), Err(e)) => return Err(e).context("while checking the webhook sinks"),
                (Err(a), Err(b)) => {
                    return Err(a.and(b))
                        .context("while checking the credentials and the webhook sinks");
                }
            };
            // TOML comments, so that the output stays a usable configuration file.
            let mut head = format!(
                "# The configuration is valid. Secret key: {source} (not shown).\n\
                 # Database: {}.\n",
                settings.database.engine_shown()
            );
            head.push_str(&format!(
                "# Top-up: {}.\n",
                settings.top_up.describe(settings.balance.interval)
            ));
            for (name, note) in sinks.secret_sources(chrono::Utc::now()) {
                head.push_str(&format!("# Webhook sink {name}: {note}.\n"));
            }
            match settings
                .admin_token()
                .context("while checking the dashboard's admin token")?
            {
                Some(token) => head.push_str(&format!(
                    "# Dashboard admin token: {} (not shown).\n",
                    token.source
                )),
                None => head.push_str("# Dashboard: read-only (no http.admin_token_file).\n"),
            }
            output::print_text(&format!("{head}{}", settings.to_redacted_toml()))
        }
        Command::Migrate => {
            // Said apart, so that a typo in `database.path` does not pass for an upgrade.
            let existed = crate::store::Store::exists(&settings.database);
            let path = settings.database.shown();
            let migrated = async {
                let store = crate::store::Store::open_to_migrate(&settings.database).await?;
                store.migrate().await
            }
            .await
            .with_context(|| format!("while migrating the database {path}"))?;
            let to = migrated.to;
            output::print_text(&if !existed || migrated.from == 0 {
                format!("database {path} created with the current schema ({to})\n")
            } else if migrated.from == to {
                format!("database {path} is up to date (schema {to})\n")
            } else {
                format!(
                    "database {path} upgraded from schema {} to {to}\n",
                    migrated.from
                )
            })
        }
        Command::Add { ids } => commands::add(&settings, ids).await,
        Command::List {
            status,
            limit,
            json,
        } => commands::list(&settings, status, limit, json).await,
        Command::Show { id, json } => commands::show(&settings, &id, json).await,
        Command::Flags { json } => commands::flags(&settings, json).await,
        Command::Status { json } => status::status(&settings, json).await,
        Command::Events(args) => events::run(&settings, args, shutdown_signal()).await,
        Command::Sinks(args) => sinks::run(&settings, args).await,
        Command::Charge {
            amount,
            force,
            json,
        } => charge::charge(&settings, &amount, force, json).await,
        Command::Cancel { id, yes } => charge::cancel(&settings, &id, yes).await,
        Command::Balance { json } => charge::balance(&settings, json).await,
        Command::Charges(args) => charge::charges(&settings, args).await,
        Command::TopUp(args) => top_up::run(&settings, args).await,
        Command::Simulate(_) | Command::Demo(_) | Command::Generate(_) => {
            bail!("internal error: this command was dispatched above")
        }
    }
}
