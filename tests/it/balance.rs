//! The balance: `balance` from the CLI, and the daemon's polls of it
//! (history, gauges, one `balance.low` event per crossing).

use crate::common;

use std::time::Duration;

use common::charging::{charge_sim, config_file, free_port, pool};
use common::daemon::Spawn;
use common::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_prints_the_balance_and_the_points_expiring() {
    let sim = charge_sim().await;
    sim.set_balance(1_234_567, Some(89_000));
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(&sim.base_url(), dir.path(), |_| {});
    let out = tokio::task::spawn_blocking({
        let config = config.clone();
        move || common::cli(&config, &["balance"])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1234567") && stdout.contains("89000"),
        "{stdout}"
    );
    let out = tokio::task::spawn_blocking(move || common::cli(&config, &["balance", "--json"]))
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["balance"], 1_234_567);
    assert_eq!(json["expiring_30d"], 89_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_keeps_a_history_exports_gauges_and_raises_low_once_per_crossing() {
    let sim = charge_sim().await;
    sim.set_balance(900_000, Some(1_000));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = config_file(&sim.base_url(), dir.path(), |s| {
        s.balance.interval = Some(Duration::from_secs(1));
        s.balance.low_threshold = 500_000;
        s.http.listen = format!("127.0.0.1:{port}");
    });
    common::daemon::migrate(&config);
    let pool = pool(&dir.path().join("watcher.db")).await;
    let daemon = Spawn::new(&config).spawn();
    let history = || async {
        sqlx::query_scalar::<_, i64>("SELECT balance FROM balance_history ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    let low_events = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT data ->> '$.balance' FROM events WHERE type = 'balance.low' ORDER BY seq",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    // Above, then below for several polls, back above, below again.
    for (balance, polls) in [(900_000, 1), (400_000, 3), (700_000, 1), (100_000, 2)] {
        sim.set_balance(balance, None);
        let target = history().await.len() + polls;
        eventually("balance polls", || async {
            history().await.len() >= target && history().await.last() == Some(&balance)
        })
        .await;
    }
    assert_eq!(
        low_events().await,
        [400_000, 100_000],
        "once per crossing: {:?}",
        history().await
    );
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("issuance_watcher_point_balance 100000"),
        "{metrics}"
    );
    assert!(
        metrics.contains("issuance_watcher_points_expiring_30d 1000"),
        "{metrics}"
    );
    let log = daemon.stop().await;
    assert!(log.contains("balance.low_threshold"), "{log}");
}

/// `balance.low` is raised once per fall below the threshold, not once per
/// daemon start: a restart while the balance is still below remembers the
/// last recorded balance (`balance_history`) and raises nothing new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_still_below_the_threshold_raises_no_second_low() {
    let sim = charge_sim().await;
    sim.set_balance(100_000, Some(0));
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(&sim.base_url(), dir.path(), |s| {
        s.balance.interval = Some(Duration::from_secs(1));
        s.balance.low_threshold = 500_000;
    });
    common::daemon::migrate(&config);
    let pool = pool(&dir.path().join("watcher.db")).await;
    let polls = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM balance_history")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let lows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE type = 'balance.low'")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    for run in 1..=3 {
        let daemon = Spawn::new(&config).spawn();
        let target = polls().await + 2;
        eventually(&format!("two balance polls in run {run}"), || async {
            polls().await >= target
        })
        .await;
        daemon.stop().await;
        assert_eq!(
            lows().await,
            1,
            "after run {run}: one fall below, one event (polls: {})",
            polls().await
        );
    }
}
