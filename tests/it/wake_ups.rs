//! Wake-ups on PostgreSQL (`store/wake.rs`): an id another program inserts is
//! polled at once, not at the next `poll.idle_recheck`, also when the
//! listening connection was cut while it was inserted (the catch-up read);
//! and the database going away under a running daemon: it keeps trying,
//! `/healthz` says 503 naming the database while it lasts, and afterwards
//! every issuance is recorded exactly once.
//!
//! SQLite has no notifications (its loops re-check every `poll.idle_recheck`):
//! these run on PostgreSQL only, and fail under CI without a server.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, cli};
use common::db::Db;
use common::engine::on_postgres;
use common::metrics::{free_port, get};
use common::running::{Running, eventually, wait_for};
use common::{ScriptedApi, TestSettings};
use issuance_watcher::settings::DatabaseSettings;

/// The listener's `application_name` (`store/postgres/listen.rs`).
const LISTENER: &str = "issuance-watcher listen";

/// A watcher on the test's PostgreSQL database that re-checks only every
/// `idle_recheck`, against a scripted API answering every id READY.
async fn watcher(idle_recheck: Duration) -> (ScriptedApi, Running, tempfile::TempDir) {
    let api = ScriptedApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = TestSettings::new(&api.base_url(), &dir.path().join("w.db"))
        .with(|s| s.poll.idle_recheck = idle_recheck)
        .build();
    let running = Running::start(settings).await;
    running.turning().await;
    (api, running, dir)
}

/// Waits until the listener's session is connected; its backend pid.
async fn listener_pid(db: &Db) -> i64 {
    wait_for(
        "the wake-up listener to connect",
        Duration::from_secs(10),
        async || {
            let rows = db
                .rows(
                    "SELECT pid::text FROM pg_stat_activity
                 WHERE application_name = $1 AND datname = current_database()
                   AND query LIKE 'LISTEN%'",
                    &[LISTENER],
                )
                .await;
            match rows.first().and_then(|r| r[0].clone()) {
                Some(pid) => Ok(pid.parse::<i64>().unwrap()),
                None => Err("no listening session".into()),
            }
        },
    )
    .await
}

