//! A hostile network, redirects: the lookup never follows a 3xx. Following one
//! would send the bearer token wherever the redirect points and take that
//! place's answer for the API's (a `{"data":{"status":"DONE"}}` from another
//! host settled an issuance). A 3xx is an error of the poll: `last_error`,
//! backoff, no transition, exactly one request per poll (a loop cannot
//! multiply requests past the rate limit). An answer about another issuance
//! than the one requested is refused the same way.
//!
//! Each test has a control issuance on the same API that settles in the same
//! run, so a stalled watcher cannot pass for a refusing one.

use crate::common;

use std::time::Duration;

use common::running::number;
use common::{Reply, Running, ScriptedApi, TestSettings, eventually, row};

const LOOKUP: &str = "/api/v1/points/issuance/";

/// Starts the watcher on `api` with `ids` and a control issuance that settles.
async fn watch(api: &ScriptedApi, dir: &tempfile::TempDir, ids: &[&str]) -> Running {
    api.set("control", Reply::issuance("control", "DONE"));
    let settings = TestSettings::new(&api.base_url(), &dir.path().join("watcher.db"))
        .with(|s| s.poll.backoff_max = Duration::from_millis(100))
        .build();
    let w = Running::start(settings).await;
    let mut all = ids.to_vec();
    all.push("control");
    w.insert(&all).await;
    w.wait_watch("control", "settled").await;
    w
}

/// Waits until `id` has failed `n` polls in a row, and returns its last error.
async fn failed_polls(w: &Running, id: &str, n: i64) -> String {
    eventually(&format!("{n} failed polls of {id}"), || async {
        let attempts: i64 = sqlx::query_scalar("SELECT attempts FROM issuances WHERE id = ?")
            .bind(id)
            .fetch_one(w.store.pool())
            .await
            .unwrap();
        attempts >= n
    })
    .await;
    w.column(id, "last_error").await.unwrap_or_default()
}

#[tokio::test]
async fn a_redirect_to_another_host_is_a_poll_error_and_the_target_is_never_asked() {
    let api = ScriptedApi::start().await;
    // Another host by name (localhost, not 127.0.0.1), answering DONE without an id.
    let elsewhere = ScriptedApi::start().await;
    elsewhere.answer_everyone(Some(Reply::json(200, r#"{"data":{"status":"DONE"}}"#)));
    let target = format!("http://localhost:{}{LOOKUP}x1", elsewhere.addr.port());
    api.set("x1", Reply::json(302, "").with_header("location", &target));
    let dir = tempfile::tempdir().unwrap();
    let w = watch(&api, &dir, &["x1"]).await;

    let error = failed_polls(&w, "x1", 3).await;
    assert!(
        error.contains("302") && error.contains("redirect") && error.contains("localhost"),
        "{error}"
    );
    assert!(
        elsewhere.requests().is_empty() && elsewhere.other_requests().is_empty(),
        "the redirect target was asked (with our token): {:?}",
        elsewhere.requests()
    );
    assert!(
        w.transitions("x1").await.is_empty(),
        "nothing recorded from a redirect"
    );
    assert_eq!(w.column("x1", "watch").await.as_deref(), Some("active"));
    assert_eq!(
        w.transitions("control").await,
        [row(None, "DONE")],
        "the control settled"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_redirect_to_another_path_on_the_same_host_gets_no_request_and_no_token() {
    let api = ScriptedApi::start().await;
    api.set(
        "x2",
        Reply::json(301, "").with_header("location", "/elsewhere/steal?token=1"),
    );
    let dir = tempfile::tempdir().unwrap();
    let w = watch(&api, &dir, &["x2"]).await;

    let error = failed_polls(&w, "x2", 3).await;
    assert!(
        error.contains("301") && error.contains("/elsewhere/steal") && !error.contains("token"),
        "{error}"
    );
    assert_eq!(
        api.other_requests(),
        Vec::<String>::new(),
        "a request followed the redirect to another path"
    );
    assert!(w.transitions("x2").await.is_empty());
    w.stop().await;
}

#[tokio::test]
async fn a_redirect_loop_costs_one_request_per_poll_and_backs_off() {
    let api = ScriptedApi::start().await;
    let own = format!("{}{LOOKUP}x3", api.base_url());
    api.set("x3", Reply::json(307, "").with_header("location", &own));
    let dir = tempfile::tempdir().unwrap();
    let w = watch(&api, &dir, &["x3"]).await;

    failed_polls(&w, "x3", 4).await;
    let polls = number(
        w.store.pool(),
        "SELECT polls FROM issuances WHERE id = 'x3'",
    )
    .await;
    let requests = api.requests_for("x3") as i64;
    // A poll in flight while we read may add one request not yet counted as a poll.
    assert!(
        requests >= polls && requests <= polls + 1,
        "{requests} requests for {polls} polls: a redirect must not be followed"
    );
    w.stop().await;
}

#[tokio::test]
async fn an_answer_about_another_issuance_is_refused() {
    let api = ScriptedApi::start().await;
    api.set("x4", Reply::issuance("someone-else", "DONE"));
    let dir = tempfile::tempdir().unwrap();
    let w = watch(&api, &dir, &["x4"]).await;

    let error = failed_polls(&w, "x4", 2).await;
    assert!(
        error.contains("someone-else") && error.contains("not the one requested"),
        "{error}"
    );
    assert!(w.transitions("x4").await.is_empty());
    assert_eq!(w.column("x4", "watch").await.as_deref(), Some("active"));
    w.stop().await;
}
