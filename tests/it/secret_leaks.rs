//! No secret anywhere a person or a program can see it, at the most verbose
//! log levels, with every kind of secret configured at once: the API's signing
//! key, a signed webhook sink's `whsec_` key and, as it is rotating, its
//! previous one (and a token in its URL's query), and a Slack sink, whose URL is its only credential. Looked for (in every
//! encoding, see `common::secrets`) in the daemon's log, `/metrics`, the
//! database file and its WAL, what the commands print, and the errors a bad
//! configuration produces; while polls succeed and fail (401), deliveries
//! succeed, fail with a status and fail to connect.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::daemon::{Spawn, cli, migrate};
use common::metrics::{free_port, get};
use common::receiver::rotating;
use common::secrets::{QUERY_TOKEN, slack_url};
use common::{
    Mode, PREVIOUS_WEBHOOK_SECRET, Receiver, Reply, ScriptedApi, TestSettings, WEBHOOK_SECRET,
    assert_no_secret, assert_no_secret_bytes, eventually,
};
use issuance_watcher::settings::{SinkKind, SinkSecret};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn count(db: &Path, sql: &'static str) -> i64 {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

/// The whole check at `level` (`RUST_LOG`, every dependency included).
async fn nothing_shows_a_secret_at(level: &str) {
    let api = ScriptedApi::start().await;
    api.set_ready("556", chrono::Duration::hours(2));
    api.script(
        "557",
        vec![
            Reply::issuance("557", "WAITED"),
            Reply::issuance("557", "DONE"),
        ],
    );
    let signed = Receiver::start(WEBHOOK_SECRET).await;
    signed.set_mode(Mode::Fail(500));
    let slack = Receiver::start(WEBHOOK_SECRET).await;
    slack.set_mode(Mode::Fail(500));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watcher.db");
    let port = free_port();
    let settings = TestSettings::new(&api.base_url(), &db)
        .with(|s| s.http.listen = format!("127.0.0.1:{port}"))
        .webhook(
            "shop",
            &format!("{}?token={QUERY_TOKEN}", signed.url()),
            |w| w.kind = rotating(chrono::Utc::now() + chrono::Duration::days(1)),
        )
        .webhook("chat", &slack_url(&format!("http://{}", slack.addr)), |w| {
            w.kind = SinkKind::Slack;
        });
    let config = settings.write_toml(&dir.path().join("config.toml"));
    migrate(&config);
    assert!(cli(&config, &["add", "556", "557"]).status.success());
    let daemon = Spawn::new(&config).rust_log(level).spawn();

    // Deliveries answered 500 by both sinks, polls answered and then refused.
    eventually("both sinks asked and refused", || async {
        !signed.received().is_empty() && !slack.received().is_empty()
    })
    .await;
    eventually("two verified polls", || async {
        api.requests().iter().filter(|r| r.authorized).count() >= 2
    })
    .await;
    api.answer_everyone(Some(Reply::error(401, "INVALID_AUTH_TOKEN")));
    let seen = api.requests().len();
    eventually("a poll answered 401", || async {
        api.requests().len() > seen
    })
    .await;
    api.answer_everyone(None);
    // The Slack sink gone: connections refused, recorded as the delivery's problem.
    slack.go_away().await;
    eventually("a refused connection recorded", || async {
        count(
            &db,
            "SELECT count(*) FROM deliveries WHERE sink = 'chat' AND last_error LIKE 'cannot connect%'",
        )
        .await
            > 0
    })
    .await;
    // The signed sink recovers: deliveries succeed.
    signed.set_mode(Mode::Ok);
    eventually("a verified delivery", || async {
        signed.delivered().iter().any(|r| r.verified.is_ok())
    })
    .await;

    let metrics = get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("/metrics answers")
        .1;
    assert!(
        metrics.contains("shop") && metrics.contains("chat"),
        "{metrics}"
    );
    let check = text(&cli(&config, &["check-config"]));
    assert!(
        check.contains("# Webhook sink shop: secret from webhooks[0].secret (not shown); previous secret from webhooks[0].previous_secret (not shown) accepted until "),
        "check-config mentions the rotation: {check}"
    );
    let mut shown = vec![("/metrics".to_owned(), metrics)];
    for args in [
        &["check-config"][..],
        &["events", "--json"],
        &["events", "--failed"],
        &["status", "--json"],
        &["list", "--json"],
    ] {
        shown.push((format!("{args:?}"), text(&cli(&config, args))));
    }
    let log = daemon.stop().await;
    let upper = level.to_uppercase();
    assert!(
        log.contains(&upper) && log.contains("shop") && log.contains("chat") && log.contains("401"),
        "the log is really at {level} and covers polls and both sinks: {log}"
    );
    shown.push(("the daemon's log".to_owned(), log));

    // Errors about the sinks' settings, each naming a key next to a secret.
    let broken = [
        settings.clone().with(|s| {
            s.webhooks[0].kind = SinkKind::Standard {
                secret: SinkSecret::File(dir.path().join("also_a_file")),
                previous: None,
            };
        }),
        // The previous secret the same as the current one, then not found.
        settings.clone().with(|s| {
            let SinkKind::Standard { secret, previous } = &mut s.webhooks[0].kind else {
                panic!("a signed sink");
            };
            previous.as_mut().unwrap().secret = secret.clone();
        }),
        settings.clone().with(|s| {
            let SinkKind::Standard { previous, .. } = &mut s.webhooks[0].kind else {
                panic!("a signed sink");
            };
            previous.as_mut().unwrap().secret =
                SinkSecret::File(dir.path().join("no_previous_file"));
        }),
        settings.clone().with(|s| {
            s.webhooks[1].url.set_scheme("ftp").unwrap();
        }),
        settings.clone().with(|s| {
            s.webhooks[0].url = format!("http://user:{QUERY_TOKEN}@127.0.0.1:9/hooks")
                .parse()
                .unwrap();
        }),
    ];
    for (i, bad) in broken.iter().enumerate() {
        let path = bad.write_toml(&dir.path().join(format!("broken-{i}.toml")));
        for command in ["check-config", "run"] {
            let out = cli(&path, &[command]);
            assert_eq!(out.status.code(), Some(1), "{i} {command}: {}", text(&out));
            shown.push((format!("{command} on broken config {i}"), text(&out)));
        }
    }

    for (what, text) in &shown {
        assert_no_secret(&format!("{what} at {level}"), text);
    }
    for file in ["watcher.db", "watcher.db-wal"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        assert_no_secret_bytes(&format!("{file} at {level}"), &bytes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_shows_a_secret_at_debug() {
    nothing_shows_a_secret_at("debug").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_shows_a_secret_at_trace() {
    nothing_shows_a_secret_at("trace").await;
}

/// The search itself finds each kind of secret it is meant to (so that a
/// clean result above means something).
#[test]
fn the_search_finds_every_kind_of_secret() {
    use base64::Engine as _;
    let webhook_key = base64::engine::general_purpose::STANDARD
        .decode(WEBHOOK_SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let hex: String = webhook_key.iter().map(|b| format!("{b:02x}")).collect();
    for leaked in [
        WEBHOOK_SECRET.to_owned(),
        PREVIOUS_WEBHOOK_SECRET.to_owned(),
        String::from_utf8(webhook_key.clone()).unwrap(),
        hex,
        format!("{:?}", &webhook_key[..8]),
        slack_url("http://127.0.0.1:1"),
        format!("?token={QUERY_TOKEN}"),
        common::SECRET_B64.to_owned(),
    ] {
        assert!(
            !common::secrets::leaks(format!("log: {leaked} end").as_bytes()).is_empty(),
            "not found: {leaked}"
        );
    }
}