/// Inserts `id` as another program and returns how long until the API saw
/// its first request (`None` if not within `limit`).
async fn polled_after_insert(
    api: &ScriptedApi,
    other: &Db,
    id: &str,
    limit: Duration,
) -> Option<Duration> {
    api.set_ready(id, chrono::Duration::days(1));
    let inserted = Instant::now();
    other.insert_ids(&[id]).await;
    let deadline = inserted + limit;
    loop {
        if let Some(first) = api.requests().iter().find(|r| r.id == id) {
            return Some(first.at.saturating_duration_since(inserted));
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_another_program_inserts_is_polled_within_a_second() {
    on_postgres(async {
        let (api, running, _dir) = watcher(Duration::from_secs(30)).await;
        let other = Db::connect(&running.database).await;
        listener_pid(&other).await;
        // Past the start-up claim, so that only a wake-up can find the id.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let took = polled_after_insert(&api, &other, "wake-1", Duration::from_secs(1)).await;
        assert!(
            took.is_some(),
            "an id inserted by another program was not polled within 1 s (poll.idle_recheck is 30 s)"
        );
        other.close().await;
        running.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_inserted_while_the_listener_was_cut_off_is_polled_after_it_reconnects() {
    on_postgres(async {
        let (api, running, _dir) = watcher(Duration::from_secs(30)).await;
        let other = Db::connect(&running.database).await;
        let pid = listener_pid(&other).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Cut the listener off and keep it off (no new connections to this
        // database) while the id is inserted: its notification goes nowhere.
        let name = other
            .rows("SELECT current_database()::text", &[])
            .await
            .remove(0)
            .remove(0)
            .unwrap();
        // A session of its own for the insert, opened before the door shuts.
        let Db::Postgres(pool) = &other else {
            unreachable!("PostgreSQL only")
        };
        let mut session = pool.acquire().await.unwrap();
        set_allow_connections(&name, false).await;
        sqlx::query("SELECT pg_terminate_backend($1::int)")
            .bind(i32::try_from(pid).unwrap())
            .execute(&mut *session)
            .await
            .unwrap();
        // The loss itself wakes the loop (it looks, finding nothing): past
        // that, only the catch-up after the reconnect can find the id.
        tokio::time::sleep(Duration::from_millis(300)).await;
        api.set_ready("cut-1", chrono::Duration::days(1));
        sqlx::query("INSERT INTO issuances (id) VALUES ('cut-1')")
            .execute(&mut *session)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            api.requests_for("cut-1"),
            0,
            "polled before the listener came back"
        );
        set_allow_connections(&name, true).await;
        drop(session);
        let back = Instant::now();
        wait_for(
            "the id inserted while the listener was cut off to be polled",
            Duration::from_secs(3),
            async || {
                if api.requests_for("cut-1") > 0 {
                    Ok(())
                } else {
                    Err("not polled".into())
                }
            },
        )
        .await;
        eprintln!(
            "polled {:?} after connections were allowed again",
            back.elapsed()
        );
        assert_ne!(listener_pid(&other).await, pid, "a new listening session");
        other.close().await;
        running.stop().await;
    })
    .await;
}

/// `ALTER DATABASE name ALLOW_CONNECTIONS ...`, from the server's own
/// database (a name made by the kit: safe to splice).
async fn set_allow_connections(name: &str, allow: bool) {
    let server = common::postgres::server().unwrap();
    let pool = sqlx::PgPool::connect(&server).await.unwrap();
    assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

/// The wake-up latency of an externally inserted row, with the shipped
/// `poll.idle_recheck` (1 s): p50/p95 over 50 inserts. A measurement, not a
/// check: `ISSUANCE_WATCHER_TEST_PG=... cargo test --test it -- --ignored
/// wake_ups::wake_up_latency --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn wake_up_latency() {
    on_postgres(async {
        let (api, running, _dir) = watcher(Duration::from_secs(1)).await;
        let other = Db::connect(&running.database).await;
        listener_pid(&other).await;
        let mut took = Vec::new();
        for n in 0..50 {
            // Spread over the re-check's phase (a fixed pause would lock onto it).
            tokio::time::sleep(Duration::from_millis(50 + (n * 397) % 1000)).await;
            let id = format!("lat-{n}");
            let t = polled_after_insert(&api, &other, &id, Duration::from_secs(5))
                .await
                .expect("polled");
            took.push(t);
        }
        took.sort();
        let at = |q: f64| took[((took.len() as f64 * q).ceil() as usize - 1).min(took.len() - 1)];
        println!(
            "wake-up latency over {} inserts: p50 {:?}, p95 {:?}, max {:?}",
            took.len(),
            at(0.50),
            at(0.95),
            took[took.len() - 1]
        );
        other.close().await;
        running.stop().await;
    })
    .await;
}

/// A private PostgreSQL cluster (`.ci/pg-cluster`) that a test may stop and
/// start under a running daemon; removed when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    url: String,
    port: String,
}

impl Cluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(root().join(".ci/pg-cluster"))
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let port = url
            .rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        Self { dir, url, port }
    }

    /// Runs the cluster's `pg_ctl` with `args` (as `postgres` when root, as
    /// `.ci/pg-cluster` does).
    fn pg_ctl(&self, args: &[&str]) {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .unwrap()
            .map(|e| e.unwrap().path().join("bin/pg_ctl"))
            .filter(|p| p.exists())
            .max_by_key(|p| {
                let version = p.parent().unwrap().parent().unwrap().file_name().unwrap();
                version.to_string_lossy().parse::<u32>().unwrap_or(0)
            })
            .expect("PostgreSQL's pg_ctl");
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        let root = running_as_root();
        let mut command = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let out = command
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "30"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl {args:?}: {out:?}");
    }

    /// Stops the server (its sessions are ended: a restart, or a failover).
    fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "stop"]);
    }

    /// Starts it again on the same port, as `.ci/pg-cluster` did.
    fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.pg_ctl(&["-o", &options, "start"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(root().join(".ci/pg-cluster"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Per issuance: its id, status, number of transitions and of status_changed events (as text).
async fn recorded(db: &Db) -> Vec<Vec<Option<String>>> {
    db.rows(
        "SELECT i.id, i.status, (SELECT count(*) FROM transitions t WHERE t.issuance_id = i.id)::text,
                (SELECT count(*) FROM events e WHERE e.issuance_id = i.id AND e.type = 'issuance.status_changed')::text
         FROM issuances i ORDER BY i.id",
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_restarted_under_a_running_daemon_loses_and_doubles_nothing() {
    // A server of its own: stopping the shared one would break every other test.
    if common::postgres::require_server().is_none() {
        return;
    }
    let cluster = Cluster::start();
    let api = ScriptedApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let database = DatabaseSettings::postgres_at(&cluster.url).unwrap();
    let config = TestSettings::new(&api.base_url(), &dir.path().join("w.db"))
        .with(|s| {
            s.database = database.clone();
            s.http.listen = format!("127.0.0.1:{port}");
        })
        .write_toml(&dir.path().join("config.toml"));
    common::daemon::migrate(&config);
    let before: Vec<String> = (0..20).map(|n| format!("before-{n:02}")).collect();
    let after: Vec<String> = (0..20).map(|n| format!("after-{n:02}")).collect();
    for id in before.iter().chain(&after) {
        api.set_ready(id, chrono::Duration::days(1));
    }
    let other = Db::connect(&database).await;
    other.insert_ids(&ids(&before)).await;
    let mut daemon = Daemon::start(&config);
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    eventually("/healthz 200", async || {
        matches!(get(&healthz).await, Some((200, _)))
    })
    .await;
    eventually("every id inserted before recorded READY", async || {
        let rows = recorded(&other).await;
        rows.len() == 20 && rows.iter().all(|r| r[1].as_deref() == Some("READY"))
    })
    .await;
    other.close().await;

    // The daemon keeps polling (max_interval 400 ms): results are in flight
    // and waiting to be written when the server goes.
    cluster.stop();
    let down = Instant::now();
    let problem = wait_for(
        "/healthz 503 naming the database",
        Duration::from_secs(20),
        async || match get(&healthz).await {
            Some((503, body)) if body.contains("database") => Ok(body),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    eprintln!("503 after {:?}: {problem}", down.elapsed());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        daemon.running(),
        "the daemon exited while the database was down:\n{}",
        daemon.log()
    );
    assert!(
        matches!(get(&healthz).await, Some((503, _))),
        "still 503 while the database is down"
    );

    cluster.start_again();
    let up = Instant::now();
    // Inserted as soon as the server is back, while the daemon may still be
    // failing and reconnecting: found by the catch-up or the retries.
    let other = Db::connect(&database).await;
    other.insert_ids(&ids(&after)).await;
    let mut seen = None;
    let back = common::running::poll(
        "/healthz 200 after the database came back",
        Duration::from_secs(15),
        common::running::EVERY,
        async || match get(&healthz).await {
            Some((200, _)) => Ok(()),
            other => {
                seen = Some(format!("{other:?}"));
                Err(format!("{other:?}"))
            }
        },
    )
    .await;
    if let Err(e) = back {
        panic!("{e}\n{seen:?}\n{}", daemon.log());
    }
    eprintln!("200 again {:?} after the server was back", up.elapsed());
    eventually("every id recorded READY", async || {
        let rows = recorded(&other).await;
        rows.len() == 40 && rows.iter().all(|r| r[1].as_deref() == Some("READY"))
    })
    .await;
    // A while longer, polling on: nothing doubles afterwards either.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rows = recorded(&other).await;
    for row in &rows {
        assert_eq!(
            (row[2].as_deref(), row[3].as_deref()),
            (Some("1"), Some("1")),
            "one transition and one event for {:?}: {rows:?}",
            row[0]
        );
    }
    for id in before.iter().chain(&after) {
        assert!(api.requests_for(id) > 0, "{id} was polled");
    }
    // Alive again as far as other daemons can tell: registered, its owner
    // lock held by a session of its own (else they would take over its claims).
    wait_for(
        "the owner lock held again",
        Duration::from_secs(10),
        async || {
            let held = other
                .rows(
                    "SELECT count(*)::text FROM daemons d, pg_locks l, pg_stat_activity a
                 WHERE l.locktype = 'advisory' AND l.granted AND l.pid = a.pid
                   AND a.application_name = 'issuance-watcher owner'",
                    &[],
                )
                .await;
            match held[0][0].as_deref() {
                Some("1") => Ok(()),
                other => Err(format!("{other:?} registered daemons holding a lock")),
            }
        },
    )
    .await;
    assert!(daemon.running(), "{}", daemon.log());
    let log = daemon.stop().await;
    assert!(
        log.contains("wake-ups"),
        "the lost listener was logged: {log}"
    );
    other.close().await;
    let _ = cli(&config, &["status"]);
}

fn ids(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Whether the tests run as root (then `pg_ctl` runs as `postgres`).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
