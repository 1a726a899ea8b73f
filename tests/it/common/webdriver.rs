//! A thin WebDriver client over reqwest, for the dashboard's browser tests:
//! `chromedriver` on a free port, one headless Chromium session, and the few
//! commands the tests use (navigate, find, click, type, read, the browser's
//! console log, a screenshot). Dropping a [`Browser`] deletes its session
//! and kills its driver (the browser outlives a killed driver otherwise).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::metrics::free_port;
use super::running::wait_for;

/// The key of an element reference in WebDriver's JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One headless Chromium session driven over WebDriver.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    /// Starts `chromedriver` and a headless `chromium` session with the
    /// browser's console log kept (`goog:loggingPrefs`).
    pub async fn start(chromedriver: &Path, chromium: &Path) -> Self {
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        wait_for(
            "chromedriver to answer",
            Duration::from_secs(20),
            async || match http.get(format!("{base}/status")).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                other => Err(format!("{other:?}")),
            },
        )
        .await;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let mut browser = Self {
            driver,
            base,
            session: String::new(),
            http,
        };
        let created = browser.call("POST", "/session", capabilities).await;
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("a session: {created}"))
            .to_owned();
        browser
    }

    /// A WebDriver command; its `value`. Panics on a WebDriver error.
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self
                .http
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string()),
        };
        let text = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
            .text()
            .await
            .unwrap();
        let answer: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let value = answer["value"].clone();
        if let Some(error) = value.get("error") {
            panic!("{method} {path}: {error}: {}", value["message"]);
        }
        value
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    /// Loads `url` and waits for it (WebDriver's navigation waits for the load).
    pub async fn goto(&self, url: &str) {
        self.call("POST", &self.at("/url"), json!({"url": url}))
            .await;
    }

    /// The current page's URL.
    pub async fn url(&self) -> String {
        self.call("GET", &self.at("/url"), Value::Null)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The elements matching a CSS selector (their references).
    pub async fn all(&self, css: &str) -> Vec<String> {
        let found = self
            .call(
                "POST",
                &self.at("/elements"),
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[ELEMENT].as_str().unwrap().to_owned())
            .collect()
    }

    /// The first element matching `css`, waiting up to 10 s for it (a page
    /// a click led to may still be loading); panics with the page if none.
    pub async fn find(&self, css: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = self.all(css).await.into_iter().next() {
                return found;
            }
            if std::time::Instant::now() > deadline {
                panic!("no element {css} in {}", self.source().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The current page's HTML.
    pub async fn source(&self) -> String {
        self.call("GET", &self.at("/source"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// An element's rendered text.
    pub async fn text_of(&self, element: &str) -> String {
        self.call(
            "GET",
            &self.at(&format!("/element/{element}/text")),
            Value::Null,
        )
        .await
        .as_str()
        .unwrap()
        .to_owned()
    }

    /// The rendered text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.text_of(&element).await
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(
            "POST",
            &self.at(&format!("/element/{element}/click")),
            json!({}),
        )
        .await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(
            "POST",
            &self.at(&format!("/element/{element}/value")),
            json!({"text": text}),
        )
        .await;
    }

    /// The browser's console entries since the last call (level, message).
    pub async fn console(&self) -> Vec<(String, String)> {
        let entries = self
            .call("POST", &self.at("/se/log"), json!({"type": "browser"}))
            .await;
        entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or("").to_owned(),
                    e["message"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let png = self.call("GET", &self.at("/screenshot"), Value::Null).await;
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap()
    }

    /// Deletes the session (the browser exits) and stops the driver.
    pub async fn quit(mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        self.session.clear();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Best effort, without a runtime: the driver's death ends its browser
            // only with the session deleted, so delete it over a plain socket.
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let _ = reqwest::Client::new().delete(url).send().await;
                });
            })
            .join();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
