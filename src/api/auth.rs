//! Request authentication: a fresh HS256 JWT for every request, retries included.
//!
//! The API accepts a token only for a few seconds after its `iat`, so tokens are
//! never cached. The secret is issued as Base64 text and the signature uses its
//! decoded bytes (signing with the text itself is the classic mistake the API refuses).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::settings::SigningSecret;

#[derive(Debug, Serialize)]
struct Claims<'a> {
    #[serde(rename = "accessKey")]
    access_key: &'a str,
    iat: u64,
    nonce: String,
}

/// Mints tokens for one access key. Holds the signing key, never prints it.
pub struct TokenMinter {
    access_key: String,
    key: EncodingKey,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot sign the request token: {0}")]
pub struct MintError(String);

impl TokenMinter {
    pub fn new(access_key: impl Into<String>, secret: &SigningSecret) -> Self {
        Self {
            access_key: access_key.into(),
            key: EncodingKey::from_secret(secret.expose()),
        }
    }

    /// A token issued now (real wall-clock seconds), with a random nonce.
    pub fn mint(&self) -> Result<String, MintError> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.mint_at(iat)
    }

    pub fn mint_at(&self, iat: u64) -> Result<String, MintError> {
        let claims = Claims {
            access_key: &self.access_key,
            iat,
            nonce: uuid::Uuid::new_v4().to_string(),
        };
        // The error text of jsonwebtoken never includes the key; keep only its kind.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .map_err(|e| MintError(format!("{:?}", e.kind())))
    }
}

impl std::fmt::Debug for TokenMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenMinter")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    const SECRET_B64: &str = "aXNzdWFuY2Utd2F0Y2hlci10ZXN0LXZlY3Rvci1zZWNyZXQtMzJiIQ==";
    const VECTOR_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhY2Nlc3NLZXkiOiJ0ZXN0LWFjY2Vzcy1rZXkiLCJpYXQiOjE3NjcyMjU2MDB9.lzyDVUWpuu0fe0SJilVJz0lvC3xj5IRyFrsNATQ8hgU";

    fn validation() -> Validation {
        let mut v = Validation::new(Algorithm::HS256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v
    }

    fn decode(token: &str, key: &[u8]) -> Option<serde_json::Value> {
        jsonwebtoken::decode::<serde_json::Value>(
            token,
            &DecodingKey::from_secret(key),
            &validation(),
        )
        .ok()
        .map(|d| d.claims)
    }

    fn decoded_secret() -> Vec<u8> {
        SigningSecret::from_base64(SECRET_B64)
            .unwrap()
            .expose()
            .to_vec()
    }

    #[test]
    fn minted_token_verifies_with_the_decoded_secret_and_carries_the_claims() {
        let minter = TokenMinter::new(
            "test-access-key",
            &SigningSecret::from_base64(SECRET_B64).unwrap(),
        );
        let token = minter.mint_at(1_767_225_600).unwrap();
        let claims = decode(&token, &decoded_secret()).expect("signature verifies");
        assert_eq!(claims["accessKey"], "test-access-key");
        assert_eq!(claims["iat"], 1_767_225_600);
        let nonce = claims["nonce"].as_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(nonce).unwrap().get_version_num(), 4);
    }

    #[test]
    fn minted_token_does_not_verify_with_the_base64_text_as_key() {
        let minter = TokenMinter::new("k", &SigningSecret::from_base64(SECRET_B64).unwrap());
        assert!(decode(&minter.mint().unwrap(), SECRET_B64.as_bytes()).is_none());
    }

    #[test]
    fn the_independent_test_vector_verifies_with_our_secret_handling() {
        let claims = decode(VECTOR_TOKEN, &decoded_secret()).expect("PyJWT's token verifies");
        assert_eq!(claims["accessKey"], "test-access-key");
        assert_eq!(claims["iat"], 1_767_225_600);
    }

    #[test]
    fn iat_is_now_in_seconds_and_each_token_is_fresh() {
        let minter = TokenMinter::new("k", &SigningSecret::from_base64(SECRET_B64).unwrap());
        let (a, b) = (minter.mint().unwrap(), minter.mint().unwrap());
        assert_ne!(a, b, "nonce makes every token unique");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let iat = decode(&a, &decoded_secret()).unwrap()["iat"]
            .as_u64()
            .unwrap();
        assert!(now.abs_diff(iat) <= 2, "iat {iat} vs now {now}");
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let minter = TokenMinter::new("k", &SigningSecret::from_base64(SECRET_B64).unwrap());
        let shown = format!("{minter:?}");
        assert!(!shown.contains(SECRET_B64) && !shown.contains("issuance-watcher-test"));
    }
}
