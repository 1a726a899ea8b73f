//! A real Prometheus server (Debian's `prometheus` package) as a child process
//! on loopback, scraping given targets every second and evaluating a rules
//! file every second, with its HTTP API for the test to query.
//!
//! Everything lives in a temporary directory (configuration, TSDB); the child
//! is killed when the [`Prometheus`] is dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::wait::poll;

pub struct Prometheus {
    child: Child,
    base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

pub use super::metrics::free_port;

impl Prometheus {
    /// Starts `prometheus` scraping `targets` (`host:port`) as job `job`,
    /// with the rules in `rules` (YAML text). `Err` when the binary is missing.
    pub fn start(job: &str, targets: &[String], rules: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().unwrap();
        let rules_path = dir.path().join("rules.yml");
        std::fs::write(&rules_path, rules).unwrap();
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - '{}'\n\
             scrape_configs:\n  - job_name: '{job}'\n    static_configs:\n      - targets: [{}]\n",
            rules_path.display(),
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let log = dir.path().join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .map_err(|e| {
                format!(
                    "`prometheus` is not available ({e}); install Debian's `prometheus` package"
                )
            })?;
        Ok(Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        })
    }

    /// Prometheus's own log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /api/v1/PATH?query`, the `data` of a successful answer.
    pub async fn api(&self, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        let encode = |v: &str| {
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/{path}?{}", self.base, query.join("&")))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let body: Value = serde_json::from_str(&response.text().await.ok()?).ok()?;
        (body["status"] == "success").then(|| body["data"].clone())
    }

    /// An instant query's result vector (empty when nothing matched or on error).
    pub async fn query(&self, promql: &str) -> Vec<Value> {
        self.api("query", &[("query", promql)])
            .await
            .and_then(|d| d["result"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The alerts Prometheus holds now (pending or firing).
    pub async fn alerts(&self) -> Vec<Value> {
        self.api("alerts", &[])
            .await
            .and_then(|d| d["alerts"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Waits (up to `limit`) until `check` returns `Some`, asking every 250 ms;
    /// fails the test with Prometheus's log if it never does.
    pub async fn until<T, F, Fut>(&self, what: &str, limit: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let every = Duration::from_millis(250);
        let found = poll(what, limit, every, async || {
            check()
                .await
                .ok_or_else(|| "no answer that fits".to_owned())
        })
        .await;
        found.unwrap_or_else(|e| panic!("{e}; prometheus log:\n{}", self.log()))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
