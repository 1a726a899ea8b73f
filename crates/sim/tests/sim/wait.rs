//! The one way a test waits for something to happen: poll a check until it
//! gives a value, give up at a deadline, and fail saying what was awaited and
//! what was last seen. Shared with the watcher's tests (`tests/it/common`, as
//! `common::wait`, re-exported by `common::running`), as `client.rs` is.
//!
//! A check answers `Ok(value)` when what is awaited has happened, or
//! `Err(what it saw)`. A sleep in a test is for letting time pass on purpose
//! (a window in which nothing may happen); waiting for something goes here.

use std::time::{Duration, Instant};

/// How often a wait looks again, unless told otherwise.
pub const EVERY: Duration = Duration::from_millis(25);

/// How long [`eventually`] waits.
pub const EVENTUALLY: Duration = Duration::from_secs(15);

/// Polls `check` every `every` until it gives a value, and returns it; once
/// `limit` has passed, returns an error saying what was awaited and what the
/// check last saw (its `Err`). A check still running at the deadline is cut
/// short. For a caller that has something to clean up, or to add, before it
/// fails the test; the others use [`wait_for`].
pub async fn poll<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + limit;
    let mut seen = "nothing: no check finished".to_owned();
    loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(every);
        match tokio::time::timeout(left, check()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(now)) => seen = now,
            Err(_) => seen = format!("{seen} (then a check still unfinished at the deadline)"),
        }
        if Instant::now() >= deadline {
            return Err(timed_out(what, limit, &seen));
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls `check` every 25 ms until it gives a value, and returns it; panics
/// after `limit` saying what was awaited and what `check` last saw (its `Err`).
pub async fn wait_for<T>(
    what: &str,
    limit: Duration,
    check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    poll(what, limit, EVERY, check)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `condition` every 25 ms until it holds; panics after 15 s.
pub async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let mut checks = 0u32;
    wait_for(what, EVENTUALLY, async || {
        checks += 1;
        if condition().await {
            Ok(())
        } else {
            Err(format!("the condition false at each of {checks} checks"))
        }
    })
    .await
}

/// [`poll`] for a caller that blocks its thread (no runtime, or a blocking
/// task): the same contract, but a check cannot be cut short.
pub fn poll_blocking<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(seen) if Instant::now() >= deadline => return Err(timed_out(what, limit, &seen)),
            Err(_) => std::thread::sleep(every),
        }
    }
}

/// [`wait_for`] for a caller that blocks its thread.
pub fn wait_for_blocking<T>(
    what: &str,
    limit: Duration,
    check: impl FnMut() -> Result<T, String>,
) -> T {
    poll_blocking(what, limit, EVERY, check).unwrap_or_else(|e| panic!("{e}"))
}

fn timed_out(what: &str, limit: Duration, seen: &str) -> String {
    format!("timed out after {limit:?} waiting for {what}; last seen: {seen}")
}
