//! What a bad setting says: which key, where it was set, and why; never its
//! value when it is a secret. A configuration with several problems reports
//! them all at once ([`SettingsError::Problems`]), one per line.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid configuration: `{key}`: {reason}")]
    Key { key: &'static str, reason: String },
    #[error("invalid configuration: {}", list(.0))]
    Problems(Vec<Problem>),
}

impl SettingsError {
    /// This error and `other` as one list of problems, when both are about
    /// keys; else this one (which stops everything anyway).
    pub fn and(self, other: SettingsError) -> SettingsError {
        match (self.into_problems(), other.into_problems()) {
            (Ok(mut first), Ok(second)) => {
                first.extend(second);
                SettingsError::Problems(first)
            }
            (Err(first), _) => first,
            (Ok(first), Err(_)) => SettingsError::Problems(first),
        }
    }

    fn into_problems(self) -> Result<Vec<Problem>, SettingsError> {
        match self {
            Self::Problems(problems) => Ok(problems),
            Self::Key { key, reason } => Ok(vec![Problem::new(key.to_owned(), reason, None)]),
            other => Err(other),
        }
    }
}

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The full key path, `poll.interval`.
    pub key: String,
    pub reason: String,
    /// Where the value came from: a file path, or `the environment: VAR`.
    pub origin: Option<String>,
}

impl Problem {
    pub fn new(key: String, reason: impl Into<String>, origin: Option<&str>) -> Self {
        Self {
            key,
            reason: reason.into(),
            origin: origin.map(str::to_owned),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.key)?;
        match self.origin.as_deref() {
            Some(env) if env.starts_with("the environment") => write!(f, " (from {env})")?,
            Some(file) => write!(f, " (in {file})")?,
            None => {}
        }
        write!(f, ": {}", self.reason)
    }
}

/// One problem on the `error:` line itself; several as a count, then one
/// indented line each (no line of the list starts with `error:`).
fn list(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut text = format!("{} problems:", many.len());
            for p in many {
                text.push_str("\n  ");
                text.push_str(&p.to_string());
            }
            text
        }
    }
}

pub(super) fn key_error(key: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Key {
        key,
        reason: reason.into(),
    }
}
