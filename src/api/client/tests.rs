//! Unit tests of `client.rs`.

use super::*;

#[test]
fn hostile_ids_stay_inside_one_path_segment() {
    let settings = crate::settings::Settings::load_with_env(
        None,
        [
            (
                "ISSUANCE_WATCHER__API__ACCESS_KEY".to_string(),
                "k".to_string(),
            ),
            (
                "ISSUANCE_WATCHER__API__SECRET_KEY".to_string(),
                "c2VjcmV0".to_string(),
            ),
            (
                "ISSUANCE_WATCHER__API__BASE_URL".to_string(),
                "http://127.0.0.1:9/".to_string(),
            ),
        ],
    )
    .unwrap();
    let client = ApiClient::from_settings(&settings).unwrap();
    for (id, expected) in [
        ("123", "123"),
        ("../balance", "..%2Fbalance"),
        ("a/b?c#d", "a%2Fb%3Fc%23d"),
        ("%2F", "%252F"),
        ("x y\n'", "x%20y%0A%27"),
        ("@evil.example:80", "%40evil.example%3A80"),
    ] {
        let url = client.lookup_url(id);
        assert_eq!(
            url,
            format!("http://127.0.0.1:9/api/v1/points/issuance/{expected}")
        );
        let parsed = Url::parse(&url).unwrap();
        assert_eq!(parsed.host_str(), Some("127.0.0.1"));
        assert_eq!(parsed.path_segments().unwrap().count(), 5, "{id}");
        assert!(parsed.query().is_none() && parsed.fragment().is_none());
    }
}

#[test]
fn error_answers_are_classified_by_status_and_code() {
    let zone = chrono_tz::Asia::Seoul;
    let body = br#"{"errorCode":"NOT_FOUND_PAY_INBOUND","reason":"x"}"#;
    assert!(matches!(
        classify(StatusCode::NOT_FOUND, body, "1", zone, None),
        Err(PollError::NotFound { .. })
    ));
    assert!(matches!(
        classify(StatusCode::NOT_FOUND, b"<html>", "1", zone, None),
        Err(PollError::Refused {
            http_status: 404,
            ..
        })
    ));
    let expired = br#"{"errorCode":"EXPIRED_AUTH_TOKEN"}"#;
    match classify(StatusCode::UNAUTHORIZED, expired, "1", zone, None) {
        Err(PollError::Unauthorized { code, .. }) => assert_eq!(code, "EXPIRED_AUTH_TOKEN"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        classify(StatusCode::FORBIDDEN, b"", "1", zone, None),
        Err(PollError::Unauthorized { .. })
    ));
    assert!(matches!(
        classify(StatusCode::TOO_MANY_REQUESTS, b"", "1", zone, None),
        Err(PollError::RateLimited)
    ));
    assert!(matches!(
        classify(StatusCode::BAD_GATEWAY, b"<html>", "1", zone, None),
        Err(PollError::Server {
            http_status: 502,
            ..
        })
    ));
    assert!(matches!(
        classify(StatusCode::OK, b"<html>", "1", zone, None),
        Err(PollError::Malformed(_))
    ));
}

#[test]
fn a_redirect_target_is_shown_without_its_query() {
    let value = |s: &str| header::HeaderValue::from_str(s).unwrap();
    assert_eq!(
        redirect_target(Some(&value("http://evil.example:81/x?token=abc"))),
        "http://evil.example:81/x"
    );
    assert_eq!(redirect_target(Some(&value("/other?q=1#f"))), "/other");
    assert_eq!(redirect_target(None), "(no Location)");
}

#[test]
fn a_401_names_a_clock_difference() {
    let now = Utc::now();
    assert!(clock_hint(Some(now + chrono::Duration::seconds(40)), now).contains("40s"));
    assert_eq!(clock_hint(Some(now), now), "");
}
