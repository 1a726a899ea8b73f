//! Signing in with the admin token, and the actions it allows.
//!
//! How a browser presents the token: the sign-in form posts it once; when it
//! matches `http.admin_token_file`, the answer sets a cookie holding this
//! process's random session value (`HttpOnly`, `SameSite=Strict`, no
//! expiry: a browser session, and a restart of the daemon signs everyone
//! out). The token itself is never stored in the browser, logged or shown.
//!
//! Every action is a POST that carries this process's random CSRF token in a
//! hidden field (rendered only into signed-in pages), checked with the
//! cookie: a foreign page can neither read the token nor send the
//! `SameSite=Strict` cookie. Each action is logged with who (the admin
//! token: there is one) and what.

use askama::Template;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;
use tracing::{info, warn};

use super::Dashboard;
use super::chrome::{COOKIE, Chrome, Message, is_admin, render, same};
use super::pages::ChargeView;
use super::view::issuance_href;
use crate::api::{self, ApiClient, CancelOutcome};
use crate::watcher::charges::record_cancel;

/// Who acted, as the log says it: the holder of the one admin token.
const WHO: &str = "admin token";

#[derive(Template)]
#[template(path = "login.html")]
pub(super) struct Login {
    chrome: Chrome,
}

pub(super) async fn login_form(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    render(&Login {
        chrome: d.chrome(&headers, "Sign in", false),
    })
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

pub(super) async fn login(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(admin) = &d.inner.admin else {
        return refuse(
            &d,
            &headers,
            "This dashboard is read-only: no admin token is configured.",
        );
    };
    if !same(form.csrf.as_bytes(), d.inner.csrf.as_bytes()) || !admin.matches(&form.token) {
        warn!("dashboard: a sign-in with a wrong admin token was refused");
        // A guess costs a second: the token is at least 16 characters anyway.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        return refuse(&d, &headers, "Wrong admin token.");
    }
    info!(who = WHO, "dashboard: signed in");
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        d.inner.session
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn logout(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = refusal(&d, &headers, &form.csrf) {
        return refused;
    }
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

fn refuse(d: &Dashboard, headers: &HeaderMap, why: &str) -> Response {
    Message::page(
        d,
        headers,
        StatusCode::FORBIDDEN,
        "Not allowed",
        why.to_owned(),
        "/",
    )
}

/// The refusal of an action, unless it may run (signed in, with this
/// process's CSRF token).
fn refusal(d: &Dashboard, headers: &HeaderMap, csrf: &str) -> Option<Response> {
    if d.inner.admin.is_none() {
        return Some(refuse(
            d,
            headers,
            "This dashboard is read-only: no admin token is configured.",
        ));
    }
    if !is_admin(d, headers) {
        return Some(refuse(d, headers, "Sign in with the admin token first."));
    }
    if !same(csrf.as_bytes(), d.inner.csrf.as_bytes()) {
        warn!("dashboard: an action without this page's CSRF token was refused");
        return Some(refuse(
            d,
            headers,
            "This form is stale or foreign: reload the page and try again.",
        ));
    }
    None
}

fn done(d: &Dashboard, headers: &HeaderMap, text: String, back: &str) -> Response {
    Message::page(d, headers, StatusCode::OK, "Done", text, back)
}

#[derive(Deserialize)]
pub(super) struct SinkForm {
    #[serde(default)]
    csrf: String,
    sink: String,
    op: String,
}

pub(super) async fn sink_action(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Form(form): Form<SinkForm>,
) -> Response {
    if let Some(refused) = refusal(&d, &headers, &form.csrf) {
        return refused;
    }
    let store = &d.inner.store;
    let now = Utc::now();
    let result = match form.op.as_str() {
        "disable" => store
            .disable_sink_by_hand(&form.sink, now, "disabled from the dashboard")
            .await
            .map(|_| format!("Sink {} is disabled.", form.sink)),
        "enable" => store
            .enable_sink(&form.sink, now)
            .await
            .map(|before| match before {
                Some(_) => format!("Sink {} is enabled.", form.sink),
                None => format!("No sink {} is known.", form.sink),
            }),
        _ => return refuse(&d, &headers, "Unknown action."),
    };
    match result {
        Ok(text) => {
            info!(who = WHO, action = %form.op, sink = %form.sink, "dashboard: sink {}d", form.op);
            done(&d, &headers, text, "/sinks")
        }
        Err(e) => super::chrome::failed(e),
    }
}

#[derive(Deserialize)]
pub(super) struct RedeliverForm {
    #[serde(default)]
    csrf: String,
    seq: i64,
    #[serde(default)]
    back: String,
}

pub(super) async fn redeliver(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Form(form): Form<RedeliverForm>,
) -> Response {
    if let Some(refused) = refusal(&d, &headers, &form.csrf) {
        return refused;
    }
    let sinks = d.configured_sinks();
    // Only back to a page of this dashboard.
    let back = if form.back.starts_with('/') && !form.back.starts_with("//") {
        form.back.as_str()
    } else {
        "/events"
    };
    match d.inner.store.redeliver(&sinks, form.seq, Utc::now()).await {
        Ok(true) => {
            info!(who = WHO, action = "redeliver", seq = form.seq, sinks = ?sinks, "dashboard: event scheduled again");
            done(
                &d,
                &headers,
                format!(
                    "Event #{} is scheduled again for {} sink(s).",
                    form.seq,
                    sinks.len()
                ),
                back,
            )
        }
        Ok(false) => refuse(&d, &headers, "There is no such event."),
        Err(e) => super::chrome::failed(e),
    }
}

#[derive(Deserialize)]
pub(super) struct CancelForm {
    #[serde(default)]
    csrf: String,
    id: String,
    /// The charge's id again, from the confirmation page: without it, the
    /// confirmation page is shown and nothing is sent.
    #[serde(default)]
    confirm: Option<String>,
}

#[derive(Template)]
#[template(path = "confirm_cancel.html")]
pub(super) struct ConfirmCancel {
    chrome: Chrome,
    i: ChargeView,
    back: String,
}

pub(super) async fn cancel(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Form(form): Form<CancelForm>,
) -> Response {
    if let Some(refused) = refusal(&d, &headers, &form.csrf) {
        return refused;
    }
    let id = form.id.as_str();
    let back = issuance_href(id);
    if let Some(reason) = api::reject_reason(id) {
        return refuse(&d, &headers, &format!("Refusing this id: {reason}."));
    }
    let store = &d.inner.store;
    let row = match store.issuance(id).await {
        Ok(Some(row)) => row,
        Ok(None) => return refuse(&d, &headers, "This issuance is not watched here."),
        Err(e) => return super::chrome::failed(e),
    };
    if row.status.as_deref() != Some("READY") {
        return refuse(&d, &headers, "Only a READY charge can be cancelled.");
    }
    if form.confirm.as_deref() != Some(id) {
        return render(&ConfirmCancel {
            chrome: d.chrome(&headers, "Confirm the cancel", false),
            i: d.charge_view(&row),
            back,
        });
    }
    let settings = &d.inner.settings;
    let client = match settings
        .validate_credentials()
        .map_err(anyhow::Error::from)
        .and_then(|()| ApiClient::from_settings(settings).map_err(anyhow::Error::from))
    {
        Ok(client) => client,
        Err(e) => {
            warn!(error = %e, "dashboard: cannot build the API client to cancel");
            return refuse(
                &d,
                &headers,
                "The API client cannot be built; see the daemon's log.",
            );
        }
    };
    info!(who = WHO, action = "cancel", issuance = %id, "dashboard: cancelling a READY charge");
    let text = match client.cancel(id).await {
        CancelOutcome::Answered(observation) => {
            match record_cancel(store, settings, id, &observation).await {
                Ok(_) => format!("Issuance {id} is {}.", observation.status),
                Err(e) => {
                    warn!(error = %e, issuance = %id, "dashboard: the cancel's answer could not be recorded");
                    format!(
                        "Issuance {id} is {} (the daemon's next poll records it).",
                        observation.status
                    )
                }
            }
        }
        CancelOutcome::Refused(r) => format!("The API refused to cancel issuance {id}: {r}"),
        CancelOutcome::Failed(u) => format!(
            "No usable answer to the cancel of issuance {id} ({}): it may or may not be cancelled; the daemon's next poll will tell.",
            u.code
        ),
    };
    info!(who = WHO, action = "cancel", issuance = %id, outcome = %text, "dashboard: cancel answered");
    done(&d, &headers, text, &back)
}
