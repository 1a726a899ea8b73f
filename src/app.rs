//! The composition root: builds the running daemon from its settings (store,
//! watcher, liveness, notifier, background tasks, webhook delivery workers), runs it until `shutdown`
//! resolves, and takes it down in order (loop, then tasks, then the pool).
//! Shutdown is a parameter: the CLI passes [`shutdown_signal`], tests pass
//! whatever future they like.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::domain::Clock;
use crate::ops::health::Liveness;
use crate::ops::notify::Notifier;
use crate::settings::Settings;
use crate::store::{Access, Store};
use crate::watcher::Watcher;

/// Opens the database the settings name for `access`: only `run` and `migrate`
/// create or upgrade it ([`Access`]). No default on purpose: a new command
/// must say what it does to the file.
pub async fn open_store(settings: &Settings, access: Access) -> anyhow::Result<Store> {
    Store::open_for(&settings.database, access)
        .await
        .with_context(|| format!("while opening the database {}", settings.database.shown()))
}

/// Runs the daemon on the wall clock until `shutdown` resolves.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    run_on(settings, Clock::real(), shutdown).await
}

/// [`run`], on the given business clock (the simulator's, for
/// `run --follow-simulator-clock`).
pub async fn run_on(
    settings: Settings,
    clock: Clock,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    settings
        .validate_credentials()
        .context("while checking the credentials")?;
    let sinks = crate::deliver::Sinks::from_settings(&settings)
        .context("while setting up the webhook sinks")?;
    let store = open_store(&settings, Access::Migrate).await?;
    let listener = crate::ops::http::bind(&settings.http).await?;
    // Read before `READY=1`: an unreadable token file fails the start.
    let admin = settings
        .admin_token()
        .context("while reading the dashboard's admin token")?;
    let dashboard = listener.as_ref().map(|_| {
        crate::web::router(crate::web::Dashboard::new(
            store.clone(),
            settings.clone(),
            admin,
        ))
    });
    let stall_after = Liveness::stall_after(&settings);
    let settings_timeout = settings.api.timeout;
    let watcher =
        Watcher::new(settings, store.clone(), clock).context("while building the API client")?;
    let liveness = Liveness::new(watcher.progress(), stall_after);
    // Before the first poll, so that every event of this run reaches new sinks.
    sinks
        .register(&store, &watcher.progress())
        .await
        .context("while registering the webhook sinks")?;
    let notifier = Arc::new(Notifier::from_env());
    let background = CancellationToken::new();
    let tasks = crate::ops::tasks::start(
        listener,
        dashboard,
        store.clone(),
        liveness,
        notifier.clone(),
        sinks.retentions(),
        background.clone(),
    );
    let deliveries = sinks.start(&store, &watcher.progress(), &background);
    tracing::info!("issuance-watcher started");
    notifier.ready("started".to_owned()).await;
    // Charge requests from the database and balance polls, beside the polls.
    let requests = {
        let watcher = watcher.clone();
        let stop = background.clone();
        tokio::spawn(async move { watcher.run_requests(stop).await })
    };
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
    // A charge POST in flight is answered (or times out) before its outcome
    // is recorded: wait for that, or the request would end `unknown`.
    let request_wait = settings_timeout + Duration::from_secs(2);
    if tokio::time::timeout(request_wait, requests).await.is_err() {
        tracing::warn!("a charge request was still in flight at exit: it will show as `unknown`");
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        tasks.wait().await;
        deliveries.wait().await;
    })
    .await;
    // A statement still waiting for another program's lock (abandoned at
    // shutdown) would hold the close up to the busy timeout: the process is
    // leaving, and SQLite needs no close to stay consistent.
    if tokio::time::timeout(Duration::from_secs(1), store.close())
        .await
        .is_err()
    {
        tracing::debug!("database connections still busy at exit; leaving them");
    }
    result.context("while watching")?;
    tracing::info!("issuance-watcher stopped");
    Ok(())
}

/// Resolves on SIGTERM, SIGINT or SIGHUP. SIGHUP is a graceful stop like
/// SIGTERM, not a reload (settings are read at start: restart to apply new
/// ones): a closed terminal or a stray `kill -HUP` must not kill the daemon
/// mid-write and strand its claims.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let other = async {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(mut term), Ok(mut hup)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = hup.recv() => tracing::info!("SIGHUP: stopping as for SIGTERM (restart to apply new settings)"),
                }
            }
            _ => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let other = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = other => {},
    }
}
