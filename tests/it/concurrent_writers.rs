//! Concurrent writers: while the daemon (`issuance-watcher run`, a child
//! process) polls and records, other writers insert ids into its database and
//! readers run the README's queries. Each writer and reader has its own
//! connection (its own sqlx pool of one, busy timeout 5 s), as another program
//! would; the daemon is a separate process.
//!
//! - quick (in `cargo test`): 10,000 ids — 2 writers inserting 1,000 single rows
//!   each (autocommit) and 2 writers inserting 4 transactions of 1,000 rows each
//!   with `BEGIN IMMEDIATE` (what the README tells other programs), 2 readers.
//! - long: `cargo test --release --test it -- --ignored concurrent_writers:: --nocapture`
//!   (100,000 ids: 2 × 10,000 single rows, 2 × 40 transactions of 1,000 rows;
//!   `LONG_RUN_SCALE` scales the counts, and CI runs it at the scale `.ci/run` sets).
//!
//! Asserted: zero failures of any kind on the writers' and readers' side, no
//! lock or database error in the daemon's log, and every id watched (polled at
//! least once: `polls > 0`). Ids are seeded in the simulator, so they resolve.
//!
//! Then, for the record, the same 1,000-row batches with a plain deferred
//! transaction that reads before it writes (`SELECT count(*)`, then the inserts):
//! the test prints how many of them failed with "database is locked" (SQLite
//! cannot wait for a read transaction to become a write one once another writer
//! has committed), asserts only that the daemon saw no lock error, and re-inserts
//! the failed batches with `BEGIN IMMEDIATE` so every id is still watched.

use crate::reliability;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reliability::*;
use sqlx::SqlitePool;

struct Plan {
    single_per_writer: usize,
    batches_per_writer: usize,
    deferred_batches: usize,
    seed: u64,
}

