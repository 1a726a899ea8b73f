//! Token verification, as bunjang-api.md describes the real API.
//!
//! HS256 with the Base64-*decoded* secret; `accessKey` and `iat` (seconds) on every
//! request, `nonce` on POST/PUT/DELETE (each accepted once: a replayed write
//! is refused), no `exp`. The `iat` window is checked
//! against the real wall clock (`SystemTime`), never the accelerated business
//! clock, because a client mints tokens from its real clock.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// The documented 401 codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no Authorization: Bearer header")]
    MissingAuthToken,
    #[error("the token has no accessKey claim")]
    MissingAccessKey,
    #[error("the accessKey claim is not the issued access key")]
    InvalidAccessKey,
    #[error("the token has no iat claim")]
    MissingIatClaim,
    #[error("the token is malformed, badly signed, or lacks a nonce on a write")]
    InvalidAuthToken,
    #[error("iat is outside the accepted window (stale token or client clock off)")]
    ExpiredAuthToken,
}

impl AuthError {
    pub fn code(self) -> &'static str {
        match self {
            AuthError::MissingAuthToken => "MISSING_AUTH_TOKEN",
            AuthError::MissingAccessKey => "MISSING_ACCESS_KEY",
            AuthError::InvalidAccessKey => "INVALID_ACCESS_KEY",
            AuthError::MissingIatClaim => "MISSING_IAT_CLAIM",
            AuthError::InvalidAuthToken => "INVALID_AUTH_TOKEN",
            AuthError::ExpiredAuthToken => "EXPIRED_AUTH_TOKEN",
        }
    }
}

/// Checks `Authorization` headers against one access key and secret.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    access_key: String,
    window_ms: i64,
    future_leeway_ms: i64,
    static_token: Option<String>,
    /// Nonces of accepted writes, with their `iat` (ms), kept while a token
    /// carrying them could still be accepted: a replayed write is refused.
    nonces: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

