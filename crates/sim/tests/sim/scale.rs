//! A million issuances in the simulator: they fit in a bounded amount of memory
//! and stay reachable. Alone in its test binary, so the process's resident
//! memory is the simulator's (and the test's list of ids), not other tests'.

use crate::client::{Client, LOOKUP, start};
use bunjang_sim::SimConfig;

const ISSUANCES: usize = 1_000_000;
/// Resident memory one seeded issuance may cost, the test's own id `String`
/// included. Measured at about 120 B (see the test's output); a bound of four
/// times that fails when per-issuance state grows out of proportion (a copied
/// body, a history that is not shared, a map entry per request).
const MAX_BYTES_PER_ISSUANCE: u64 = 500;

/// Resident memory of this process in bytes (`VmRSS` of `/proc/self/status`, Linux).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line in kB");
    kib * 1024
}

#[tokio::test]
async fn a_million_issuances_fit_and_stay_reachable() {
    let sim = start(SimConfig::default()).await;
    let (rss_before, started) = (resident_bytes(), std::time::Instant::now());
    let ids = sim.seed(ISSUANCES);
    let elapsed = started.elapsed();
    let growth = resident_bytes().saturating_sub(rss_before);
    let per_issuance = growth / ISSUANCES as u64;
    eprintln!(
        "seeded {ISSUANCES} issuances in {elapsed:?}; resident memory grew {} MiB, {per_issuance} B per issuance",
        growth / (1024 * 1024)
    );
    assert_eq!(ids.len(), ISSUANCES);
    assert!(
        per_issuance <= MAX_BYTES_PER_ISSUANCE,
        "{per_issuance} B of resident memory per issuance (bound {MAX_BYTES_PER_ISSUANCE} B)"
    );
    let last = Client::new(&sim)
        .get(&format!("{LOOKUP}/{}", ids[ISSUANCES - 1]))
        .await;
    assert_eq!(last.json()["data"]["id"], ids[ISSUANCES - 1].as_str());
    sim.shutdown().await;
}
