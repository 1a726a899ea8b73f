//! `scale`'s dashboard row: each page of the web dashboard rendered over HTTP
//! (in-process, on loopback) on the scale database (1M issuances, 3M
//! transitions, 100,000 of them active and READY), timed from request to the
//! last byte. Target: every page within 100 ms.

use std::time::{Duration, Instant};

use issuance_watcher::settings::Settings;
use issuance_watcher::store::Store;
use issuance_watcher::web::{Dashboard, router};

use crate::table::Table;

/// Renders each page `rounds` times; adds one row (the slowest page's
/// median and p95) and one row per page.
pub(crate) async fn render_times(
    table: &mut Table,
    store: &Store,
    settled_id: &str,
    rounds: usize,
) -> anyhow::Result<()> {
    const B: &str = "scale";
    let settings = Settings::load_with_env(None, Vec::new())?;
    let app = router(Dashboard::new(store.clone(), settings, None));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let pages = [
        "/".to_owned(),
        "/to-pay".to_owned(),
        "/issuances".to_owned(),
        format!("/issuances?status=DONE&after={settled_id}"),
        format!("/issuance?id={settled_id}"),
        "/events".to_owned(),
        "/sinks".to_owned(),
        "/charges".to_owned(),
    ];
    let mut worst = (String::new(), Duration::ZERO, Duration::ZERO);
    for page in &pages {
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let start = Instant::now();
            let response = http.get(format!("{base}{page}")).send().await?;
            anyhow::ensure!(
                response.status().is_success(),
                "{page}: {}",
                response.status()
            );
            response.bytes().await?;
            times.push(start.elapsed());
        }
        times.sort();
        let (median, p95) = (times[times.len() / 2], times[times.len() * 95 / 100]);
        table.add(
            B,
            format!("dashboard {page}, 1M issuances"),
            format!("median {:.1} ms, p95 {:.1} ms", ms(median), ms(p95)),
        );
        if p95 > worst.2 {
            worst = (page.clone(), median, p95);
        }
    }
    table.check(
        B,
        "dashboard: slowest page (p95), 1M issuances + 3M transitions",
        format!(
            "{} median {:.1} ms, p95 {:.1} ms",
            worst.0,
            ms(worst.1),
            ms(worst.2)
        ),
        "≤ 100 ms",
        worst.2 <= Duration::from_millis(100),
    );
    server.abort();
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
