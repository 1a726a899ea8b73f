//! The command line: parse, load settings, dispatch. Errors reach the user here
//! as one `error:` line with their context chain, and a non-zero exit code.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::scheduler::Watcher;
use crate::settings::{LogFormat, Settings};
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "issuance-watcher",
    version,
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
    Run,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Validate the configuration and print the effective settings (secret redacted).
    CheckConfig,
    /// Start watching issuance ids (arguments, or one per line on stdin).
    Add { ids: Vec<String> },
    /// List issuances.
    List {
        /// Only this status (WAITED, READY, DONE, CANCELLED, FAIL, or UNSEEN).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show one issuance with its transitions and flags.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Open DUE_SOON / OVERDUE flags.
    Flags {
        #[arg(long)]
        json: bool,
    },
    /// Serve the Bunjang point-API simulator (for trying the watcher without credentials).
    Simulate(crate::simulator::cli::SimulateArgs),
    /// The whole job in about a minute: simulator, charges, watcher, ground-truth check.
    Demo(crate::demo::DemoArgs),
}

/// Entry point used by `main.rs`.
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
            crate::telemetry::init(LogFormat::Text, std::io::stderr);
            return crate::simulator::cli::run(args, shutdown_signal()).await;
        }
        Command::Demo(args) => {
            crate::telemetry::init_quiet();
            return crate::demo::run(args, shutdown_signal()).await;
        }
        _ => {}
    }
    let settings = load_settings(&cli)?;
    crate::telemetry::init(settings.log.format, std::io::stderr);
    match cli.command {
        Command::Run => run(settings, shutdown_signal()).await,
        Command::CheckConfig => {
            settings
                .validate_credentials()
                .context("while checking the credentials")?;
            print!("{}", settings.to_redacted_toml());
            Ok(())
        }
        Command::Migrate => {
            open_store(&settings).await?;
            println!(
                "database {} is up to date",
                settings.database.path.display()
            );
            Ok(())
        }
        Command::Add { ids } => add(&settings, ids).await,
        Command::List {
            status,
            limit,
            json,
        } => list(&settings, status, limit, json).await,
        Command::Show { id, json } => show(&settings, &id, json).await,
        Command::Flags { json } => flags(&settings, json).await,
        Command::Simulate(_) | Command::Demo(_) => {
            bail!("internal error: this command was dispatched above")
        }
    }
}

async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    Store::open_migrated(&settings.database)
        .await
        .with_context(|| {
            format!(
                "while opening the database {}",
                settings.database.path.display()
            )
        })
}

/// Runs the daemon until `shutdown` resolves.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    settings
        .validate_credentials()
        .context("while checking the credentials")?;
    let store = open_store(&settings).await?;
    let listener = crate::observe::bind(&settings.http).await?;
    let stall_after = crate::observe::Liveness::stall_after(&settings);
    let watcher = Watcher::new(settings, store.clone(), Clock::real())
        .context("while building the API client")?;
    let liveness = crate::observe::Liveness::new(watcher.progress(), stall_after);
    let notifier = std::sync::Arc::new(crate::notify::Notifier::from_env());
    let background = CancellationToken::new();
    let tasks = crate::observe::start(
        listener,
        store.clone(),
        liveness,
        notifier.clone(),
        background.clone(),
    );
    tracing::info!("issuance-watcher started");
    notifier.ready("started".to_owned()).await;
    let token = CancellationToken::new();
    let loop_token = token.clone();
    let mut watching = std::pin::pin!(async move { watcher.run(loop_token).await });
    let result = tokio::select! {
        result = &mut watching => result,
        () = shutdown => {
            notifier.stopping().await;
            token.cancel();
            watching.await
        }
    };
    background.cancel();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), tasks.wait()).await;
    store.close().await;
    result.context("while watching")?;
    tracing::info!("issuance-watcher stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn add(settings: &Settings, mut ids: Vec<String>) -> anyhow::Result<()> {
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
    let store = open_store(settings).await?;
    let added = store.add_ids(&ids).await.context("while adding ids")?;
    println!(
        "{added} added, {} already watched",
        ids.len() as u64 - added
    );
    Ok(())
}

async fn list(
    settings: &Settings,
    status: Option<String>,
    limit: i64,
    json: bool,
) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let status = status.map(|s| s.to_uppercase());
    let rows = store.list(status.as_deref(), limit).await?;
    if json {
        return print_json(&rows);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<20} {:<10} {:>10} {:<24} {:<10} {:>5}  LAST ERROR",
        "ID", "STATUS", "AMOUNT", "DUE (UTC)", "WATCH", "POLLS"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<20} {:<10} {:>10} {:<24} {:<10} {:>5}  {}",
            r.id,
            r.status.as_deref().unwrap_or("-"),
            r.amount
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
            r.vbank_due_at.as_deref().unwrap_or("-"),
            r.watch,
            r.polls,
            r.last_error.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}

async fn show(settings: &Settings, id: &str, json: bool) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let Some(issuance) = store.issuance(id).await? else {
        bail!("issuance {id:?} is not in the database");
    };
    let transitions = store.transitions_of(id).await?;
    let flags = store.flags(Some(id)).await?;
    if json {
        return print_json(
            &serde_json::json!({ "issuance": issuance, "transitions": transitions, "flags": flags }),
        );
    }
    let mut out = std::io::stdout().lock();
    let fields = serde_json::to_value(&issuance)?;
    if let serde_json::Value::Object(map) = fields {
        for (key, value) in map {
            let shown = match value {
                serde_json::Value::Null => "-".to_owned(),
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            writeln!(out, "{key:<22} {shown}")?;
        }
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

/// Pretty JSON on stdout, for scripts.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

async fn flags(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let rows = store.flags(None).await?;
    if json {
        return print_json(&rows);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<20} {:<9} {:<10} {:<24} RAISED",
        "ID", "FLAG", "STATUS", "DUE (UTC)"
    )?;
    for f in rows {
        writeln!(
            out,
            "{:<20} {:<9} {:<10} {:<24} {}",
            f.issuance_id,
            f.kind,
            f.status.as_deref().unwrap_or("-"),
            f.vbank_due_at.as_deref().unwrap_or("-"),
            f.raised_at
        )?;
    }
    Ok(())
}
