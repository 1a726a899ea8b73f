//! The dashboard's admin token (`http.admin_token_file`): whoever presents it
//! may act from the dashboard (enable or disable a sink, redeliver an event,
//! cancel a READY charge). A secret like the API key: read from its file (or
//! the systemd credential of the same name) by the same rules, never logged,
//! shown or stored, and compared in constant time.

use secrecy::{ExposeSecret as _, SecretString};

use super::error::key_error;
use super::secret_file::{locate, read};
use super::{Settings, SettingsError};

/// A shorter token could be guessed through the login form.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// The admin token, read from `http.admin_token_file`.
#[derive(Clone)]
pub struct AdminToken {
    token: SecretString,
    /// Where it was read (shown by `check-config`; never the token).
    pub source: String,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminToken([REDACTED] from {})", self.source)
    }
}

impl AdminToken {
    /// A token from its text (surrounding white space removed), for tests and tools.
    pub fn new(text: &str, source: &str) -> Result<Self, String> {
        let token = text.trim();
        if token.chars().count() < MIN_ADMIN_TOKEN_CHARS {
            return Err(format!(
                "the admin token must be at least {MIN_ADMIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 32`)"
            ));
        }
        Ok(Self {
            token: SecretString::from(token.to_owned()),
            source: source.to_owned(),
        })
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (
            self.token.expose_secret().as_bytes(),
            presented.trim().as_bytes(),
        );
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
        }
        diff == 0
    }
}

impl Settings {
    /// The dashboard's admin token, if `http.admin_token_file` is set; an
    /// error says why the file cannot be used, never its content.
    pub fn admin_token(&self) -> Result<Option<AdminToken>, SettingsError> {
        const KEY: &str = "http.admin_token_file";
        let Some(configured) = &self.http.admin_token_file else {
            return Ok(None);
        };
        let located = locate(configured, self.credentials_dir.as_deref())
            .map_err(|reason| key_error(KEY, reason))?;
        let text = read(&located).map_err(|reason| key_error(KEY, reason))?;
        AdminToken::new(&text, &located.to_string())
            .map(Some)
            .map_err(|reason| key_error(KEY, format!("{reason} ({located})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_itself_matches() {
        let token = AdminToken::new(" 0123456789abcdef\n", "test").unwrap();
        assert!(token.matches("0123456789abcdef"));
        for wrong in [
            "",
            "0123456789abcde",
            "0123456789abcdefg",
            "1123456789abcdef",
        ] {
            assert!(!token.matches(wrong), "{wrong:?}");
        }
        assert!(AdminToken::new("short", "test").is_err());
        assert!(!format!("{token:?}").contains("0123"));
    }
}
