//! The README's first command, shortened: the demo settles every charge and its
//! ground-truth check passes (`demo::run` fails otherwise).

use crate::common;

use std::time::Duration;

use issuance_watcher::tools::demo::{DemoArgs, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_settles_every_charge_and_matches_the_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let args = DemoArgs {
        count: 40,
        speed: 14_400.0,
        database: dir.path().join("demo.db"),
        seed: 7,
        timeout: Duration::from_secs(60),
    };
    run(args, std::future::pending())
        .await
        .expect("demo passes its own check");
    assert!(
        dir.path().join("demo.db").exists(),
        "the database is left behind"
    );
}

/// `demo | head -1`: the reader goes away and the demo ends quietly, with
/// success, instead of panicking in `println!` (stdout here is closed before
/// the first line, the harshest case).
#[test]
fn the_demo_ends_quietly_when_its_reader_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let mut child = std::process::Command::new(common::BIN)
        .env_clear()
        .args(["demo", "--count", "3", "--timeout", "30s", "--database"])
        .arg(&db)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = common::daemon::finish_within(child, "demo", std::time::Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
