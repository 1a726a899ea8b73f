//! The README's first command, shortened: the demo settles every charge and its
//! ground-truth check passes (`demo::run` fails otherwise).

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