const WRITERS: usize = 2;
const BATCH: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_writers_and_readers_never_see_a_locked_database() {
    run(Plan {
        single_per_writer: 1_000,
        batches_per_writer: 4,
        deferred_batches: 4,
        seed: 31,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long run: cargo test --release --test it -- --ignored concurrent_writers::"]
async fn long_100k_ids() {
    let scale = long_run_scale();
    run(Plan {
        single_per_writer: scaled(10_000, scale, 1_000),
        batches_per_writer: scaled(40, scale, 4),
        deferred_batches: scaled(10, scale, 4),
        seed: 32,
    })
    .await;
}

#[derive(Default)]
struct Errors {
    count: AtomicU64,
    locked: AtomicU64,
    examples: std::sync::Mutex<Vec<String>>,
}

impl Errors {
    fn add(&self, e: &sqlx::Error) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let text = e.to_string();
        if text.contains("locked") || text.contains("busy") {
            self.locked.fetch_add(1, Ordering::Relaxed);
        }
        let mut examples = self.examples.lock().unwrap();
        if examples.len() < 5 {
            examples.push(text);
        }
    }

    fn summary(&self) -> String {
        format!(
            "{} errors ({} locked/busy) {:?}",
            self.count.load(Ordering::Relaxed),
            self.locked.load(Ordering::Relaxed),
            self.examples.lock().unwrap()
        )
    }
}

const README_QUERIES: [&str; 5] = [
    "SELECT status, count(*) FROM issuances GROUP BY status",
    "SELECT * FROM due_soon",
    "SELECT issuance_id, from_status, to_status, observed_at FROM recent_transitions LIMIT 20",
    "SELECT id, amount, modified_at FROM issuances WHERE status = 'DONE' AND modified_at >= '2026-11-25T00:00:00.000Z'",
    "SELECT id, last_error FROM issuances WHERE last_error IS NOT NULL",
];

async fn insert_batch(
    pool: &SqlitePool,
    ids: &[String],
    immediate: bool,
) -> Result<(), sqlx::Error> {
    let mut tx = if immediate {
        pool.begin_with("BEGIN IMMEDIATE").await?
    } else {
        pool.begin().await?
    };
    if !immediate {
        // Read, then write: the pattern that deferred transactions get wrong.
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM issuances")
            .fetch_one(&mut *tx)
            .await?;
    }
    for id in ids {
        sqlx::query("INSERT INTO issuances (id) VALUES (?)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

async fn run(plan: Plan) {
    let started = Instant::now();
    let sim = start_sim(sim_config(plan.seed)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(dir.path(), &sim.base_url(), 3000, 32, "", "");
    migrate(&config);
    let mut daemon = spawn_daemon(&config, &dir.path().join("daemon-0001.log"));
    let single_total = WRITERS * plan.single_per_writer;
    let batch_total = WRITERS * plan.batches_per_writer * BATCH;
    let total = single_total + batch_total;
    let ids = sim.seed(total);
    let (singles, batched) = ids.split_at(single_total);

    let writer_errors = Arc::new(Errors::default());
    let reader_errors = Arc::new(Errors::default());
    let writing = Arc::new(AtomicBool::new(true));
    let reads = Arc::new(AtomicU64::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for chunk in singles.chunks(plan.single_per_writer) {
        let (pool, chunk, errors) = (
            other_program(dir.path()).await,
            chunk.to_vec(),
            writer_errors.clone(),
        );
        writers.spawn(async move {
            for id in chunk {
                if let Err(e) = sqlx::query("INSERT INTO issuances (id) VALUES (?)")
                    .bind(id)
                    .execute(&pool)
                    .await
                {
                    errors.add(&e);
                }
            }
            pool.close().await;
        });
    }
    for chunk in batched.chunks(plan.batches_per_writer * BATCH) {
        let (pool, chunk, errors) = (
            other_program(dir.path()).await,
            chunk.to_vec(),
            writer_errors.clone(),
        );
        writers.spawn(async move {
            for batch in chunk.chunks(BATCH) {
                if let Err(e) = insert_batch(&pool, batch, true).await {
                    errors.add(&e);
                }
                tokio::task::yield_now().await;
            }
            pool.close().await;
        });
    }
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let (pool, errors, writing, reads) = (
            other_program(dir.path()).await,
            reader_errors.clone(),
            writing.clone(),
            reads.clone(),
        );
        // Load, not a wait: reads until the writers and the bounded wait
        // below are done (or the set is dropped, aborting it).
        readers.spawn(async move {
            while writing.load(Ordering::Relaxed) {
                for sql in README_QUERIES {
                    match sqlx::query(sql).fetch_all(&pool).await {
                        Ok(_) => {
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => errors.add(&e),
                    }
                }
                // Pacing the reads, not a wait.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            pool.close().await;
        });
    }
    writers.join_all().await;
    let wrote_in = started.elapsed();
    let store = open_store(dir.path()).await;
    let watched = wait_polled(&store, Duration::from_secs(120)).await;
    writing.store(false, Ordering::Relaxed);
    readers.join_all().await;
    println!(
        "concurrent writers: {total} ids inserted ({single_total} single-row, {} transactions of {BATCH} with BEGIN IMMEDIATE) in {:.1}s; {} README queries run; writers: {}; readers: {}; all watched after {:.1}s",
        batch_total / BATCH,
        wrote_in.as_secs_f64(),
        reads.load(Ordering::Relaxed),
        writer_errors.summary(),
        reader_errors.summary(),
        started.elapsed().as_secs_f64(),
    );
    assert_eq!(
        writer_errors.count.load(Ordering::Relaxed),
        0,
        "{}",
        writer_errors.summary()
    );
    assert_eq!(
        reader_errors.count.load(Ordering::Relaxed),
        0,
        "{}",
        reader_errors.summary()
    );
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM issuances").await,
        total as i64
    );
    if let Err(e) = watched {
        panic!("{e}");
    }

    // For the record: deferred read-then-write transactions against the running daemon.
    let deferred_ids = sim.seed(plan.deferred_batches * BATCH);
    let pool = other_program(dir.path()).await;
    let mut failed = Vec::new();
    let mut messages = Vec::new();
    for batch in deferred_ids.chunks(BATCH) {
        // Let the daemon commit in between, as it does in real life: pacing,
        // not a wait.
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Err(e) = insert_batch(&pool, batch, false).await {
            messages.push(e.to_string());
            failed.push(batch);
        }
    }
    println!(
        "deferred (plain BEGIN, read then write) 1,000-row transactions: {} of {} failed {:?}",
        failed.len(),
        plan.deferred_batches,
        messages.iter().take(3).collect::<Vec<_>>()
    );
    for batch in failed {
        insert_batch(&pool, batch, true).await.unwrap();
    }
    pool.close().await;
    let all = total + deferred_ids.len();
    wait_polled(&store, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("after the deferred batches: {e}"));
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM issuances").await,
        all as i64
    );

    let exited = daemon.try_wait().unwrap();
    daemon.kill().ok();
    daemon.wait().ok();
    assert!(exited.is_none(), "the daemon exited: {exited:?}");
    let problems = log_lines_matching(
        dir.path(),
        &[
            "locked",
            "busy",
            "database error",
            "could not record",
            "cannot claim",
            "panicked",
        ],
    );
    assert!(problems.is_empty(), "daemon log: {problems:#?}");
    store.close().await;
    sim.shutdown().await;
}

/// Waits (up to `limit`, looking every 250 ms) until every row has been
/// polled at least once; the error says how many were not.
async fn wait_polled(
    store: &issuance_watcher::store::Store,
    limit: Duration,
) -> Result<(), String> {
    let every = Duration::from_millis(250);
    reliability::common::wait::poll("every id to be polled", limit, every, async || {
        let sql = "SELECT count(*) FROM issuances WHERE polls = 0 AND status IS NULL";
        match scalar(store, sql).await {
            0 => Ok(()),
            unpolled => Err(format!("{unpolled} ids never polled")),
        }
    })
    .await
}
