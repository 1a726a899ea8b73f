//! What every benchmark stands on: the machine line, child processes (the
//! simulator and the daemon, killed when dropped), their CPU and memory from
//! `/proc`, scratch directories and bulk-inserted rows.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bunjang_sim::cli::{DEMO_ACCESS_KEY, DEMO_SECRET_KEY};
use chrono::{DateTime, Utc};
use issuance_watcher::domain::timefmt::to_db;
use issuance_watcher::settings::DatabaseSettings;
use issuance_watcher::store::Store;
use sqlx::Connection as _;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_issuance-watcher");
pub(crate) const STATIC_TOKEN: &str = "bench-static-token";
/// The simulator's ids are `ID_BASE + 1 + seq`: [`start_simulator`] pins
/// its id base, so that wrk and the inserted rows can name ids by number.
pub(crate) const FIRST_SIM_ID: u64 = bunjang_sim::ID_BASE + 1;

pub(crate) fn machine_line() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "machine: {cores} cores ({model}), {:.1} GiB memory, load average {} at start",
        mem_kib as f64 / 1024.0 / 1024.0,
        load.join(" ")
    )
}

/// A child process that is killed if still running when dropped.
pub(crate) struct ChildGuard {
    pub(crate) child: Child,
}

impl ChildGuard {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits up to 10 s; true when it exited with status 0.
    pub(crate) fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// user + sys CPU seconds of a process so far.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, utime 14, stime 15 (1-based).
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

/// user + sys CPU seconds so far of process `root` and its direct children
/// (a local PostgreSQL server: the postmaster and its backends). A child that
/// exits between two readings takes its share with it, hence measured over a
/// window in which the daemon's pooled connections stay open.
pub(crate) fn cpu_seconds_of_tree(root: u32) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let children = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent_of(*pid) == Some(root));
    cpu_seconds(root) + children.map(cpu_seconds).sum::<f64>()
}

/// The postmaster of the local PostgreSQL server `store` is connected to
/// (the parent of one of its backends), whose tree [`cpu_seconds_of_tree`]
/// measures; `None` on SQLite or when the server is not on this machine.
pub(crate) async fn local_postmaster(
    engine: &Engine,
    store: &Store,
) -> anyhow::Result<Option<u32>> {
    Ok(match engine {
        Engine::Postgres(_) => {
            let backend = scalar(store, "SELECT CAST(pg_backend_pid() AS BIGINT)").await?;
            u32::try_from(backend).ok().and_then(parent_of)
        }
        Engine::Sqlite => None,
    })
}

/// The parent process id of `pid` (`PPid:` of /proc/PID/status).
fn parent_of(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))?
        .trim()
        .parse()
        .ok()
}

/// A `VmXXX:` line of /proc/PID/status, in KiB.
pub(crate) fn vm_kib(pid: u32, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Starts `issuance-watcher simulate` with `seed` issuances that are READY at once
/// (no WAITED phase, no FAIL) and the static token; returns it and its base URL.
pub(crate) fn start_simulator(dir: &Path, seed: usize) -> anyhow::Result<(ChildGuard, String)> {
    let config = dir.join("simulator.toml");
    std::fs::write(
        &config,
        format!(
            "id_base = {}\n[lifecycle]\nwaited_min = \"0s\"\nwaited_max = \"0s\"\np_fail = 0.0\n",
            bunjang_sim::ID_BASE
        ),
    )?;
    let mut child = Command::new(BIN)
        .arg("simulate")
        .args(["--listen", "127.0.0.1:0", "--static-token", STATIC_TOKEN])
        .arg("--config")
        .arg(&config)
        .args(["--seed-issuances", &seed.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the simulator")?;
    let stdout = child.stdout.take().context("simulator stdout")?;
    let guard = ChildGuard { child };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("simulator listening on ") {
                let url = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send(url);
                break;
            }
        }
        // Keep draining so the simulator never writes into a closed pipe.
        for _ in lines {}
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .context("the simulator did not say where it listens")?;
    Ok((guard, url))
}

/// Daemon settings as a TOML file (everything else is the built-in default).
pub(crate) struct DaemonConfig<'a> {
    pub(crate) base_url: &'a str,
    pub(crate) database: &'a BenchDb,
    pub(crate) requests_per_second: f64,
    pub(crate) concurrency: usize,
    pub(crate) interval: &'a str,
    pub(crate) max_interval: &'a str,
}

impl DaemonConfig<'_> {
    pub(crate) fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = format!(
            "[api]\nbase_url = \"{}\"\naccess_key = \"{DEMO_ACCESS_KEY}\"\nsecret_key = \"{DEMO_SECRET_KEY}\"\n\
             requests_per_second = {:.1}\nconcurrency = {}\n\
             [database]\n{}\n\
             [poll]\ninterval = \"{}\"\nmax_interval = \"{}\"\n",
            self.base_url,
            self.requests_per_second,
            self.concurrency,
            self.database.toml(),
            self.interval,
            self.max_interval,
        );
        std::fs::write(path, text)?;
        Ok(())
    }
}

