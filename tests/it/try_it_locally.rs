//! The README's "Try it locally" walk, step by step, with the shipped
//! `config/local.toml`: start the simulator, start the watcher, create a charge
//! on the simulator, add it, fake the deposit, and see it settle in `show`.
//! Only the port and the database path differ from the README (environment
//! overrides), so that parallel test runs do not collide.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::daemon::{BIN, Spawn, command, first_line};
use common::running::poll_blocking;
use common::sim_client::Client;
use reqwest::Method;
use serde_json::json;

/// The shipped file the README's walk uses.
const LOCAL_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/local.toml");

/// Kills the simulator when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The only settings that differ from `config/local.toml`: this run's simulator,
/// a database of its own, and no HTTP listener (parallel runs would collide on it).
fn overrides<'a>(base_url: &'a str, db: &'a Path) -> [(&'static str, &'a str); 3] {
    [
        ("ISSUANCE_WATCHER__API__BASE_URL", base_url),
        (
            "ISSUANCE_WATCHER__DATABASE__PATH",
            db.to_str().expect("a UTF-8 temp path"),
        ),
        ("ISSUANCE_WATCHER__HTTP__LISTEN", ""),
    ]
}

/// `issuance-watcher --config config/local.toml ARGS`, pointed at `base_url` and `db`.
fn local(base_url: &str, db: &Path) -> Command {
    let mut cmd = command(Path::new(LOCAL_CONFIG));
    cmd.envs(overrides(base_url, db));
    cmd
}

fn show(base_url: &str, db: &Path, id: &str) -> serde_json::Value {
    let out = local(base_url, db)
        .args(["show", id, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `show ID --json` every 100 ms (off the runtime: it runs a process) until
/// `done` holds of what it prints, which is returned; fails after `seconds`.
async fn show_until(
    base_url: &str,
    db: &Path,
    id: &str,
    what: &'static str,
    seconds: u64,
    done: impl Fn(&serde_json::Value) -> bool + Send + 'static,
) -> serde_json::Value {
    let (base_url, db, id) = (base_url.to_owned(), db.to_owned(), id.to_owned());
    tokio::task::spawn_blocking(move || {
        let every = Duration::from_millis(100);
        let shown = poll_blocking(what, Duration::from_secs(seconds), every, || {
            let shown = show(&base_url, &db, &id);
            match done(&shown) {
                true => Ok(shown),
                false => Err(shown.to_string()),
            }
        });
        shown.unwrap_or_else(|e| panic!("{e}"))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_walk_from_a_charge_to_a_settled_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watcher.db");
    // Step 1: the simulator, as the README starts it (but on a free port).
    let (sim, line) = first_line(
        Command::new(BIN)
            .env_clear()
            .args(["simulate", "--listen", "127.0.0.1:0"]),
        Stdio::null(),
    );
    let _sim = Running(sim);
    let base_url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    // Step 2: the watcher with the shipped local configuration.
    let mut watcher = Spawn::new(Path::new(LOCAL_CONFIG))
        .log(&dir.path().join("run.err"))
        .envs(overrides(&base_url, &db))
        .spawn();
    // It creates the database (`add` does not): a reader of the README starts
    // it and moves on to the next terminal, seconds later.
    watcher.started(Duration::from_secs(10)).await;
    // Step 3: a charge on the simulator, its id printed.
    let sim = Client::at(&base_url);
    let id = sim.seed(1, 10000).await.remove(0);
    // Step 4: watch it.
    let out = local(&base_url, &db).args(["add", &id]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    show_until(
        &base_url,
        &db,
        &id,
        "READY with a virtual account",
        60,
        |shown| {
            shown["issuance"]["status"] == "READY"
                && shown["issuance"]["vbank_account_number"].is_string()
        },
    )
    .await;
    // Step 5: the payer transfers (faked on the simulator).
    let paid = sim
        .control(
            Method::POST,
            &format!("/_sim/issuances/{id}/status"),
            json!({"status": "DONE"}),
        )
        .await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    // Step 6: the watcher records it within local.toml's 5 s READY ceiling.
    let shown = show_until(&base_url, &db, &id, "DONE", 30, |shown| {
        shown["issuance"]["status"] == "DONE"
    })
    .await;
    assert_eq!(shown["issuance"]["watch"], "settled");
    let path: Vec<&str> = shown["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(path.last(), Some(&"DONE"), "{path:?}");
    assert!(path.contains(&"READY"), "{path:?}");
}
