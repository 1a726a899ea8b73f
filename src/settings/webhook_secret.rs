//! A webhook sink's signing key: the bytes `whsec_<base64>` stands for,
//! decoded once, redacted in `Debug`. A leaf under `webhooks` (which holds
//! one) and `webhook_parse` (which decodes one written in the file).

use super::error::SettingsError;
use super::key_bytes::KeyBytes;

/// The shortest key accepted, in bytes.
const MIN_BYTES: usize = 16;

/// A sink's signing key.
#[derive(Debug)]
pub struct WebhookSecret(KeyBytes);

impl WebhookSecret {
    /// From `whsec_<base64>` (the prefix may be left out); `Err` says why not,
    /// never with the value.
    pub(super) fn parse(text: &str) -> Result<Self, &'static str> {
        let text = text.trim();
        let encoded = text.strip_prefix("whsec_").unwrap_or(text);
        let bytes = KeyBytes::decode(encoded)
            .ok_or("is not `whsec_` followed by Base64 (the value is not shown)")?;
        if bytes.expose().len() < MIN_BYTES {
            return Err(
                "is too short: a webhook secret needs at least 16 bytes (24 to 64 recommended)",
            );
        }
        Ok(Self(bytes))
    }

    /// Like `parse`, the error naming the setting `key`.
    pub fn from_text(text: &str, key: &str) -> Result<Self, SettingsError> {
        Self::parse(text).map_err(|reason| SettingsError::Invalid(format!("`{key}`: {reason}")))
    }

    /// The one place the key is exposed: computing a signature.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_with_or_without_its_prefix_and_never_shown() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let with = WebhookSecret::parse(&format!("whsec_{key}\n")).unwrap();
        assert_eq!(with.expose(), (0u8..32).collect::<Vec<_>>());
        assert!(WebhookSecret::parse(key).is_ok());
        assert!(!format!("{with:?}").contains(key));
        assert!(
            WebhookSecret::parse("whsec_AAAA")
                .unwrap_err()
                .contains("too short")
        );
        let err = WebhookSecret::from_text("whsec_%%%secretvalue", "webhooks[2].secret")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`webhooks[2].secret`") && !err.contains("secretvalue"),
            "{err}"
        );
    }
}
