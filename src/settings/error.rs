//! What a bad setting says: which key, and why, never its value when it is a secret.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid configuration: `{key}`: {reason}")]
    Key { key: &'static str, reason: String },
}

pub(super) fn key_error(key: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Key {
        key,
        reason: reason.into(),
    }
}
