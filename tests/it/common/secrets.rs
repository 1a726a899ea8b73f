//! The one check that nothing a test can see (a log, an error, a metrics page,
//! a database file) carries a secret or a token, in any encoding.
//!
//! Searched for, for every key the tests configure (the scripted API's secret,
//! the simulator's demo secret, the webhook sinks' `whsec_` secrets, current
//! and previous): the Base64
//! text (padded, unpadded, URL-safe), the decoded bytes themselves, their hex
//! and their `Debug` rendering (`[105, 115, …]`); for every secret that is
//! plain text (the secret part of the Slack URL tests configure, the token in a
//! sink URL's query): the text; and any bearer token: `Bearer ` (any case) or
//! `eyJ`, which starts every JWT (Base64 of `{"`).

use base64::Engine as _;
use bunjang_sim::cli::DEMO_SECRET_KEY;

use super::config::{SECRET_B64, decoded_secret};
use super::receiver::{PREVIOUS_WEBHOOK_SECRET, WEBHOOK_SECRET};

/// The secret part of a Slack incoming-webhook URL (`.../services/T/B/<this>`):
/// the URL is the only credential of a Slack sink.
pub const SLACK_SECRET_PART: &str = "slackUrlSecretPart4f9c2e";

/// A Slack-format sink's URL on `base` (a receiver's `http://host:port`).
pub fn slack_url(base: &str) -> String {
    format!("{base}/services/T0TEST/B0TEST/{SLACK_SECRET_PART}")
}

/// A token in a sink URL's query (`?token=...`), shown redacted like a secret.
pub const QUERY_TOKEN: &str = "queryTokenSecret7d1a";

/// Keys given as Base64 (a `whsec_` prefix is not part of the key): searched
/// for in every encoding.
fn keys() -> Vec<&'static str> {
    vec![
        SECRET_B64,
        DEMO_SECRET_KEY,
        WEBHOOK_SECRET.trim_start_matches("whsec_"),
        PREVIOUS_WEBHOOK_SECRET.trim_start_matches("whsec_"),
    ]
}

/// The PostgreSQL password tests configure (`database.password_file`).
pub const DB_PASSWORD: &str = "dbPasswordSecret3e8b";

/// Secrets that are plain text: searched for as they are.
fn texts() -> Vec<&'static str> {
    vec![SLACK_SECRET_PART, QUERY_TOKEN, DB_PASSWORD]
}

/// What a leak of `secret_base64` could look like, as byte strings.
fn encodings(secret_base64: &str) -> Vec<(String, Vec<u8>)> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let bytes = decoded_secret(secret_base64);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let debug = format!("{:?}", &bytes[..8.min(bytes.len())]);
    let debug_prefix = debug.trim_end_matches(']').to_owned();
    vec![
        ("the Base64 text".into(), secret_base64.as_bytes().to_vec()),
        (
            "the unpadded Base64 text".into(),
            STANDARD_NO_PAD.encode(&bytes).into_bytes(),
        ),
        (
            "the URL-safe Base64 text".into(),
            URL_SAFE.encode(&bytes).into_bytes(),
        ),
        (
            "the unpadded URL-safe Base64 text".into(),
            URL_SAFE_NO_PAD.encode(&bytes).into_bytes(),
        ),
        ("the decoded secret bytes".into(), bytes.clone()),
        ("the decoded secret as hex".into(), hex.into_bytes()),
        (
            "the decoded secret as a byte list".into(),
            debug_prefix.into_bytes(),
        ),
    ]
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The leaks found in `bytes`: each what it is and a little context.
pub fn leaks(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let context = |at: usize| {
        let from = at.saturating_sub(60);
        let to = (at + 60).min(bytes.len());
        String::from_utf8_lossy(&bytes[from..to]).into_owned()
    };
    for secret in keys() {
        for (what, needle) in encodings(secret) {
            if let Some(at) = find(bytes, &needle) {
                found.push(format!("{what} at byte {at}: …{}…", context(at)));
            }
        }
    }
    for secret in texts() {
        if let Some(at) = find(bytes, secret.as_bytes()) {
            found.push(format!(
                "the secret {secret:?} at byte {at}: …{}…",
                context(at)
            ));
        }
    }
    let lower = bytes.to_ascii_lowercase();
    if let Some(at) = find(&lower, b"bearer ") {
        found.push(format!("a bearer header at byte {at}: …{}…", context(at)));
    }
    if let Some(at) = find(bytes, b"eyJ") {
        found.push(format!(
            "JWT-like text (eyJ) at byte {at}: …{}…",
            context(at)
        ));
    }
    found
}

/// Panics, naming `what` and each leak, when `bytes` contain a secret or token.
pub fn assert_no_secret_bytes(what: &str, bytes: &[u8]) {
    let found = leaks(bytes);
    assert!(found.is_empty(), "{what} leaks: {found:#?}");
}

/// Panics, naming `what` and each leak, when `text` contains a secret or token.
pub fn assert_no_secret(what: &str, text: &str) {
    assert_no_secret_bytes(what, text.as_bytes());
}
