//! The web dashboard: server-rendered pages for the people who act on a
//! charge without a shell on the host (finance pays it, support explains it),
//! served under `/` on the daemon's `http.listen` beside `/healthz` and
//! `/metrics`, from the same store the CLI reads.
//!
//! Invariants:
//! - everything is in the binary: templates compiled by askama, one style
//!   sheet, no script; pages that change on their own reload themselves
//!   (`<meta http-equiv="refresh">`);
//! - every value from the database or the API reaches the page through a
//!   template's escaping (ids are hostile input), and every response carries a
//!   strict Content-Security-Policy (nothing but this origin's style sheet;
//!   no script, frame or foreign form target), `X-Frame-Options: DENY` and
//!   `nosniff`; no secret is ever rendered;
//! - reads go through the store's indexed reads only (`store/dashboard.rs`);
//!   lists page by keyset, never `OFFSET`;
//! - actions (`auth.rs`) are POSTs by a signed-in holder of the admin token
//!   carrying this process's CSRF token; without `http.admin_token_file`
//!   the dashboard is read-only. Each action is logged with what it did.

mod auth;
mod chrome;
mod detail;
mod pages;
mod view;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::settings::{AdminToken, Settings};
use crate::store::Store;

/// The Content-Security-Policy of every page: this origin's style sheet and
/// inline SVG only; no script at all; forms post only here; never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the dashboard's handlers share; cheap to clone.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    settings: Settings,
    admin: Option<AdminToken>,
    /// The sign-in cookie's value: random per process, so a restart signs everyone out.
    session: String,
    /// The CSRF token every action's form carries: random per process.
    csrf: String,
}

/// 256 random bits as hex, from the operating system's generator (uuid v4).
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Dashboard {
    /// The dashboard on `store`, shown as `settings` say (time zone, due-soon
    /// ladder, configured sinks); actions only with `admin`.
    pub fn new(store: Store, settings: Settings, admin: Option<AdminToken>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                settings,
                admin,
                session: random_token(),
                csrf: random_token(),
            }),
        }
    }

    fn configured_sinks(&self) -> Vec<String> {
        self.inner
            .settings
            .webhooks
            .iter()
            .map(|w| w.name.clone())
            .collect()
    }
}

/// The dashboard's routes, to be merged with `/healthz` and `/metrics`.
pub fn router(dashboard: Dashboard) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/", get(pages::overview))
        .route("/to-pay", get(pages::to_pay))
        .route("/to-pay.csv", get(pages::to_pay_csv))
        .route("/issuances", get(pages::issuances))
        .route("/issuance", get(detail::issuance))
        .route("/events", get(detail::events))
        .route("/sinks", get(pages::sinks))
        .route("/charges", get(detail::charges))
        .route("/style.css", get(pages::style))
        .route("/favicon.svg", get(pages::icon))
        .route("/favicon.ico", get(pages::icon))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/actions/sink", post(auth::sink_action))
        .route("/actions/redeliver", post(auth::redeliver))
        .route("/actions/cancel", post(auth::cancel))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(dashboard)
}

/// Adds the security headers to every response of the dashboard.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
