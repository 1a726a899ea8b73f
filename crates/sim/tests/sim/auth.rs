//! The simulator's authentication, as a client sees it over real HTTP: HS256
//! with the decoded secret, the documented 401 codes, the token window, static tokens.

use std::time::Duration;

use crate::client::{Client, LOOKUP, demo_secret, now_secs, sign, start, started};
use bunjang_sim::SimConfig;
use bunjang_sim::cli::{DEMO_ACCESS_KEY, DEMO_SECRET_KEY};
use serde_json::json;

#[tokio::test]
async fn a_token_signed_with_the_decoded_secret_is_accepted() {
    let sim = start(SimConfig::default()).await;
    let answer = Client::new(&sim).get("/api/v1/points/balance").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json(),
        json!({"data": {"balance": 10_000_000, "pointExpiredIn30Days": 300_000}})
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_token_signed_with_the_base64_text_is_refused() {
    let sim = start(SimConfig::default()).await;
    let claims = json!({"accessKey": DEMO_ACCESS_KEY, "iat": now_secs()});
    let wrong = sign(DEMO_SECRET_KEY.as_bytes(), &claims);
    let answer = Client::new(&sim)
        .send(
            reqwest::Method::GET,
            "/api/v1/points/balance",
            Some(wrong),
            None,
        )
        .await;
    assert_eq!(answer.status_and_code(), (401, "INVALID_AUTH_TOKEN".into()));
    sim.shutdown().await;
}

#[tokio::test]
async fn every_auth_failure_answers_its_documented_code() {
    let (sim, client) = started(SimConfig::default()).await;
    let key = demo_secret();
    let now = now_secs();
    let nonce = "5b1c1f7e-6a57-4c1e-9a40-3b3c1f5f2e11";
    let cases: Vec<(&str, reqwest::Method, Option<String>, &str)> = vec![
        (
            "no header",
            reqwest::Method::GET,
            None,
            "MISSING_AUTH_TOKEN",
        ),
        (
            "garbage",
            reqwest::Method::GET,
            Some("not.a.jwt".into()),
            "INVALID_AUTH_TOKEN",
        ),
        (
            "no accessKey",
            reqwest::Method::GET,
            Some(sign(&key, &json!({"iat": now}))),
            "MISSING_ACCESS_KEY",
        ),
        (
            "wrong accessKey",
            reqwest::Method::GET,
            Some(sign(
                &key,
                &json!({"accessKey": "someone-else", "iat": now}),
            )),
            "INVALID_ACCESS_KEY",
        ),
        (
            "no iat",
            reqwest::Method::GET,
            Some(sign(&key, &json!({"accessKey": DEMO_ACCESS_KEY}))),
            "MISSING_IAT_CLAIM",
        ),
        (
            "stale iat",
            reqwest::Method::GET,
            Some(sign(
                &key,
                &json!({"accessKey": DEMO_ACCESS_KEY, "iat": now - 60}),
            )),
            "EXPIRED_AUTH_TOKEN",
        ),
        (
            "iat in the future",
            reqwest::Method::GET,
            Some(sign(
                &key,
                &json!({"accessKey": DEMO_ACCESS_KEY, "iat": now + 60}),
            )),
            "EXPIRED_AUTH_TOKEN",
        ),
        (
            "iat in milliseconds",
            reqwest::Method::GET,
            Some(sign(
                &key,
                &json!({"accessKey": DEMO_ACCESS_KEY, "iat": now * 1000}),
            )),
            "EXPIRED_AUTH_TOKEN",
        ),
        (
            "POST without nonce",
            reqwest::Method::POST,
            Some(sign(
                &key,
                &json!({"accessKey": DEMO_ACCESS_KEY, "iat": now}),
            )),
            "INVALID_AUTH_TOKEN",
        ),
    ];
    for (case, method, auth, code) in cases {
        let path = if method == reqwest::Method::POST {
            LOOKUP
        } else {
            "/api/v1/points/balance"
        };
        let answer = client
            .send(method, path, auth, Some(json!({"amount": 1000})))
            .await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (401, code.to_owned()),
            "{case}: {}",
            answer.text
        );
    }
    // A valid nonce-carrying POST goes through.
    let ok = sign(
        &key,
        &json!({"accessKey": DEMO_ACCESS_KEY, "iat": now, "nonce": nonce}),
    );
    let answer = client
        .send(
            reqwest::Method::POST,
            LOOKUP,
            Some(ok),
            Some(json!({"amount": 1000})),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_token_window_is_configurable() {
    let sim = start(SimConfig::default().with_token_window(Duration::from_secs(30))).await;
    let old = sign(
        &demo_secret(),
        &json!({"accessKey": DEMO_ACCESS_KEY, "iat": now_secs() - 20}),
    );
    let answer = Client::new(&sim)
        .send(
            reqwest::Method::GET,
            "/api/v1/points/balance",
            Some(old),
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_static_token_is_accepted_for_load_generators() {
    let sim = start(SimConfig {
        static_token: Some("wrk-token".into()),
        ..SimConfig::default()
    })
    .await;
    let ids = sim.seed(1);
    let answer = Client::new(&sim)
        .send(
            reqwest::Method::GET,
            &format!("{LOOKUP}/{}", ids[0]),
            Some("wrk-token".into()),
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    sim.shutdown().await;
}
