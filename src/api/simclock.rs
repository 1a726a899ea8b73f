//! The bundled simulator's business clock, as its `GET /_sim/clock` tells it.
//!
//! `simulate --speed N` runs time N times faster than real time: its charges
//! become READY, fall due and settle on that clock. A watcher on the real clock
//! would schedule each poll N times too late and look stalled. So `run` asks a
//! loopback API for its clock at start ([`probe`]): on a simulator whose time
//! is accelerated it refuses to start on the real clock, and with
//! `--follow-simulator-clock` it runs on the simulator's clock instead
//! ([`SimulatorClock::to_clock`]). The real API is never on loopback, and a
//! loopback server that is not the simulator simply answers something else.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Url;

use crate::domain::Clock;

/// What `GET /_sim/clock` answered, corrected for half the round trip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulatorClock {
    pub now: DateTime<Utc>,
    pub speed: f64,
}

impl SimulatorClock {
    /// Whether a watcher on the real clock would fall behind this one.
    pub fn is_accelerated(&self) -> bool {
        (self.speed - 1.0).abs() > 1e-9
    }

    /// A clock that runs with the simulator's, from now on.
    pub fn to_clock(self) -> Clock {
        Clock::accelerated(self.now, self.speed)
    }
}

/// Whether `base_url` names this machine (where the simulator would run).
pub fn is_loopback(base_url: &str) -> bool {
    let Ok(url) = Url::parse(base_url) else {
        return false;
    };
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Asks `base_url` for the simulator's clock. `Ok(None)`: it answered, but not
/// as the simulator does; `Err`: it could not be reached.
pub async fn probe(base_url: &str, timeout: Duration) -> Result<Option<SimulatorClock>, String> {
    let url = format!("{}/_sim/clock", base_url.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let sent = Instant::now();
    let response = http.get(&url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Ok(None);
    }
    let Ok(body) = response.bytes().await else {
        return Ok(None);
    };
    let half_trip = sent.elapsed() / 2;
    Ok(parse(&body).map(|clock| SimulatorClock {
        now: clock.now
            + chrono::Duration::from_std(half_trip.mul_f64(clock.speed)).unwrap_or_default(),
        ..clock
    }))
}

fn parse(body: &[u8]) -> Option<SimulatorClock> {
    #[derive(serde::Deserialize)]
    struct Answer {
        now: DateTime<Utc>,
        speed: f64,
    }
    let answer: Answer = serde_json::from_slice(body).ok()?;
    (answer.speed.is_finite() && answer.speed > 0.0).then_some(SimulatorClock {
        now: answer.now,
        speed: answer.speed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_asked() {
        for yes in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9",
            "http://127.3.2.1",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "https://openapi.bunjang.co.kr",
            "http://10.0.0.1",
            "nonsense",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn the_simulators_answer_is_read_and_anything_else_is_not() {
        let clock =
            parse(br#"{"now":"2026-12-02T10:00:00.000Z","speed":3600.0,"uptimeMs":5}"#).unwrap();
        assert!(clock.is_accelerated());
        assert_eq!(clock.to_clock().speed(), 3600.0);
        let real = parse(br#"{"now":"2026-12-02T10:00:00.000Z","speed":1}"#).unwrap();
        assert!(!real.is_accelerated());
        for other in [
            &b"<html>"[..],
            br#"{"speed":0,"now":"2026-12-02T10:00:00Z"}"#,
            br#"{"errorCode":"X"}"#,
        ] {
            assert_eq!(parse(other), None);
        }
    }
}
