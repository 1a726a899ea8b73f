//! Reading a daemon's `/metrics` (Prometheus text) over its HTTP listener.

use std::time::Duration;

/// A loopback port that was free a moment ago, for a daemon's `http.listen`.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET url`: the status code and body, or `None` when nothing answered.
pub async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// The value of the first sample of `name` whose labels include every one of `labels`.
pub fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Fetches `url` until `done` holds for the body (15 s at most); returns that body.
pub async fn until(url: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    super::wait::wait_for(what, Duration::from_secs(15), async || {
        let text = get(url).await.map(|(_, t)| t).unwrap_or_default();
        if done(&text) {
            Ok(text)
        } else {
            Err(format!("\n{text}"))
        }
    })
    .await
}
