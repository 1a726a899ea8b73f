//! Secret key bytes, decoded once from their Base64 text, for the API secret
//! and the webhook keys alike. A leaf: the settings that hold keys use it.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox};

/// Key bytes decoded from Base64 text: exposed by one method, `[REDACTED]` in
/// `Debug`, zeroed when dropped (`secrecy`).
pub struct KeyBytes(SecretBox<[u8]>);

impl KeyBytes {
    /// The bytes `base64_text` stands for, or `None` if it is not Base64 (the
    /// caller words the error: it must never contain the text).
    pub(super) fn decode(base64_text: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(base64_text)
            .ok()?;
        Some(Self(SecretBox::new(bytes.into_boxed_slice())))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}
