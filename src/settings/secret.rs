//! The signing secret: found (`api.secret_key`, a file, or a systemd credential),
//! decoded from Base64 once, exposed on exactly one line, redacted in `Debug`.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox};

use super::error::{SettingsError, key_error};
use super::sections::Settings;

/// The credential name looked up in `$CREDENTIALS_DIRECTORY` when no secret is configured.
pub const CREDENTIAL_NAME: &str = "secret_key";

/// The secret key, decoded from its Base64 text: the bytes the JWT is signed with.
pub struct SigningSecret(SecretBox<[u8]>);

impl SigningSecret {
    pub fn from_base64(text: &str) -> Result<Self, SettingsError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| {
                key_error(
                    "api.secret_key",
                    "is not valid Base64 (the value is not shown)",
                )
            })?;
        if bytes.is_empty() {
            return Err(key_error("api.secret_key", "is empty"));
        }
        Ok(Self(SecretBox::new(bytes.into_boxed_slice())))
    }

    /// The one place the secret is exposed: signing a token.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret([REDACTED])")
    }
}

impl Settings {
    /// Checks the credentials, which only commands that talk to the API need
    /// (the database commands work without them).
    pub fn validate_credentials(&self) -> Result<(), SettingsError> {
        if self.api.access_key.trim().is_empty() {
            return Err(key_error("api.access_key", "is required"));
        }
        self.signing_secret().map(drop)
    }

    /// Resolves and decodes the secret key: `api.secret_key`, else `api.secret_key_file`
    /// (also looked up in `$CREDENTIALS_DIRECTORY`), else the `secret_key` credential.
    pub fn signing_secret(&self) -> Result<SigningSecret, SettingsError> {
        let credentials = self.credentials_dir.as_deref();
        if let Some(secret) = &self.api.secret_key {
            return SigningSecret::from_base64(secret.expose_secret());
        }
        let path = match &self.api.secret_key_file {
            Some(path) if path.exists() => path.clone(),
            Some(path) => credentials
                .and_then(|dir| path.file_name().map(|name| dir.join(name)))
                .filter(|p| p.exists())
                .ok_or_else(|| {
                    key_error("api.secret_key_file", format!("{} does not exist", path.display()))
                })?,
            None => credentials
                .map(|dir| dir.join(CREDENTIAL_NAME))
                .filter(|p| p.exists())
                .ok_or_else(|| {
                    key_error(
                        "api.secret_key",
                        "is required (or api.secret_key_file, or a `secret_key` systemd credential)",
                    )
                })?,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            key_error(
                "api.secret_key_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        SigningSecret::from_base64(&text)
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
