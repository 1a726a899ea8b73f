//! The signing secret: found (`api.secret_key`, a file, or a systemd credential;
//! files are found and read by `secret_file`, as the webhook secrets are),
//! decoded from Base64 once, exposed on exactly one line, redacted in `Debug`.
//! Where it was found ([`SecretSource`]) can be shown; the secret never is, and a
//! problem with a file is reported against the key that named the file.

use std::path::PathBuf;

use secrecy::ExposeSecret;

use super::error::{SettingsError, key_error};
use super::key_bytes::KeyBytes;
use super::secret_file::{self, Located};
use super::sections::Settings;

/// The credential name looked up in `$CREDENTIALS_DIRECTORY` when no secret is configured.
pub const CREDENTIAL_NAME: &str = "secret_key";

/// The secret key, decoded from its Base64 text: the bytes the JWT is signed with.
#[derive(Debug)]
pub struct SigningSecret(KeyBytes);

impl SigningSecret {
    pub fn from_base64(text: &str) -> Result<Self, SettingsError> {
        let bytes = KeyBytes::decode(text.trim()).ok_or_else(|| {
            key_error(
                "api.secret_key",
                "is not valid Base64 (the value is not shown)",
            )
        })?;
        if bytes.expose().is_empty() {
            return Err(key_error("api.secret_key", "is empty"));
        }
        Ok(Self(bytes))
    }

    /// The one place the secret is exposed: signing a token.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }
}

/// Where the secret key was found, for `check-config` (the value is never shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `api.secret_key`, set in this file or `the environment: VAR`.
    Setting(Option<String>),
    /// The file `api.secret_key_file` names.
    File(PathBuf),
    /// A systemd credential in `$CREDENTIALS_DIRECTORY`.
    Credential(PathBuf),
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Setting(Some(origin)) if origin.starts_with("the environment") => {
                write!(f, "api.secret_key, from {origin}")
            }
            Self::Setting(Some(file)) => write!(f, "api.secret_key, set in {file}"),
            Self::Setting(None) => f.write_str("api.secret_key"),
            Self::File(path) => write!(f, "the file {} (api.secret_key_file)", path.display()),
            Self::Credential(path) => write!(
                f,
                "the systemd credential {} ($CREDENTIALS_DIRECTORY)",
                path.display()
            ),
        }
    }
}

impl Settings {
    /// Checks the credentials, which only commands that talk to the API need
    /// (the database commands work without them).
    pub fn validate_credentials(&self) -> Result<(), SettingsError> {
        self.secret_source().map(drop)
    }

    /// Like [`Settings::validate_credentials`], and says where the secret came from.
    pub fn secret_source(&self) -> Result<SecretSource, SettingsError> {
        if self.api.access_key.trim().is_empty() {
            return Err(key_error(
                "api.access_key",
                "is required: set it in the file or as ISSUANCE_WATCHER__API__ACCESS_KEY",
            ));
        }
        self.find_secret().map(|(_, source)| source)
    }

    /// Resolves and decodes the secret key: `api.secret_key`, else `api.secret_key_file`
    /// (also looked up in `$CREDENTIALS_DIRECTORY`), else the `secret_key` credential.
    pub fn signing_secret(&self) -> Result<SigningSecret, SettingsError> {
        self.find_secret().map(|(secret, _)| secret)
    }

    fn find_secret(&self) -> Result<(SigningSecret, SecretSource), SettingsError> {
        let credentials = self.credentials_dir.as_deref();
        if let Some(secret) = &self.api.secret_key {
            let source = SecretSource::Setting(self.secret_origin.clone());
            return Ok((SigningSecret::from_base64(secret.expose_secret())?, source));
        }
        let (located, key) = match &self.api.secret_key_file {
            Some(path) => (
                secret_file::locate(path, credentials)
                    .map_err(|reason| key_error("api.secret_key_file", reason))?,
                "api.secret_key_file",
            ),
            None => (
                secret_file::credential(credentials, CREDENTIAL_NAME).ok_or_else(|| {
                    key_error(
                        "api.secret_key",
                        "is required (or api.secret_key_file, or a `secret_key` systemd credential)",
                    )
                })?,
                "api.secret_key",
            ),
        };
        let text = secret_file::read(&located).map_err(|reason| key_error(key, reason))?;
        let secret = SigningSecret::from_base64(&text).map_err(|_| {
            key_error(
                key,
                format!(
                    "{} does not hold valid Base64 (the secret key as issued; the value is not shown)",
                    located.path().display()
                ),
            )
        })?;
        let source = match located {
            Located::Path(path) => SecretSource::File(path),
            Located::Credential(path) => SecretSource::Credential(path),
        };
        Ok((secret, source))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{SECRET, env};
    use super::*;

    #[test]
    fn a_missing_access_key_names_its_key() {
        let settings =
            Settings::load_with_env(None, env(&[("ISSUANCE_WATCHER__API__SECRET_KEY", SECRET)]))
                .unwrap();
        let err = settings.validate_credentials().unwrap_err().to_string();
        assert!(err.contains("access_key"), "{err}");
    }

    #[test]
    fn a_secret_that_is_not_base64_is_refused_without_showing_it() {
        let vars = env(&[
            ("ISSUANCE_WATCHER__API__ACCESS_KEY", "ak"),
            ("ISSUANCE_WATCHER__API__SECRET_KEY", "not base64 at all!"),
        ]);
        let err = Settings::load_with_env(None, vars)
            .unwrap()
            .validate_credentials()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("api.secret_key") && !err.contains("not base64 at all"),
            "{err}"
        );
    }

    #[test]
    fn the_secret_is_found_in_the_credentials_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret_key"), format!("{SECRET}\n")).unwrap();
        let credentials = dir.path().to_str().unwrap();
        let by_default_name = env(&[
            ("ISSUANCE_WATCHER__API__ACCESS_KEY", "ak"),
            ("CREDENTIALS_DIRECTORY", credentials),
        ]);
        let s = Settings::load_with_env(None, by_default_name).unwrap();
        assert_eq!(
            s.signing_secret().unwrap().expose(),
            b"issuance-watcher-test-vector-secret-32b!"
        );

        let by_configured_file = env(&[
            ("ISSUANCE_WATCHER__API__ACCESS_KEY", "ak"),
            (
                "ISSUANCE_WATCHER__API__SECRET_KEY_FILE",
                "/etc/issuance-watcher/secret_key",
            ),
            ("CREDENTIALS_DIRECTORY", credentials),
        ]);
        assert!(
            Settings::load_with_env(None, by_configured_file)
                .unwrap()
                .validate_credentials()
                .is_ok()
        );
    }
}
