//! `user:password@` in a URL setting: a credential inside the URL, which would
//! be shown wherever the URL is (logs, `check-config`, error text) and sent by
//! reqwest as Basic auth on every request. Refused for every URL setting
//! (`api.base_url`, `webhooks[N].url`) by this one rule, in the same words.
//! A leaf: `schema` and `webhooks` use it.

/// Why such a URL is refused; never the value, which holds the password.
pub(super) const REFUSED: &str = "must not carry a user name or password (the value is not shown)";

/// Whether `url` has a user name or a password.
pub(super) fn present(url: &reqwest::Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// `url` without its user name and password, for showing.
pub(super) fn stripped(mut url: reqwest::Url) -> reqwest::Url {
    // Only fails for URLs that cannot have credentials: nothing to strip.
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url
}
