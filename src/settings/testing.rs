//! Environments for the settings tests.

/// Base64 of `issuance-watcher-test-vector-secret-32b!`.
pub const SECRET: &str = "aXNzdWFuY2Utd2F0Y2hlci10ZXN0LXZlY3Rvci1zZWNyZXQtMzJiIQ==";

pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn with_credentials() -> Vec<(String, String)> {
    env(&[
        ("ISSUANCE_WATCHER__API__ACCESS_KEY", "ak"),
        ("ISSUANCE_WATCHER__API__SECRET_KEY", SECRET),
    ])
}
