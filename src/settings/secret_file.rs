//! Secret files, for the API key (`api.secret_key_file`, the `secret_key`
//! credential) and the webhook keys (`webhooks[N].secret_file`) alike: where
//! one is, and reading it without hanging. A leaf: `secret` and `webhooks` use
//! it, so the two kinds of secret can never be read by different rules.
//!
//! Under systemd the service user usually cannot read the file an operator
//! made (root's, mode 0600): the unit hands it over with `LoadCredential=NAME:PATH`
//! as `$CREDENTIALS_DIRECTORY/NAME`. So a configured file is looked up there
//! first, by its file name, and only then at its path.

use std::io::Read as _;
use std::path::{Path, PathBuf};

/// A secret file is a few dozen bytes; anything much larger is not one.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Where a secret file was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Located {
    /// At the configured path.
    Path(PathBuf),
    /// A systemd credential in `$CREDENTIALS_DIRECTORY`.
    Credential(PathBuf),
}

impl Located {
    pub(super) fn path(&self) -> &Path {
        match self {
            Self::Path(path) | Self::Credential(path) => path,
        }
    }
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(path) => write!(f, "the file {}", path.display()),
            Self::Credential(path) => write!(
                f,
                "the systemd credential {} ($CREDENTIALS_DIRECTORY)",
                path.display()
            ),
        }
    }
}

/// The credential named `name` in `credentials`, if there is one.
pub(super) fn credential(credentials: Option<&Path>, name: &str) -> Option<Located> {
    let path = credentials?.join(name);
    path.exists().then_some(Located::Credential(path))
}

/// Where the secret file `configured` is: the credential of the same file
/// name, else the path itself (relative paths from the working directory).
/// The error says every place looked at.
pub(super) fn locate(configured: &Path, credentials: Option<&Path>) -> Result<Located, String> {
    let name = configured.file_name().and_then(|n| n.to_str());
    if let Some(found) = name.and_then(|name| credential(credentials, name)) {
        return Ok(found);
    }
    if configured.exists() {
        return Ok(Located::Path(configured.to_owned()));
    }
    Err(match (credentials, name) {
        (Some(dir), Some(name)) => format!(
            "{} does not exist, nor {}",
            configured.display(),
            dir.join(name).display()
        ),
        _ => format!("{} does not exist", configured.display()),
    })
}

/// Reads a secret file, refusing what would hang or is not a secret: a FIFO or
/// device (reading would wait for a writer that never comes, and a daemon
/// stuck there never gets to handle SIGTERM), a directory, a file of more than
/// [`MAX_SECRET_FILE_BYTES`]. `Err` is the reason, without the content.
pub(super) fn read(located: &Located) -> Result<String, String> {
    let path = located.path();
    let meta = std::fs::metadata(path).map_err(|e| cannot_read(located, &e))?;
    if !meta.is_file() {
        return Err(format!(
            "{} is not a regular file (a FIFO, socket, device or directory): put the secret in a plain file",
            path.display()
        ));
    }
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "{} is {} bytes: too large for a secret file",
            path.display(),
            meta.len()
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_FILE_BYTES).read_to_string(&mut text))
        .map_err(|e| cannot_read(located, &e))?;
    Ok(text)
}

/// "cannot read", and for a file this user may not read, how to hand it over.
fn cannot_read(located: &Located, e: &std::io::Error) -> String {
    let path = located.path();
    let mut reason = format!("cannot read {}: {e}", path.display());
    if let (Located::Path(_), std::io::ErrorKind::PermissionDenied) = (located, e.kind()) {
        let name = path
            .file_name()
            .map_or_else(|| "NAME".into(), |n| n.to_string_lossy());
        reason.push_str(&format!(
            " (make it readable by this user, or let systemd hand it over: \
             LoadCredential={name}:{})",
            path.display()
        ));
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_of_the_same_name_wins_over_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials");
        std::fs::create_dir(&credentials).unwrap();
        let configured = dir.path().join("webhook_secret");
        std::fs::write(&configured, "at the path").unwrap();
        assert_eq!(
            locate(&configured, None),
            Ok(Located::Path(configured.clone()))
        );
        std::fs::write(credentials.join("webhook_secret"), "handed over").unwrap();
        let found = locate(&configured, Some(&credentials)).unwrap();
        assert_eq!(
            found,
            Located::Credential(credentials.join("webhook_secret"))
        );
        assert_eq!(read(&found).unwrap(), "handed over");
        // A bare name is a credential name (or a file in the working directory).
        assert!(matches!(
            locate(Path::new("webhook_secret"), Some(&credentials)),
            Ok(Located::Credential(_))
        ));
        let missing = locate(Path::new("/nowhere/other"), Some(&credentials)).unwrap_err();
        assert!(
            missing.contains("/nowhere/other") && missing.contains("credentials/other"),
            "{missing}"
        );
    }

    #[test]
    fn what_is_not_a_small_regular_file_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let err = read(&Located::Path(dir.path().to_owned())).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 64 * 1024 + 1]).unwrap();
        let err = read(&Located::Path(big)).unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }
}
