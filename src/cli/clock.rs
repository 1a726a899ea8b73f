//! Which business clock `run` uses: the wall clock, or (when told to with
//! `--follow-simulator-clock`) the clock of the simulator it polls.
//!
//! A real-time watcher against `simulate --speed N` would stall silently (the
//! simulator's deadlines and settlements run N times ahead of the watcher's
//! schedule), so without the flag `run` refuses that combination: it asks a
//! loopback `api.base_url` for the simulator's clock, and starts only if there
//! is none or it runs in real time.

use std::time::Duration;

use anyhow::bail;

use crate::api::simclock;
use crate::domain::Clock;
use crate::settings::Settings;

/// How long the start-up question to a loopback API may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) async fn choose(settings: &Settings, follow: bool) -> anyhow::Result<Clock> {
    let base = settings.api.base_url.as_str();
    if !follow {
        if simclock::is_loopback(base)
            && let Ok(Some(sim)) = simclock::probe(base, PROBE_TIMEOUT).await
            && sim.is_accelerated()
        {
            bail!(
                "the simulator at {base} runs time {}x faster than real time, and a watcher on \
                 the real clock would schedule its polls far too late (it would look stalled): \
                 start it with `run --follow-simulator-clock`, or restart `simulate` without --speed",
                sim.speed
            );
        }
        return Ok(Clock::real());
    }
    match simclock::probe(base, PROBE_TIMEOUT).await {
        Ok(Some(sim)) => {
            tracing::info!(
                speed = sim.speed,
                simulated_now = %sim.now,
                "following the simulator's clock"
            );
            Ok(sim.to_clock())
        }
        Ok(None) => bail!(
            "--follow-simulator-clock: {base} is not the bundled simulator (its GET /_sim/clock \
             did not answer as the simulator does)"
        ),
        Err(e) => bail!(
            "--follow-simulator-clock: cannot reach the simulator at {base} ({e}): start \
             `issuance-watcher simulate` first"
        ),
    }
}
