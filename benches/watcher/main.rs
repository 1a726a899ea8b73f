//! The project's benchmarks, in one command that prints one table:
//!
//! ```text
//! cargo bench --bench watcher                      # all six, full size (efficiency ~8 min)
//! cargo bench --bench watcher -- --quick           # smaller and shorter (~1.5 min)
//! cargo bench --bench watcher -- throughput scale  # only some: throughput, scale, write, efficiency, deliver, hosts
//! cargo bench --bench watcher -- --concurrency 128 # daemon concurrency (and wrk connections) in `throughput`
//! ```
//!
//! 1. `throughput`: a child `issuance-watcher simulate` (no rate limit, 100,000
//!    READY issuances) against a child `issuance-watcher run` polling as fast as
//!    it can; the same simulator's ceiling on the same endpoint with `wrk` and a
//!    static token (row skipped when `wrk` is not installed). CPU per poll is the
//!    daemon's user+sys time from `/proc/PID/stat`.
//! 2. `scale`: 1,000,000 issuances (900,000 settled with their transitions and
//!    flags, 100,000 active), bulk-generated in SQL; the daemon's memory, the time
//!    from its start to the first request at the simulator, the cost of one claim
//!    tick (`claim_due` + `next_due`) at 10k, 100k, 900k and 1M settled rows, and
//!    database bytes per issuance.
//! 3. `write`: `Store::record` with batches of 256 results that are all transitions.
//! 4. `efficiency`: the trade-off of the polling cadence. A sweep of the real
//!    policy function over the simulator's drawn schedules (new shape scaled,
//!    previous shape scaled, fixed intervals): lookups per paid charge against
//!    DONE and WAITED detection lag, as table rows and `benches/watcher/efficiency.svg`
//!    (written by the full run only); then the daemon end to end with the
//!    production defaults at 300x (calls, lag, exactly-once, DUE_SOON on time;
//!    `--quick`: the first 6 h) and WAITED at real speed.
//! 5. `deliver`: webhook delivery to a loopback receiver: latency from commit
//!    to the receiver's 2xx, and the drain of a backlog written at once.
//! 6. `hosts`: the `throughput` set-up with 1, 2 and 3 daemons on one database
//!    (several hosts, here sharing one machine's cores).

mod dashboard;
mod deliver;
mod efficiency;
mod harness;
mod hosts;
mod plot;
mod scale;
mod sweep;
mod table;
mod throughput;
mod write;

use std::time::Instant;

use anyhow::{Context as _, bail};
use chrono::Utc;

use crate::harness::machine_line;
use crate::table::{Table, Verdict};

#[derive(Debug, Clone)]
pub(crate) struct Opts {
    pub(crate) quick: bool,
    pub(crate) only: Vec<String>,
    pub(crate) concurrency: usize,
}

impl Opts {
    fn parse() -> anyhow::Result<Self> {
        let mut opts = Opts {
            quick: false,
            only: vec![],
            concurrency: 64,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                // cargo bench passes --bench to harness = false targets.
                "--bench" => {}
                "--quick" => opts.quick = true,
                "--concurrency" => {
                    opts.concurrency = args
                        .next()
                        .context("--concurrency needs a number")?
                        .parse()?
                }
                "throughput" | "scale" | "write" | "efficiency" | "deliver" | "hosts" => {
                    opts.only.push(arg)
                }
                other => bail!(
                    "unknown argument {other:?} (expected --quick, --concurrency N, throughput, scale, write, efficiency, deliver, hosts)"
                ),
            }
        }
        Ok(opts)
    }

    fn runs(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }
}

fn main() -> anyhow::Result<()> {
    let opts = Opts::parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let machine = machine_line();
    eprintln!("{machine}");
    let mut table = Table::default();
    let started = Instant::now();
    runtime.block_on(async {
        for bench in [
            "throughput",
            "scale",
            "write",
            "efficiency",
            "deliver",
            "hosts",
        ] {
            if !opts.runs(bench) {
                continue;
            }
            eprintln!("== {bench}");
            let outcome = match bench {
                "throughput" => throughput::throughput(&opts, &mut table).await,
                "scale" => scale::scale(&opts, &mut table).await,
                "write" => write::write_path(&opts, &mut table).await,
                "efficiency" => efficiency::efficiency(&opts, &mut table).await,
                "deliver" => deliver::deliver(&opts, &mut table).await,
                "hosts" => hosts::hosts(&opts, &mut table).await,
                _ => unreachable!("every bench in the list has an arm"),
            };
            // A bench that cannot run is a row in the table, not the end of the others.
            if let Err(e) = outcome {
                table.push(bench, "error", format!("{e:#}"), "", Verdict::Skipped);
            }
        }
    });
    println!();
    println!("{machine}");
    println!(
        "{} mode, {:.0} s in all, {}",
        if opts.quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64(),
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!();
    table.print();
    Ok(())
}