pub(crate) fn start_daemon(dir: &Path, config: &Path) -> anyhow::Result<ChildGuard> {
    start_daemon_logging_to(&dir.join("daemon.log"), config)
}

/// [`start_daemon`] with its stderr in `log`.
pub(crate) fn start_daemon_logging_to(log: &Path, config: &Path) -> anyhow::Result<ChildGuard> {
    let log = std::fs::File::create(log)?;
    let child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the daemon")?;
    Ok(ChildGuard { child })
}

/// A scratch directory, kept for inspection when `BENCH_KEEP` is set.
pub(crate) fn workdir() -> anyhow::Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix("issuance-watcher-bench-")
        .tempdir()?)
}

pub(crate) fn finish(dir: tempfile::TempDir) {
    if std::env::var_os("BENCH_KEEP").is_some() {
        eprintln!("  (kept {})", dir.keep().display());
    }
}

pub(crate) async fn open_store(path: &Path) -> anyhow::Result<Store> {
    let mut settings = DatabaseSettings::sqlite(path);
    settings.busy_timeout = Duration::from_secs(30);
    Ok(Store::open_migrated(&settings).await?)
}

/// The engines a bench runs on: SQLite always; PostgreSQL too when a server
/// is named by `BENCH_PG_URL` (else `ISSUANCE_WATCHER_TEST_PG`, the tests'
/// server): `postgres://USER@HOST:PORT/DB`, a user who may create databases.
/// Each bench makes a fresh database of its own there and drops it after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Engine {
    Sqlite,
    /// The server's URL.
    Postgres(String),
}

impl Engine {
    pub(crate) fn all() -> Vec<Engine> {
        let server = ["BENCH_PG_URL", "ISSUANCE_WATCHER_TEST_PG"]
            .iter()
            .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()));
        let mut engines = vec![Engine::Sqlite];
        match server {
            Some(url) => engines.push(Engine::Postgres(url)),
            None => eprintln!(
                "  (PostgreSQL not measured: set BENCH_PG_URL=postgres://USER@HOST:PORT/DB to add it)"
            ),
        }
        engines
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres(_) => "PostgreSQL",
        }
    }
}

/// A bench's database: a SQLite file in the scratch directory, or a fresh
/// database on the PostgreSQL server (dropped by [`BenchDb::remove`]).
pub(crate) struct BenchDb {
    settings: DatabaseSettings,
    /// PostgreSQL: the server's URL and this database's name.
    postgres: Option<(String, String)>,
}

impl BenchDb {
    /// Creates an empty database called `name` for `engine` (SQLite: the
    /// file `dir/name.db`).
    pub(crate) async fn create(engine: &Engine, dir: &Path, name: &str) -> anyhow::Result<Self> {
        match engine {
            Engine::Sqlite => {
                let mut settings = DatabaseSettings::sqlite(dir.join(format!("{name}.db")));
                settings.busy_timeout = Duration::from_secs(30);
                Ok(Self {
                    settings,
                    postgres: None,
                })
            }
            Engine::Postgres(server) => {
                let db = format!(
                    "bench_{name}_{}_{}",
                    std::process::id(),
                    Utc::now().timestamp_micros()
                );
                let mut admin = sqlx::PgConnection::connect(server)
                    .await
                    .with_context(|| format!("connecting to {server}"))?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                    .execute(&mut admin)
                    .await
                    .context("creating the bench database")?;
                admin.close().await?;
                let mut url = reqwest::Url::parse(server)?;
                url.set_path(&format!("/{db}"));
                Ok(Self {
                    settings: DatabaseSettings::postgres_at(url.as_str())?,
                    postgres: Some((server.clone(), db)),
                })
            }
        }
    }

