//! Secret rotation without downtime, over real HTTP: a sink holding its new
//! secret and the previous one (`previous_until`) signs each message with
//! both, so a receiver holding only the old secret and one holding only the
//! new both verify (with the reference `standardwebhooks` library); from
//! `previous_until` on, decided at each attempt without a restart, only the
//! new secret signs and the old-only receiver no longer verifies.

use crate::common;

use chrono::{DateTime, Utc};

use common::engine::on_both_engines;
use common::receiver::{Received, rotating};
use common::running::RunningApp;
use common::{
    PREVIOUS_WEBHOOK_SECRET, Receiver, Reply, ScriptedApi, TestSettings, WEBHOOK_SECRET, eventually,
};

/// Two sinks with the same rotation (new [`WEBHOOK_SECRET`], previous
/// [`PREVIOUS_WEBHOOK_SECRET`] until `until`): `old-holder` posts to `old`
/// (which verifies with the previous secret only), `new-holder` to `new`
/// (the new secret only).
fn two_holders(
    api: &ScriptedApi,
    dir: &tempfile::TempDir,
    old: &Receiver,
    new: &Receiver,
    until: DateTime<Utc>,
) -> TestSettings {
    TestSettings::new(&api.base_url(), &dir.path().join("watcher.db"))
        .webhook("old-holder", &old.url(), |w| w.kind = rotating(until))
        .webhook("new-holder", &new.url(), |w| w.kind = rotating(until))
}

/// The signatures in a request's `webhook-signature`.
fn signatures(r: &Received) -> usize {
    r.header("webhook-signature").split(' ').count()
}

/// The first request `receiver` got for the status change of `id` to `to`.
async fn arrival(receiver: &Receiver, id: &str, to: &str) -> Received {
    let find = || {
        receiver.received().into_iter().find(|r| {
            let e = r.event();
            e["data"]["id"] == id && e["data"]["to_status"] == to
        })
    };
    eventually(&format!("{id} -> {to} at {}", receiver.url()), || async {
        find().is_some()
    })
    .await;
    find().unwrap()
}

async fn either_secret_verifies_during_the_grace_period_and_only_the_new_one_after_it() {
    let api = ScriptedApi::start().await;
    let old = Receiver::start(PREVIOUS_WEBHOOK_SECRET).await;
    let new = Receiver::start(WEBHOOK_SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    // Long enough for the first event to be delivered on a loaded machine.
    let until = Utc::now() + chrono::Duration::seconds(8);
    let app = RunningApp::start(two_holders(&api, &dir, &old, &new, until).build()).await;
    api.script("a", vec![Reply::issuance("a", "WAITED")]);
    app.insert(&["a"]).await;

    for receiver in [&old, &new] {
        let r = arrival(receiver, "a", "WAITED").await;
        let sent_at: i64 = r.header("webhook-timestamp").parse().unwrap();
        assert!(
            sent_at < until.timestamp(),
            "the first event was sent before previous_until (else the machine was too slow for this test)"
        );
        assert_eq!(r.verified, Ok(()), "{}", r.header("webhook-signature"));
        assert_eq!(signatures(&r), 2, "{}", r.header("webhook-signature"));
    }

    // previous_until passes while the daemon runs: no restart.
    eventually("previous_until to pass", || async { Utc::now() > until }).await;
    api.set("a", Reply::issuance("a", "DONE"));
    let at_new = arrival(&new, "a", "DONE").await;
    let at_old = arrival(&old, "a", "DONE").await;
    for r in [&at_new, &at_old] {
        let sent_at: i64 = r.header("webhook-timestamp").parse().unwrap();
        assert!(sent_at >= until.timestamp(), "sent after previous_until");
        assert_eq!(signatures(r), 1, "{}", r.header("webhook-signature"));
    }
    assert_eq!(at_new.verified, Ok(()));
    assert!(
        at_old.verified.is_err(),
        "after previous_until the previous secret no longer signs: {}",
        at_old.header("webhook-signature")
    );
    app.stop().await.unwrap();
}

/// `events ping` goes through the same signing: both holders verify during
/// the grace period, only the new one after it; `check-config` says until
/// when the previous secret is accepted, or that it no longer is.
async fn events_ping_and_check_config_follow_the_rotation() {
    let api = ScriptedApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    for (grace, until) in [
        (true, Utc::now() + chrono::Duration::days(1)),
        (false, Utc::now() - chrono::Duration::seconds(1)),
    ] {
        let old = Receiver::start(PREVIOUS_WEBHOOK_SECRET).await;
        let new = Receiver::start(WEBHOOK_SECRET).await;
        let config = two_holders(&api, &dir, &old, &new, until)
            .with(|s| s.api.timezone = chrono_tz::Asia::Seoul)
            .write_toml(&dir.path().join(format!("config-{grace}.toml")));
        let check = common::cli(&config, &["check-config"]);
        let check = String::from_utf8_lossy(&check.stdout).into_owned();
        let local = until
            .with_timezone(&chrono_tz::Asia::Seoul)
            .format("%Y-%m-%d %H:%M:%S KST")
            .to_string();
        let said = match grace {
            true => format!(
                "# Webhook sink old-holder: secret from webhooks[0].secret (not shown); previous secret from webhooks[0].previous_secret (not shown) accepted until {local}."
            ),
            false => format!(
                "# Webhook sink old-holder: secret from webhooks[0].secret (not shown); previous secret from webhooks[0].previous_secret (not shown) no longer used since {local}: remove it and previous_until."
            ),
        };
        assert!(check.contains(&said), "{said}\nnot in:\n{check}");

        let config_path = config.clone();
        let out = tokio::task::spawn_blocking(move || {
            common::daemon::cli_within(&config_path, &["events", "ping"])
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for receiver in [&old, &new] {
            eventually("the test message", || async {
                !receiver.received().is_empty()
            })
            .await;
        }
        let (at_old, at_new) = (&old.received()[0], &new.received()[0]);
        assert_eq!(at_new.verified, Ok(()));
        assert_eq!(at_old.verified.is_ok(), grace, "grace period: {grace}");
        assert_eq!(signatures(at_old), 1 + usize::from(grace));
        assert_eq!(at_old.event()["type"], "webhook.test");
    }
}

on_both_engines!(
    either_secret_verifies_during_the_grace_period_and_only_the_new_one_after_it(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    events_ping_and_check_config_follow_the_rotation(flavor = "multi_thread", worker_threads = 2),
);
