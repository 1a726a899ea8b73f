//! The `simulate` subcommand: flags, an optional TOML file for the full
//! [`SimConfig`], and a serve-until-shutdown loop.
//!
//! Precedence: built-in defaults < `--config FILE` < flags. Without a file,
//! `one_ready_per_key` is on (like the real API); with a file, the file decides
//! (its default is off, for bulk and load use) unless `--one-ready-per-key` is given.
//!
//! ```text
//! issuance-watcher simulate --listen 127.0.0.1:8080 --speed 3600 --seed 7 --seed-issuances 1000
//! ```
//! Sign tokens with [`DEMO_ACCESS_KEY`] and [`DEMO_SECRET_KEY`] (Base64: sign with the decoded bytes).

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use super::{SimConfig, Simulator};

/// The demo access key the simulator accepts by default.
pub const DEMO_ACCESS_KEY: &str = "demo-access-key";
/// The demo secret key, as issued (Base64 of `issuance-watcher-demo-secret-key!`).
/// Sign with its decoded bytes, not with this text.
pub const DEMO_SECRET_KEY: &str = "aXNzdWFuY2Utd2F0Y2hlci1kZW1vLXNlY3JldC1rZXkh";

/// Runs a Bunjang Open API simulator (Point endpoints) for demos and tests.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Access key accepted in the `accessKey` claim [default: demo-access-key].
    #[arg(long, env = "SIM_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// Secret key as issued (Base64 text) [default: the demo secret].
    #[arg(long, env = "SIM_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Simulated seconds per real second (3600: an hour per second) [default: 1].
    #[arg(long)]
    pub speed: Option<f64>,
    /// Seed of every random draw [default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// How long after `iat` a token is accepted, e.g. 5s or 30s [default: 5s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub token_window: Option<Duration>,
    /// A *simulator* configuration file (TOML; not the watcher's --config): speed, seed,
    /// lifecycle, faults... Every key is optional; `simulate --print-config` prints them
    /// all with their defaults, and the README (Try it locally) describes the format.
    #[arg(long, value_name = "SIMULATOR_FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective simulator configuration (defaults, the file, the flags) as
    /// TOML, a starting point for --config, and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Create this many issuances at start (their ids are not printed).
    #[arg(long, default_value_t = 0)]
    pub seed_issuances: usize,
    /// Refuse a new charge while the previous one is WAITED or READY (true/false).
    #[arg(long)]
    pub one_ready_per_key: Option<bool>,
    /// A fixed token accepted without JWT checks (for load generators).
    #[arg(long)]
    pub static_token: Option<String>,
    /// Record every request's arrival (GET /_sim/requests).
    #[arg(long)]
    pub record_requests: bool,
}

impl SimulateArgs {
    /// The effective configuration: defaults, then the file, then the flags.
    pub fn to_config(&self) -> anyhow::Result<SimConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<SimConfig>(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => SimConfig {
                one_ready_per_key: true,
                ..SimConfig::default()
            },
        };
        if let Some(v) = &self.access_key {
            config.access_key = v.clone();
        }
        if let Some(v) = &self.secret_key {
            config.secret_key = v.clone();
        }
        if let Some(v) = self.speed {
            anyhow::ensure!(
                v.is_finite() && v > 0.0,
                "--speed must be a positive number"
            );
            config.speed = v;
        }
        if let Some(v) = self.seed {
            config.seed = v;
        }
        if let Some(v) = self.token_window {
            config.token_window = v;
        }
        if let Some(v) = self.one_ready_per_key {
            config.one_ready_per_key = v;
        }
        if let Some(v) = &self.static_token {
            config.static_token = Some(v.clone());
        }
        config.record_requests |= self.record_requests;
        // The file's `speed` too: the clock would silently fall back to real
        // time while the start-up line announced the number given.
        anyhow::ensure!(
            config.speed.is_finite() && config.speed > 0.0,
            "speed must be a positive number (simulated seconds per real second), not {}",
            config.speed
        );
        Ok(config)
    }
}

/// Serves until `shutdown` resolves, printing the address once listening.
pub async fn run(args: SimulateArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    serve_until(args, |_| shutdown).await
}

