//! The test kit's own oracles, checked against inputs they must accept and
//! inputs they must refuse, so a test relying on them cannot pass vacuously.

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::config::decoded_secret;
use common::secrets::leaks;
use common::{ACCESS_KEY, Reply, SECRET_B64, ScriptedApi, TestSettings, assert_no_secret};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(key: &[u8], claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap()
}

#[tokio::test]
async fn the_scripted_api_counts_only_correctly_signed_fresh_tokens_as_authorized() {
    let api = ScriptedApi::start().await;
    api.set("1", Reply::issuance("1", "WAITED"));
    let key = decoded_secret(SECRET_B64);
    let good = sign(&key, json!({"accessKey": ACCESS_KEY, "iat": now()}));
    let cases = [
        ("good", Some(format!("Bearer {good}")), true),
        (
            "signed with the Base64 text",
            Some(format!(
                "Bearer {}",
                sign(
                    SECRET_B64.as_bytes(),
                    json!({"accessKey": ACCESS_KEY, "iat": now()})
                )
            )),
            false,
        ),
        (
            "any eyJ text",
            Some("Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl".into()),
            false,
        ),
        (
            "stale iat",
            Some(format!(
                "Bearer {}",
                sign(&key, json!({"accessKey": ACCESS_KEY, "iat": now() - 3600}))
            )),
            false,
        ),
        (
            "no accessKey",
            Some(format!("Bearer {}", sign(&key, json!({"iat": now()})))),
            false,
        ),
        ("no scheme", Some(good.clone()), false),
        ("no header", None, false),
    ];
    let http = reqwest::Client::new();
    for (what, header, _) in &cases {
        let mut request = http.get(format!("{}/api/v1/points/issuance/1", api.base_url()));
        if let Some(header) = header {
            request = request.header("Authorization", header);
        }
        let status = request.send().await.unwrap().status();
        assert_eq!(status, 200, "{what}: answered anyway");
    }
    let seen: Vec<bool> = api.requests().iter().map(|r| r.authorized).collect();
    let expected: Vec<bool> = cases.iter().map(|(_, _, ok)| *ok).collect();
    assert_eq!(seen, expected, "authorized, in the order of {cases:#?}");
    assert_eq!(api.requests()[0].access_key.as_deref(), Some(ACCESS_KEY));
}

#[test]
fn the_leak_check_finds_every_encoding_of_the_secrets_and_any_token() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let demo = bunjang_sim::cli::DEMO_SECRET_KEY;
    let bytes = decoded_secret(SECRET_B64);
    let leaked = [
        format!("secret_key = {SECRET_B64}"),
        format!("key {}", SECRET_B64.trim_end_matches('=')),
        format!("key {}", URL_SAFE_NO_PAD.encode(&bytes)),
        format!("key={}", String::from_utf8(bytes.clone()).unwrap()),
        format!(
            "key={}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        format!("SigningSecret({bytes:?})"),
        format!("demo {demo}"),
        format!("demo {}", String::from_utf8(decoded_secret(demo)).unwrap()),
        "authorization: bearer abc".into(),
        "token=eyJhbGciOiJIUzI1NiJ9.e30.x".into(),
    ];
    for text in &leaked {
        assert!(!leaks(text.as_bytes()).is_empty(), "not caught: {text}");
    }
    let caught = std::panic::catch_unwind(|| assert_no_secret("a log", &leaked[0]));
    assert!(caught.is_err(), "assert_no_secret lets a leak through");
    assert_no_secret(
        "an ordinary log",
        "INFO issuance-watcher started\nWARN 401 INVALID_AUTH_TOKEN: credentials refused; pausing",
    );
}

#[test]
fn written_settings_carry_the_secret_and_load_back_as_built() {
    let dir = tempfile::tempdir().unwrap();
    let settings = TestSettings::new("http://127.0.0.1:9", &dir.path().join("w.db"))
        .with(|s| s.poll.lease = Duration::from_secs(7));
    let path = settings.write_toml(&dir.path().join("config.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(SECRET_B64), "{text}");
    let loaded =
        issuance_watcher::settings::Settings::load_with_env(Some(&path), Vec::new()).unwrap();
    assert_eq!(loaded.poll.lease, Duration::from_secs(7));
    assert_eq!(loaded.poll, settings.build().poll);
    assert_eq!(loaded.api.access_key, ACCESS_KEY);
    assert_eq!(
        loaded.signing_secret().unwrap().expose(),
        decoded_secret(SECRET_B64)
    );
    let out = common::cli(&path, &["check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
