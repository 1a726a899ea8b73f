//! `deliver`: webhook delivery to a healthy loopback receiver (axum, 204, no
//! verification), with the daemon's own delivery workers (`deliver::Sinks`,
//! default sink settings: concurrency 8) in-process.
//!
//! 1. Latency from the commit of a fact to the receiver's 2xx: transitions
//!    committed one at a time at 50/s, each followed by the wake-up the watcher
//!    sends after its commits; p50 / p95 over the run.
//! 2. Sustained deliveries per second, and the time to drain a backlog: N
//!    events written in one transaction (bulk SQL; the triggers write the
//!    events), then the time until the receiver has answered every one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use issuance_watcher::deliver::Sinks;
use issuance_watcher::ops::progress::Progress;
use issuance_watcher::settings::{Settings, WebhookSettings};
use tokio_util::sync::CancellationToken;

use crate::Opts;
use crate::harness::{open_store, workdir};
use crate::table::Table;

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn receiver() -> anyhow::Result<(String, Arrivals)> {
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                    seen.lock()
                        .unwrap()
                        .entry(id.to_owned())
                        .or_insert_with(Instant::now);
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, arrivals))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub(crate) async fn deliver(opts: &Opts, table: &mut Table) -> anyhow::Result<()> {
    const B: &str = "deliver";
    let dir = workdir()?;
    let store = open_store(&dir.path().join("watcher.db")).await?;
    let (url, arrivals) = receiver().await?;
    let mut settings = Settings::load_with_env(None, Vec::new())?;
    let sink: WebhookSettings = toml::from_str(&format!(
        "name = \"bench\"\nurl = {url:?}\nsecret = \"whsec_dGVzdC13ZWJob29rLXNlY3JldC0zMi1ieXRlcyEhIQ==\"\n"
    ))?;
    settings.webhooks.push(sink);
    let sinks = Sinks::from_settings(&settings)?;
    let progress = Arc::new(Progress::default());
    sinks.register(&store, &progress).await?;
    let token = CancellationToken::new();
    let workers = sinks.start(&store, &progress, &token);

    // 1. Latency, one fact at a time.
    let count = if opts.quick { 100 } else { 300 };
    let mut committed = HashMap::new();
    for n in 0..count {
        let id = format!("l{n}");
        let started = Instant::now();
        let event: String = sqlx::query_scalar(
            "INSERT INTO issuances (id) VALUES (?1);
             INSERT INTO transitions (issuance_id, to_status, observed_at)
                 VALUES (?1, 'WAITED', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
             SELECT id FROM events WHERE seq = (SELECT max(seq) FROM events);",
        )
        .bind(&id)
        .fetch_one(store.pool())
        .await?;
        progress.events_committed();
        committed.insert(event, started);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.lock().unwrap().len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut latencies: Vec<Duration> = {
        let arrived = arrivals.lock().unwrap();
        committed
            .iter()
            .filter_map(|(id, at)| arrived.get(id).map(|got| got.duration_since(*at)))
            .collect()
    };
    anyhow::ensure!(
        latencies.len() == count,
        "{} of {count} arrived",
        latencies.len()
    );
    latencies.sort();
    let p95 = percentile(&latencies, 0.95);
    table.check(
        B,
        format!("commit → receiver's 2xx, healthy receiver, {count} events at 50/s"),
        format!(
            "p50 {:.1} ms · p95 {:.1} ms · max {:.1} ms",
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            p95.as_secs_f64() * 1e3,
            latencies[latencies.len() - 1].as_secs_f64() * 1e3
        ),
        "p95 ≤ 1 s",
        p95 <= Duration::from_secs(1),
    );

    // 2. A backlog written at once, drained.
    let backlog: i64 = if opts.quick { 20_000 } else { 100_000 };
    arrivals.lock().unwrap().clear();
    sqlx::query(
        "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < ?1 - 1)
         INSERT INTO issuances (id) SELECT 'b' || n FROM s",
    )
    .bind(backlog)
    .execute(store.pool())
    .await?;
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO transitions (issuance_id, to_status, observed_at)
         SELECT id, 'WAITED', strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM issuances WHERE id GLOB 'b*'",
    )
    .execute(store.pool())
    .await?;
    progress.events_committed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while (arrivals.lock().unwrap().len() as i64) < backlog && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = started.elapsed();
    let got = arrivals.lock().unwrap().len() as i64;
    anyhow::ensure!(
        got == backlog,
        "{got} of {backlog} delivered in {drained:?}"
    );
    table.add(
        B,
        format!("backlog of {backlog} events (one commit) drained to one receiver"),
        format!(
            "{:.1} s, {:.0} deliveries/s sustained",
            drained.as_secs_f64(),
            backlog as f64 / drained.as_secs_f64()
        ),
    );
    token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(3), workers.wait()).await;
    store.close().await;
    Ok(())
}
