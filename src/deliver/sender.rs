//! One HTTP POST of a [`Message`] to a sink, classified as an [`Answer`].
//! Bounded in time (the sink's `timeout`, connect within 5 s), never follows a
//! redirect (a signed request goes only where it was configured to), reads at
//! most a little of the answer's body, and never puts the URL (which may be
//! a secret) into an error.

use std::time::Duration;

use super::message::Message;
use super::schedule::Answer;
use crate::domain::excerpt::{RESPONSE_LIMIT, response_excerpt};
use crate::domain::time::parse_retry_after;

/// The most of an answer's body that is read (the rest is dropped).
const BODY_LIMIT: usize = 64 * 1024;

/// A sink's HTTP client.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    url: reqwest::Url,
}

/// Without the URL: a Slack sink's URL is its credential, and another's query
/// may carry a token. A `?sink` in a log line must not print either.
impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("url", &"[not shown]")
            .finish_non_exhaustive()
    }
}

impl Sender {
    pub fn new(url: reqwest::Url, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            // Below common servers' keep-alive, so a pooled connection is not
            // reused just as the receiver closes it.
            .pool_idle_timeout(Duration::from_secs(20))
            .user_agent(concat!("issuance-watcher/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, url })
    }

    /// Posts `message`; every outcome is an [`Answer`], never an error. With
    /// it, the first KiB of the answer's body, sanitised for the delivery log
    /// (`None`: no answer).
    pub async fn post(&self, message: &Message) -> (Answer, Option<String>) {
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(message.body.clone());
        for (name, value) in &message.headers {
            request = request.header(*name, value);
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return (Answer::NoAnswer { error: describe(e) }, None);
            }
        };
        let code = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        // Read a little so the connection can be reused (the first KiB kept
        // for the log); an answer that stops, hangs (the client's total
        // timeout) or overflows here still counts by its status.
        let mut read = 0;
        let mut head = Vec::with_capacity(RESPONSE_LIMIT);
        while read < BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = RESPONSE_LIMIT - head.len();
                    head.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    read += chunk.len();
                }
                _ => break,
            }
        }
        (
            Answer::Status { code, retry_after },
            Some(response_excerpt(&head)),
        )
    }
}

/// The error's kind and cause, without the URL.
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    match causes.last() {
        Some(root) => format!("{kind}: {root}"),
        None => format!("{kind}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_url() {
        let url = "https://hooks.slack.com/services/T0/B0/SECRETPART?token=QUERYTOKEN";
        let sender = Sender::new(url.parse().unwrap(), Duration::from_secs(1)).unwrap();
        let shown = format!("{sender:?}");
        assert!(
            !shown.contains("SECRETPART") && !shown.contains("QUERYTOKEN"),
            "{shown}"
        );
    }
}
