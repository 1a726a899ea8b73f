//! The URLs a setting can hold, each parsed by its own rule: the API's base
//! (requests are appended to it), a webhook sink's (a Slack sink's URL is its
//! secret, so errors never echo it) and PostgreSQL's (never with a password).
//! None of them may carry a user name or password.

use config::ValueKind;

use super::keys::Kind;
use super::values::{clip, expected, one_of};

/// A [`Kind::SinkUrl`]: an http(s) URL with a host and no user name or
/// password. Errors never echo the text: a Slack sink's URL is its secret.
pub(in crate::settings) fn sink_url(value: &ValueKind) -> Result<reqwest::Url, String> {
    let ValueKind::String(text) = value else {
        return Err(format!("expected {}", expected(Kind::SinkUrl)));
    };
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| format!("is not a URL: {e} (the value is not shown)"))?;
    if super::super::userinfo::present(&url) {
        return Err(super::super::userinfo::REFUSED.into());
    }
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(
            "must be an http(s) URL with a host, such as \"https://shop.example/hooks\" \
             (the value is not shown)"
                .to_owned(),
        );
    }
    Ok(url)
}

/// The query parameters of a PostgreSQL URL that sqlx understands (its
/// `PgConnectOptions` parser), but `password`. Any other is refused: sqlx
/// would ignore it and log its value, which could be a password misspelled.
const POSTGRES_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "application_name",
    "options",
];

/// A [`Kind::DatabaseUrl`]: `postgres://USER@HOST:PORT/DB?sslmode=...`, as
/// sqlx parses it, with no password anywhere in it (the password comes from
/// `database.password_file` or libpq's environment). Errors never echo the
/// text: it may hold the password this refuses.
pub(in crate::settings) fn database_url(value: &ValueKind) -> Result<reqwest::Url, String> {
    let ValueKind::String(text) = value else {
        return Err(format!("expected {}", expected(Kind::DatabaseUrl)));
    };
    let url = reqwest::Url::parse(text.trim()).map_err(|e| {
        format!(
            "is not a URL: {e}; expected {} (the value is not shown)",
            expected(Kind::DatabaseUrl)
        )
    })?;
    let password_parameter = url.query_pairs().any(|(k, _)| k == "password");
    if url.password().is_some() || password_parameter {
        return Err(
            "must not carry a password (the value is not shown): put it in a file \
                    named by database.password_file, or use PGPASSWORD / PGPASSFILE"
                .to_owned(),
        );
    }
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "{:?} is not PostgreSQL's scheme: expected {} (the value is not shown); for \
             SQLite, set database.path instead",
            clip(url.scheme()),
            expected(Kind::DatabaseUrl)
        ));
    }
    let mut unknown: Vec<String> = url
        .query_pairs()
        .map(|(k, _)| k.into_owned())
        .filter(|k| {
            let options_key = k.starts_with("options[") && k.ends_with(']');
            !(options_key || POSTGRES_PARAMETERS.contains(&k.as_str()))
        })
        .map(|k| format!("{:?}", crate::domain::names::shown(&k)))
        .collect();
    if !unknown.is_empty() {
        unknown.dedup();
        return Err(format!(
            "has unknown connect parameter {}: expected {} (the value is not shown)",
            unknown.join(", "),
            one_of(POSTGRES_PARAMETERS)
        ));
    }
    url.as_str()
        .parse::<sqlx::postgres::PgConnectOptions>()
        .map_err(|e| format!("is not a URL sqlx can connect with: {e}"))?;
    Ok(url)
}

/// The API's base: requests go to `{base_url}/api/v1/...`, so anything after
/// the path would end up in the middle of every request's URL. A user name or
/// password is refused first, and errors echo the text without one.
pub(super) fn base_url(text: &str) -> Result<(), String> {
    let shown = clip(&without_userinfo(text));
    let url = reqwest::Url::parse(text).map_err(|e| format!("{shown:?} is not a URL: {e}"))?;
    if super::super::userinfo::present(&url) {
        return Err(super::super::userinfo::REFUSED.into());
    }
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "{shown:?} must be an http(s) URL with a host, such as \"https://openapi.bunjang.co.kr\""
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || text.contains(['?', '#']) {
        return Err(format!(
            "{shown:?} has a query or fragment (`?...`, `#...`): the request paths are appended \
             to the base URL, so it must end at its path"
        ));
    }
    Ok(())
}

/// URL text with whatever stands before an `@` in its authority replaced, for
/// echoing text that may not even parse.
fn without_userinfo(text: &str) -> String {
    let (scheme, rest) = text.split_once("://").unwrap_or(("", text));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) if scheme.is_empty() => format!("[REDACTED]{}", &rest[at..]),
        Some(at) => format!("{scheme}://[REDACTED]{}", &rest[at..]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_that_cannot_take_a_path_are_refused() {
        assert!(base_url("https://openapi.bunjang.co.kr").is_ok());
        assert!(base_url("http://127.0.0.1:8080/prefix/").is_ok());
        for bad in [
            "http://h/p?x=1",
            "http://h/p#f",
            "http://h/?",
            "ftp://h",
            "not a url",
            "http://u:p@h",
        ] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
        for with_password in [
            "http://u:hunter2@h",
            "ftp://u:hunter2@h",
            "http://u:hunter2@h/?x",
            "http://u:hunter2@[::1",
        ] {
            let err = base_url(with_password).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn sink_urls_are_typed_and_never_echoed() {
        let url = |t: &str| sink_url(&ValueKind::String(t.to_owned()));
        assert_eq!(
            url("https://shop.example/hooks?token=abc")
                .unwrap()
                .host_str(),
            Some("shop.example")
        );
        for bad in [
            "not a url SECRETPART",
            "ftp://h/SECRETPART",
            "https://user:SECRETPART@h/",
            "mailto:SECRETPART@h",
        ] {
            let err = url(bad).unwrap_err();
            assert!(!err.contains("SECRETPART"), "{bad}: {err}");
        }
        assert!(sink_url(&ValueKind::I64(1)).is_err());
    }
}