impl Verifier {
    /// `secret_key_base64` is the secret as issued; it is decoded here, once.
    pub fn new(
        access_key: &str,
        secret_key_base64: &str,
        window: Duration,
        future_leeway: Duration,
        static_token: Option<String>,
    ) -> anyhow::Result<Self> {
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret_key_base64.trim())
            .context("the secret key must be Base64 text (as issued)")?;
        let mut validation = Validation::new(Algorithm::HS256);
        // The API requires no `exp`; only our own claim checks below apply.
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        Ok(Self {
            key: DecodingKey::from_secret(&secret),
            validation,
            access_key: access_key.to_owned(),
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            future_leeway_ms: i64::try_from(future_leeway.as_millis()).unwrap_or(i64::MAX),
            static_token,
            nonces: std::sync::Mutex::default(),
        })
    }

    /// Verifies an `Authorization` header value; `write` is true for POST/PUT/DELETE.
    pub fn verify(
        &self,
        authorization: Option<&[u8]>,
        write: bool,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        let header = authorization.ok_or(AuthError::MissingAuthToken)?;
        let header = std::str::from_utf8(header)
            .map_err(|_| AuthError::InvalidAuthToken)?
            .trim();
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ if header.is_empty() || header.eq_ignore_ascii_case("bearer") => {
                return Err(AuthError::MissingAuthToken);
            }
            _ => return Err(AuthError::InvalidAuthToken),
        };
        if token.is_empty() {
            return Err(AuthError::MissingAuthToken);
        }
        if self.static_token.as_deref() == Some(token) {
            return Ok(());
        }
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|_| AuthError::InvalidAuthToken)?
            .claims;
        match claims.get("accessKey") {
            None | Some(Value::Null) => return Err(AuthError::MissingAccessKey),
            Some(Value::String(k)) if *k == self.access_key => {}
            Some(_) => return Err(AuthError::InvalidAccessKey),
        }
        let iat = match claims.get("iat") {
            None | Some(Value::Null) => return Err(AuthError::MissingIatClaim),
            // Seconds; a fractional value (Python's time.time()) is still seconds.
            Some(v) => match (v.as_i64(), v.as_f64()) {
                (Some(secs), _) => secs,
                (None, Some(secs)) if secs.is_finite() => secs.floor() as i64,
                _ => return Err(AuthError::InvalidAuthToken),
            },
        };
        let now_ms = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        };
        let age_ms = now_ms.saturating_sub(iat.saturating_mul(1_000));
        if age_ms > self.window_ms || -age_ms > self.future_leeway_ms {
            return Err(AuthError::ExpiredAuthToken);
        }
        if write {
            let Some(Value::String(nonce)) = claims
                .get("nonce")
                .filter(|n| n.as_str().is_some_and(|n| !n.is_empty()))
            else {
                return Err(AuthError::InvalidAuthToken);
            };
            let mut seen = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
            // Forget nonces whose tokens have expired: they cannot come back.
            let horizon =
                now_ms.saturating_sub(self.window_ms.saturating_add(self.future_leeway_ms));
            seen.retain(|_, iat_ms| *iat_ms >= horizon);
            if seen
                .insert(nonce.clone(), iat.saturating_mul(1_000))
                .is_some()
            {
                return Err(AuthError::InvalidAuthToken);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "aXNzdWFuY2Utd2F0Y2hlci10ZXN0LXZlY3Rvci1zZWNyZXQtMzJiIQ==";
    const VALID: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhY2Nlc3NLZXkiOiJ0ZXN0LWFjY2Vzcy1rZXkiLCJpYXQiOjE3NjcyMjU2MDB9.lzyDVUWpuu0fe0SJilVJz0lvC3xj5IRyFrsNATQ8hgU";
    const SIGNED_WITH_TEXT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhY2Nlc3NLZXkiOiJ0ZXN0LWFjY2Vzcy1rZXkiLCJpYXQiOjE3NjcyMjU2MDB9.sS3nOcQquodnztFM3b1jorpnoDij2ixqkizDa1bavXY";
    const IAT: u64 = 1_767_225_600;

    fn verifier() -> Verifier {
        Verifier::new(
            "test-access-key",
            SECRET,
            Duration::from_secs(5),
            Duration::from_secs(2),
            None,
        )
        .unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn bearer(token: &str) -> Vec<u8> {
        format!("Bearer {token}").into_bytes()
    }

    #[test]
    fn the_documented_vector_verifies() {
        assert_eq!(
            verifier().verify(Some(&bearer(VALID)), false, at(IAT + 1)),
            Ok(())
        );
    }

    #[test]
    fn the_vector_signed_with_the_base64_text_is_refused() {
        assert_eq!(
            verifier().verify(Some(&bearer(SIGNED_WITH_TEXT)), false, at(IAT + 1)),
            Err(AuthError::InvalidAuthToken)
        );
    }

    #[test]
    fn the_window_is_checked_against_the_given_real_time() {
        let v = verifier();
        assert_eq!(v.verify(Some(&bearer(VALID)), false, at(IAT + 5)), Ok(()));
        assert_eq!(
            v.verify(Some(&bearer(VALID)), false, at(IAT + 6)),
            Err(AuthError::ExpiredAuthToken)
        );
        assert_eq!(v.verify(Some(&bearer(VALID)), false, at(IAT - 2)), Ok(()));
        assert_eq!(
            v.verify(Some(&bearer(VALID)), false, at(IAT - 3)),
            Err(AuthError::ExpiredAuthToken)
        );
    }

    /// `Bearer` + a token of `claims` signed with the test secret.
    fn sign(claims: serde_json::Value) -> Vec<u8> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(SECRET)
            .unwrap();
        let header = jsonwebtoken::Header::new(Algorithm::HS256);
        let key = jsonwebtoken::EncodingKey::from_secret(&key);
        bearer(&jsonwebtoken::encode(&header, &claims, &key).unwrap())
    }

    #[test]
    fn fractional_iat_is_seconds_and_text_iat_is_invalid() {
        let v = verifier();
        let fractional =
            sign(serde_json::json!({"accessKey": "test-access-key", "iat": 1_767_225_600.7}));
        assert_eq!(v.verify(Some(&fractional), false, at(IAT + 1)), Ok(()));
        let text = sign(serde_json::json!({"accessKey": "test-access-key", "iat": "1767225600"}));
        assert_eq!(
            v.verify(Some(&text), false, at(IAT + 1)),
            Err(AuthError::InvalidAuthToken)
        );
    }

    #[test]
    fn writes_need_a_nonce() {
        assert_eq!(
            verifier().verify(Some(&bearer(VALID)), true, at(IAT)),
            Err(AuthError::InvalidAuthToken)
        );
    }

    #[test]
    fn a_writes_nonce_is_accepted_once() {
        let v = verifier();
        let claims = |nonce: &str| {
            sign(serde_json::json!({"accessKey": "test-access-key", "iat": IAT, "nonce": nonce}))
        };
        let first = claims("6f1c6c1e-8d1e-4a43-9a0e-2c1f3c7b9d10");
        assert_eq!(v.verify(Some(&first), true, at(IAT)), Ok(()));
        assert_eq!(
            v.verify(Some(&first), true, at(IAT + 1)),
            Err(AuthError::InvalidAuthToken),
            "a replayed write is refused"
        );
        assert_eq!(
            v.verify(Some(&first), false, at(IAT + 1)),
            Ok(()),
            "reads need no nonce"
        );
        let other = claims("0b7c1d57-2f9a-4e8c-b3c1-6d2a9e4f7a21");
        assert_eq!(v.verify(Some(&other), true, at(IAT + 1)), Ok(()));
        assert_eq!(
            v.verify(Some(&claims("")), true, at(IAT + 1)),
            Err(AuthError::InvalidAuthToken)
        );
    }

    #[test]
    fn header_shapes_map_to_codes() {
        let v = verifier();
        assert_eq!(
            v.verify(None, false, at(IAT)),
            Err(AuthError::MissingAuthToken)
        );
        assert_eq!(
            v.verify(Some(b"Bearer "), false, at(IAT)),
            Err(AuthError::MissingAuthToken)
        );
        assert_eq!(
            v.verify(Some(b"Basic abc"), false, at(IAT)),
            Err(AuthError::InvalidAuthToken)
        );
        assert_eq!(
            v.verify(Some(b"Bearer garbage"), false, at(IAT)),
            Err(AuthError::InvalidAuthToken)
        );
        assert_eq!(
            v.verify(Some(&[0xff, 0xfe]), false, at(IAT)),
            Err(AuthError::InvalidAuthToken)
        );
    }

    #[test]
    fn a_static_token_is_accepted_as_is() {
        let v = Verifier::new(
            "k",
            SECRET,
            Duration::from_secs(5),
            Duration::ZERO,
            Some("wrk".into()),
        )
        .unwrap();
        assert_eq!(v.verify(Some(b"Bearer wrk"), true, at(0)), Ok(()));
        assert_eq!(
            v.verify(Some(b"Bearer other"), true, at(0)),
            Err(AuthError::InvalidAuthToken)
        );
    }

    #[test]
    fn a_secret_that_is_not_base64_is_a_configuration_error() {
        assert!(
            Verifier::new(
                "k",
                "not base64!",
                Duration::from_secs(5),
                Duration::ZERO,
                None
            )
            .is_err()
        );
    }
}
