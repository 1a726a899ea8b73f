//! What every page shares: the frame around its content (navigation, who is
//! signed in, the CSRF token for its forms, the reload), rendering, and how a
//! failed read is shown (logged, without detail on the page).

use askama::Template;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use tracing::warn;

use super::Dashboard;
use super::view::when;
use crate::domain::timefmt::to_db;
use crate::store::StoreError;

/// How often the live pages reload themselves, in seconds.
const REFRESH_SECONDS: u32 = 30;
/// The sign-in cookie's name.
pub(super) const COOKIE: &str = "iw_admin";

/// What every page shows around its content.
pub(super) struct Chrome {
    pub title: String,
    pub admin: bool,
    /// Whether a token is configured (else the dashboard is read-only).
    pub can_sign_in: bool,
    /// The CSRF token for the page's forms (empty unless signed in, or on the sign-in form).
    pub csrf: String,
    pub refresh: Option<u32>,
    pub notice: Option<String>,
    pub rendered_at: String,
}

impl Dashboard {
    /// The frame of a page titled `title`; `refresh`: it reloads itself.
    pub(super) fn chrome(&self, headers: &HeaderMap, title: &str, refresh: bool) -> Chrome {
        let admin = is_admin(self, headers);
        let sign_in_form = title == "Sign in" && self.inner.admin.is_some();
        Chrome {
            title: title.to_owned(),
            admin,
            can_sign_in: self.inner.admin.is_some(),
            csrf: if admin || sign_in_form {
                self.inner.csrf.clone()
            } else {
                String::new()
            },
            refresh: refresh.then_some(REFRESH_SECONDS),
            notice: None,
            rendered_at: when(Some(&to_db(Utc::now())), self.zone()),
        }
    }

    /// The zone instants are shown in (`api.timezone`: KST).
    pub(super) fn zone(&self) -> chrono_tz::Tz {
        self.inner.settings.api.timezone
    }
}

/// Whether the request carries this process's sign-in cookie (and a token
/// is configured at all), compared in time independent of where they differ.
pub(super) fn is_admin(d: &Dashboard, headers: &HeaderMap) -> bool {
    if d.inner.admin.is_none() {
        return false;
    }
    let expected = d.inner.session.as_bytes();
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| name == COOKIE && same(value.as_bytes(), expected))
}

/// Byte strings compared in time independent of where they differ.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

/// Renders `template`, or a 500 that says only that rendering failed.
pub(super) fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            warn!(error = %e, "cannot render a dashboard page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot render the page\n",
            )
                .into_response()
        }
    }
}

/// A store error as a page: logged, shown without detail.
pub(super) fn failed(e: StoreError) -> Response {
    warn!(error = %e, "a dashboard read failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the database could not be read; see the daemon's log\n",
    )
        .into_response()
}

/// A page that says one thing (an action's outcome, a refusal).
#[derive(Template)]
#[template(path = "message.html")]
pub(super) struct Message {
    pub chrome: Chrome,
    pub heading: String,
    pub text: String,
    pub back: String,
}

impl Message {
    /// `heading` and `text` as a page with `status`.
    pub(super) fn page(
        d: &Dashboard,
        headers: &HeaderMap,
        status: StatusCode,
        heading: &str,
        text: String,
        back: &str,
    ) -> Response {
        let page = Self {
            chrome: d.chrome(headers, heading, false),
            heading: heading.to_owned(),
            text,
            back: back.to_owned(),
        };
        (status, render(&page)).into_response()
    }
}