/// [`run`], with the shutdown future made from the base URL once listening
/// (so a caller that asked for port 0 can reach the simulator).
async fn serve_until<F, Fut>(args: SimulateArgs, shutdown: F) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let config = args.to_config()?;
    let mut out = std::io::stdout();
    if args.print_config {
        let mut shown = config.clone();
        if shown.secret_key != DEMO_SECRET_KEY {
            shown.secret_key = "[REDACTED]".to_owned();
        }
        let text = toml::to_string_pretty(&shown).context("rendering the configuration")?;
        return Ok(write!(out, "{text}").and_then(|()| out.flush())?);
    }
    let speed = config.speed;
    let sim = Simulator::start(config, args.listen).await?;
    // Never `println!`: a closed stdout must not panic a running simulator.
    if args.seed_issuances > 0 {
        let ids = sim.try_seed(args.seed_issuances, None)?;
        if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
            let _ = writeln!(out, "seeded {} issuances, ids {first} to {last}", ids.len());
        }
    }
    let _ = writeln!(
        out,
        "simulator listening on {} (speed {speed})",
        sim.base_url()
    );
    if speed != 1.0 {
        let _ = writeln!(
            out,
            "time runs {speed}x faster than real time: start the watcher with \
             `issuance-watcher --config config/local.toml run --follow-simulator-clock`"
        );
    }
    let _ = out.flush();
    shutdown(sim.base_url()).await;
    sim.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn parse(argv: &[&str]) -> SimulateArgs {
        Cli::try_parse_from(std::iter::once("sim").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn defaults_are_the_demo_credentials_and_one_open_charge() {
        let config = parse(&[]).to_config().unwrap();
        assert_eq!(config.access_key, DEMO_ACCESS_KEY);
        assert_eq!(config.secret_key, DEMO_SECRET_KEY);
        assert!(config.one_ready_per_key);
        assert_eq!(parse(&[]).listen, "127.0.0.1:8080".parse().unwrap());
    }

    #[test]
    fn flags_override_the_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(
            &mut file,
            b"speed = 60.0\nseed = 1\n[faults.hang]\nrate = 0.5\n",
        )
        .unwrap();
        let path = file.path().to_str().unwrap();
        let config = parse(&["--config", path, "--seed", "9", "--token-window", "30s"])
            .to_config()
            .unwrap();
        assert_eq!(config.speed, 60.0);
        assert_eq!(config.seed, 9);
        assert_eq!(config.token_window, Duration::from_secs(30));
        assert_eq!(config.faults.hang.rate, 0.5);
        assert!(!config.one_ready_per_key);
    }

    #[test]
    fn nonsense_speed_is_refused() {
        assert!(parse(&["--speed", "0"]).to_config().is_err());
        for speed in ["0.0", "-5.0", "nan", "inf"] {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            std::io::Write::write_all(&mut file, format!("speed = {speed}\n").as_bytes()).unwrap();
            let refused = parse(&["--config", file.path().to_str().unwrap()]).to_config();
            let error = format!("{:#}", refused.unwrap_err());
            assert!(
                error.contains("speed must be a positive number"),
                "{speed}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn run_serves_the_seeded_issuances_until_shutdown() {
        let args = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--seed-issuances",
            "3",
            "--static-token",
            "cli-test-token",
        ]);
        let client = reqwest::Client::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        serve_until(args, |base: String| {
            let client = client.clone();
            async move {
                let truth = client
                    .get(format!("{base}/_sim/ground-truth"))
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                let truth: Vec<serde_json::Value> = serde_json::from_slice(&truth).unwrap();
                let mut ids: Vec<String> = truth
                    .iter()
                    .map(|e| e["issuanceId"].as_str().unwrap().to_owned())
                    .collect();
                ids.dedup();
                assert_eq!(ids.len(), 3, "the seeded issuances: {truth:?}");
                let lookup = format!("{base}/api/v1/points/issuance/{}", ids[0]);
                let answer = client
                    .get(&lookup)
                    .bearer_auth("cli-test-token")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), 200);
                let body: serde_json::Value =
                    serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
                assert_eq!(body["data"]["id"].as_str(), Some(ids[0].as_str()), "{body}");
                let refused = client.get(&lookup).send().await.unwrap();
                assert_eq!(refused.status(), 401, "the API still wants a token");
                tx.send(lookup).unwrap();
            }
        })
        .await
        .unwrap();
        let lookup = rx.await.unwrap();
        assert!(
            client.get(&lookup).send().await.is_err(),
            "nothing listens after shutdown"
        );
    }
}