    /// Opens (and migrates) the database.
    pub(crate) async fn open(&self) -> anyhow::Result<Store> {
        Ok(Store::open_migrated(&self.settings).await?)
    }

    /// The `[database]` line that names it in the daemon's configuration.
    pub(crate) fn toml(&self) -> String {
        match &self.postgres {
            Some(_) => format!("url = {:?}", self.settings.shown()),
            None => format!("path = {:?}", self.settings.path.display().to_string()),
        }
    }

    /// Drops a PostgreSQL database (a SQLite file goes with the scratch directory).
    pub(crate) async fn remove(self) -> anyhow::Result<()> {
        if let Some((server, db)) = self.postgres {
            let mut admin = sqlx::PgConnection::connect(&server).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await?;
            admin.close().await?;
        }
        Ok(())
    }
}

/// A number the store's database computes (`NULL` as 0), on either engine.
pub(crate) async fn scalar(store: &Store, query: &'static str) -> anyhow::Result<i64> {
    let n: Option<i64> = match store.pg_pool() {
        Some(pool) => sqlx::query_scalar(query).fetch_one(pool).await?,
        None => sqlx::query_scalar(query).fetch_one(store.pool()).await?,
    };
    Ok(n.unwrap_or(0))
}

/// Inserts the simulator's ids `FIRST_SIM_ID..+count` as active READY rows,
/// due now (overdue by up to 10 minutes), with their history so far (created
/// WAITED, then READY).
pub(crate) async fn insert_active(
    store: &Store,
    count: usize,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    if let Some(pool) = store.pg_pool() {
        return insert_active_pg(pool, count, now).await;
    }
    let mut tx = store.pool().begin().await?;
    sqlx::query(
        "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < ?1 - 1)
         INSERT INTO issuances (id, status, amount, created_at, modified_at, vbank_due_at,
                                vbank_account_number, bank_name, vbank_holder_name, watch,
                                next_poll_at, polls, last_polled_at, last_seen_at)
         SELECT CAST(?2 + n AS TEXT), 'READY', 10000 * (1 + n % 50), ?3, ?3, ?4,
                CAST(451235000000 + n AS TEXT), '국민은행', '번개장터', 'active',
                strftime('%Y-%m-%dT%H:%M:%fZ', ?5 - (n % 600), 'unixepoch'), 3, ?3, ?3
         FROM s",
    )
    .bind(i64::try_from(count)?)
    .bind(i64::try_from(FIRST_SIM_ID)?)
    .bind(to_db(now - chrono::Duration::minutes(20)))
    .bind(to_db(now + chrono::Duration::hours(30)))
    .bind(now.timestamp())
    .execute(&mut *tx)
    .await?;
    sqlx::query(TRANSITIONS_OF_ACTIVE).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// The history of the rows [`insert_active`] adds (either engine's dialect).
const TRANSITIONS_OF_ACTIVE: &str =
    "INSERT INTO transitions (issuance_id, from_status, to_status, observed_at, modified_at)
     SELECT id, NULL, 'WAITED', created_at, created_at FROM issuances WHERE watch = 'active'
     UNION ALL
     SELECT id, 'WAITED', 'READY', created_at, modified_at FROM issuances WHERE watch = 'active'";

/// [`insert_active`] on PostgreSQL; then `ANALYZE`, as autovacuum would have
/// done on a table that grew to this size.
async fn insert_active_pg(
    pool: &sqlx::PgPool,
    count: usize,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO issuances (id, status, amount, created_at, modified_at, vbank_due_at,
                                vbank_account_number, bank_name, vbank_holder_name, watch,
                                next_poll_at, polls, last_polled_at, last_seen_at)
         SELECT ($2 + n)::text, 'READY', 10000 * (1 + n % 50), $3, $3, $4,
                (451235000000 + n)::text, '국민은행', '번개장터', 'active',
                to_timestamp($5 - (n % 600)), 3, $3, $3
         FROM generate_series(0::bigint, $1 - 1) AS n",
    )
    .bind(i64::try_from(count)?)
    .bind(i64::try_from(FIRST_SIM_ID)?)
    .bind(now - chrono::Duration::minutes(20))
    .bind(now + chrono::Duration::hours(30))
    .bind(now.timestamp())
    .execute(&mut *tx)
    .await?;
    sqlx::query(TRANSITIONS_OF_ACTIVE).execute(&mut *tx).await?;
    tx.commit().await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(())
}
