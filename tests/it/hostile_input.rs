//! Hostile and broken input.
//!
//! Every hostile input must end in a clear recorded error (`last_error`, or
//! `watch = 'rejected'`), never in a request to another path or host, never in a
//! panic, and the other issuances must keep being watched: each test has a
//! control issuance that settles in the same run.
//!
//! Inputs tried (quick version, all of it runs in `cargo test`, ~10 s each):
//! - 40 hostile ids (empty, blank, 10 KB, `/`, `..`, `?`, `#`, `%2F`, spaces,
//!   newlines, quotes, SQL, URLs, unicode, control characters) and 3 non-UTF-8
//!   byte strings stored by another program with `CAST(x'..' AS TEXT)`;
//! - 14 status values outside the enum (forced in the simulator or served raw);
//! - 14 malformed or absurd datetimes; 9 shapes of `preparedVbankInfo`;
//! - bodies of 50 MB (chunked and with a length), an endless body, a body that
//!   drips one byte per 100 ms forever, and a request that never gets an answer.
//!
//! The daemon binary itself is run over the hostile rows (and the `list`,
//! `show` and `flags` commands over the non-UTF-8 ones) in
//! `the_daemon_and_the_cli_survive_hostile_rows`. There is no separate long
//! version: the inputs are enumerated, not sampled.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use bunjang_sim::{Override, SimConfig, SimHandle};
use common::daemon::Daemon;
use common::sim_client::start as start_sim;
use common::{
    ACCESS_KEY, Reply, Running, SECRET_B64, ScriptedApi, Stream, TestSettings, eventually, row,
    settings,
};
use serde_json::{Value, json};

const LOOKUP: &str = "/api/v1/points/issuance/";

/// Ids that must reach the API, each as exactly one path segment.
fn hostile_ids() -> Vec<String> {
    let mut ids: Vec<String> = [
        "/",
        "a/b",
        "../balance",
        "../../_sim/faults",
        "./x",
        "...x",
        "?",
        "?x=1",
        "a?b=c",
        "#",
        "a#frag",
        "%2F",
        "%2e%2e%2F",
        "%00",
        "%",
        "x y",
        " leading",
        "trailing ",
        "'",
        "\"quoted\"",
        "`tick`",
        "'; DROP TABLE issuances; --",
        "1 OR 1=1",
        "1; DELETE FROM transitions",
        "http://evil.example/",
        "//evil.example",
        "@evil.example:80",
        "\\..\\windows",
        "é한국🙂",
        "\u{202e}rtl",
        "+&=;,$!*()",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ids.push("9".repeat(256)); // the longest id accepted
    ids
}

/// Ids the watcher must reject without any request (watch = 'rejected').
fn unusable_ids() -> Vec<String> {
    [
        "",
        " ",
        "\t",
        ".",
        "..",
        "line\nbreak",
        "cr\r\nlf",
        "nul\0byte",
        "\u{7f}",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["9".repeat(257), "a/".repeat(5_000), "x".repeat(10_240)])
    .collect()
}

/// Non-UTF-8 byte strings, as `x'..'` literals another program might store.
const NON_UTF8: [&str; 3] = ["ff41", "c0af", "2e2e2fff"];

async fn insert_raw(pool: &sqlx::SqlitePool, hex: &str) {
    // sqlx 0.9 takes static SQL only; the literal comes from a fixed list.
    let sql: &'static str = match hex {
        "ff41" => "INSERT INTO issuances (id) VALUES (CAST(x'ff41' AS TEXT))",
        "c0af" => "INSERT INTO issuances (id) VALUES (CAST(x'c0af' AS TEXT))",
        "2e2e2fff" => "INSERT INTO issuances (id) VALUES (CAST(x'2e2e2fff' AS TEXT))",
        other => panic!("no literal for {other}"),
    };
    sqlx::query(sql).execute(pool).await.unwrap();
}

async fn raw_rows(pool: &sqlx::SqlitePool) -> Vec<(Vec<u8>, String, Option<String>)> {
    sqlx::query_as("SELECT CAST(id AS BLOB), watch, last_error FROM issuances WHERE hex(id) IN ('FF41', 'C0AF', '2E2E2FFF')")
        .fetch_all(pool)
        .await
        .unwrap()
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .expect("the watcher only sends UTF-8 ids")
        .into_owned()
}

#[tokio::test]
async fn hostile_ids_stay_in_one_path_segment_and_unusable_ones_are_rejected() {
    let api = ScriptedApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let w = Running::start(settings(&api.base_url(), dir.path(), &[])).await;
    let hostile = hostile_ids();
    let unusable = unusable_ids();
    for id in &hostile {
        api.set(id, Reply::issuance(&json_escape(id), "DONE"));
    }
    api.script(
        "control",
        vec![
            Reply::issuance("control", "WAITED"),
            Reply::issuance("control", "DONE"),
        ],
    );
    let all: Vec<&str> = hostile
        .iter()
        .chain(&unusable)
        .map(String::as_str)
        .chain(["control"])
        .collect();
    w.insert(&all).await;
    for hex in NON_UTF8 {
        insert_raw(w.store.pool(), hex).await;
    }

    w.wait_watch("control", "settled").await;
    for id in &hostile {
        w.wait_watch(id, "settled").await;
        assert_eq!(w.transitions(id).await, [row(None, "DONE")], "{id:?}");
    }
    for id in &unusable {
        w.wait_watch(id, "rejected").await;
        let error = w.column(id, "last_error").await.unwrap_or_default();
        assert!(error.starts_with("id "), "{id:?}: {error}");
        assert!(w.transitions(id).await.is_empty());
    }
    eventually("non-UTF-8 rows rejected", || async {
        let rows = raw_rows(w.store.pool()).await;
        rows.len() == 3
            && rows.iter().all(|(_, watch, error)| {
                watch == "rejected" && error.as_deref() == Some("id is not valid UTF-8")
            })
    })
    .await;
    assert_eq!(
        w.transitions("control").await,
        [row(None, "WAITED"), row(Some("WAITED"), "DONE")]
    );

    // What reached the server: only lookups, each id exactly one encoded segment.
    assert_eq!(api.other_requests(), Vec::<String>::new());
    let requests = api.requests();
    let mut seen = BTreeSet::new();
    for r in &requests {
        let segment = r
            .target
            .strip_prefix(LOOKUP)
            .unwrap_or_else(|| panic!("request outside the lookup: {}", r.target));
        assert!(
            !segment.contains(['/', '?', '#']) && !segment.is_empty(),
            "id left its segment: {}",
            r.target
        );
        assert_eq!(decode(segment), r.id, "server saw another id: {}", r.target);
        seen.insert(r.id.clone());
    }
    let expected: BTreeSet<String> = hostile
        .iter()
        .cloned()
        .chain(["control".to_owned()])
        .collect();
    assert_eq!(seen, expected, "exactly the usable ids were requested");
    w.stop().await;
}

/// The id as it must appear inside the scripted JSON body.
fn json_escape(id: &str) -> String {
    let quoted = serde_json::to_string(id).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

async fn sim() -> SimHandle {
    let config = SimConfig {
        record_requests: true,
        ..SimConfig::default()
    }
    .with_credentials(ACCESS_KEY, SECRET_B64);
    start_sim(config).await
}

/// A simulated issuance whose lookup answers `data` (with its own id filled in).
fn serve(sim: &SimHandle, id: &str, mut data: Value) {
    data["id"] = json!(id);
    sim.set_override(id, Some(Override::Data(data))).unwrap();
}

fn kst_in(hours: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(hours))
        .with_timezone(&chrono_tz::Asia::Seoul)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

fn vbank(due: Value) -> Value {
    json!({"vbankDueDate": due, "vbankAccountNumber": "451235741265", "bankName": "국민은행", "vbankHolderName": "번개장터"})
}

/// Starts a watcher on `sim` with the ids inserted, plus a control issuance that
/// goes WAITED -> DONE while the hostile ones are being polled.
async fn watch_with_control(
    sim: &SimHandle,
    ids: &[String],
) -> (Running, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let w = Running::start(settings(&sim.base_url(), dir.path(), &[])).await;
    let control = sim.seed(1).remove(0);
    sim.force(&control, "WAITED").unwrap();
    let mut all: Vec<&str> = ids.iter().map(String::as_str).collect();
    all.push(&control);
    w.insert(&all).await;
    (w, control, dir)
}

async fn settle_control(sim: &SimHandle, w: &Running, control: &str) {
    eventually("the control to be seen", || async {
        w.column(control, "status").await.as_deref() == Some("WAITED")
    })
    .await;
    sim.force(control, "DONE").unwrap();
    w.wait_watch(control, "settled").await;
    assert_eq!(
        w.transitions(control).await,
        [row(None, "WAITED"), row(Some("WAITED"), "DONE")]
    );
}

/// Checks that every request the simulator saw was a GET of the lookup of one
/// of `ids` or the control, then stops the watcher and the simulator.
async fn stop_after_only_lookups(sim: SimHandle, w: Running, ids: &[String], control: &str) {
    for r in sim.request_log() {
        assert_eq!(r.method, "GET");
        let id = r
            .path
            .strip_prefix(LOOKUP)
            .unwrap_or_else(|| panic!("request outside the lookup: {}", r.path));
        assert!(
            ids.iter().any(|i| i == id) || id == control,
            "unexpected {}",
            r.path
        );
    }
    w.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn statuses_outside_the_enum_are_recorded_errors_never_transitions() {
    let sim = sim().await;
    // Forced in the simulator: served as `"status": "<text>"`.
    let forced = [
        "WEIRD",
        "",
        "done",
        "DONE ",
        " READY",
        "REFUNDED",
        "입금대기",
        "DONE\u{0}",
    ];
    // Served raw: the status is not a string at all, or is missing.
    let raw: [Value; 6] = [
        json!({"status": 7}),
        json!({"status": null}),
        json!({"status": true}),
        json!({"status": {"code": "DONE"}}),
        json!({"status": ["DONE"]}),
        json!({"amount": 1}),
    ];
    let ids = sim.seed(forced.len() + raw.len() + 1);
    let long_id = ids[forced.len() + raw.len()].clone();
    for (id, status) in ids.iter().zip(forced) {
        sim.force(id, status).unwrap();
    }
    for (id, data) in ids[forced.len()..].iter().zip(raw) {
        serve(&sim, id, data);
    }
    serve(&sim, &long_id, json!({"status": "X".repeat(10_000)}));
    let (w, control, _dir) = watch_with_control(&sim, &ids).await;
    for id in &ids {
        eventually(&format!("an error recorded for {id}"), || async {
            w.column(id, "last_error").await.is_some()
        })
        .await;
    }
    settle_control(&sim, &w, &control).await;
    for id in &ids {
        let error = w.column(id, "last_error").await.unwrap();
        assert!(
            error.contains("anomaly") || error.contains("status"),
            "{id}: {error}"
        );
        assert!(error.len() < 1_000, "{id}: error not clipped");
        assert_eq!(w.column(id, "watch").await.as_deref(), Some("active"));
        assert_eq!(w.column(id, "status").await, None, "{id}");
        assert!(w.transitions(id).await.is_empty(), "{id}");
    }
    // A later real status is recorded normally.
    sim.set_override(&ids[0], None).unwrap();
    sim.force(&ids[0], "DONE").unwrap();
    w.wait_watch(&ids[0], "settled").await;
    assert_eq!(w.transitions(&ids[0]).await, [row(None, "DONE")]);
    assert_eq!(w.column(&ids[0], "last_error").await, None);
    stop_after_only_lookups(sim, w, &ids, &control).await;
}

#[tokio::test]
async fn malformed_and_absurd_datetimes_are_warnings_that_never_hide_the_status() {
    let sim = sim().await;
    let bad: Vec<Value> = vec![
        json!("yesterday"),
        json!(""),
        json!("2026-13-45T99:99:99"),
        json!("2026-02-30T10:00:00"),
        json!("9999-12-31T23:59:59"),
        json!("0001-01-01T00:00:00"),
        json!("+262143-12-31T23:59:59"),
        json!("1970-01-01T00:00:00"),
        json!("2026-11-25T10:00:00+99:99"),
        json!("9".repeat(10_000)),
        json!(1.0e308),
        json!(-1),
        json!({"date": "2026-11-25"}),
        json!(["2026-11-25T10:00:00"]),
    ];
    // Half DONE with a broken createdAt/modifiedAt, half READY with a broken due date.
    let ids = sim.seed(bad.len() * 2);
    for (i, value) in bad.iter().enumerate() {
        serve(
            &sim,
            &ids[2 * i],
            json!({"status": "DONE", "amount": 1000, "createdAt": value, "modifiedAt": value, "preparedVbankInfo": null}),
        );
        serve(
            &sim,
            &ids[2 * i + 1],
            json!({"status": "READY", "amount": 1000, "createdAt": "2026-11-25T10:00:00", "preparedVbankInfo": vbank(value.clone())}),
        );
    }
    let (w, control, _dir) = watch_with_control(&sim, &ids).await;
    for (i, value) in bad.iter().enumerate() {
        let (done, ready) = (&ids[2 * i], &ids[2 * i + 1]);
        w.wait_watch(done, "settled").await;
        assert_eq!(w.transitions(done).await, [row(None, "DONE")], "{value}");
        let error = w.column(done, "last_error").await.unwrap_or_default();
        assert!(error.contains("createdAt"), "{value}: {error:?}");
        eventually(&format!("READY for {value}"), || async {
            w.column(ready, "status").await.as_deref() == Some("READY")
        })
        .await;
        let error = w.column(ready, "last_error").await.unwrap_or_default();
        assert!(error.contains("vbankDueDate"), "{value}: {error:?}");
        assert!(error.len() < 1_000, "not clipped: {}", error.len());
        assert!(w.flags(ready).await.is_empty(), "no flag from a bad date");
    }
    settle_control(&sim, &w, &control).await;
    // An absurd but well-formed due date only warns; a sane one raises DUE_SOON.
    serve(
        &sim,
        &ids[1],
        json!({"status": "READY", "preparedVbankInfo": vbank(json!(kst_in(1)))}),
    );
    eventually("DUE_SOON once the date is sane", || async {
        w.flags(&ids[1]).await == [("DUE_SOON".to_owned(), false)]
    })
    .await;
    assert_eq!(w.transitions(&ids[1]).await, [row(None, "READY")]);
    stop_after_only_lookups(sim, w, &ids, &control).await;
}

#[tokio::test]
async fn prepared_vbank_info_null_missing_or_partial_is_tolerated() {
    let sim = sim().await;
    let due = json!(kst_in(30));
    let shapes: Vec<(Value, bool)> = vec![
        // (the data, whether the due date is usable)
        (json!({"status": "READY", "preparedVbankInfo": null}), false),
        (json!({"status": "READY"}), false),
        (json!({"status": "READY", "preparedVbankInfo": {}}), false),
        (
            json!({"status": "READY", "preparedVbankInfo": {"vbankAccountNumber": "1"}}),
            false,
        ),
        (
            json!({"status": "READY", "preparedVbankInfo": {"vbankDueDate": due}}),
            true,
        ),
        (
            json!({"status": "READY", "preparedVbankInfo": {"vbankDueDate": due, "vbankAccountNumber": 451235741265u64, "bankName": ["x"], "vbankHolderName": {"a": 1}}}),
            true,
        ),
        (
            json!({"status": "READY", "preparedVbankInfo": "none"}),
            false,
        ),
        (
            json!({"status": "READY", "preparedVbankInfo": [due]}),
            false,
        ),
        (json!({"status": "WAITED", "preparedVbankInfo": 0}), true),
    ];
    let ids = sim.seed(shapes.len());
    for (id, (data, _)) in ids.iter().zip(&shapes) {
        serve(&sim, id, data.clone());
    }
    let (w, control, _dir) = watch_with_control(&sim, &ids).await;
    for (id, (data, usable)) in ids.iter().zip(&shapes) {
        let want = data["status"].as_str().unwrap();
        eventually(&format!("{data} recorded"), || async {
            w.column(id, "status").await.as_deref() == Some(want)
        })
        .await;
        let error = w.column(id, "last_error").await;
        if *usable {
            assert_eq!(error, None, "{data}");
        } else {
            assert!(
                error.as_deref().is_some_and(|e| e.contains("vbankDueDate")),
                "{data}: {error:?}"
            );
        }
        assert_eq!(w.transitions(id).await, [row(None, want)], "{data}");
    }
    settle_control(&sim, &w, &control).await;
    for id in &ids {
        serve(
            &sim,
            id,
            json!({"status": "DONE", "preparedVbankInfo": null}),
        );
    }
    for id in &ids {
        w.wait_watch(id, "settled").await;
    }
    stop_after_only_lookups(sim, w, &ids, &control).await;
}

#[tokio::test]
async fn huge_endless_and_hanging_responses_are_cut_off_while_others_settle() {
    let api = ScriptedApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Client timeout 1 s, so the never-ending answers are cut off quickly.
    let w = Running::start(settings(
        &api.base_url(),
        dir.path(),
        &[("ISSUANCE_WATCHER__API__TIMEOUT", "1s")],
    ))
    .await;
    let cases = [
        ("chunked-50mb", Stream::Chunked(50_000_000), "larger than"),
        ("sized-50mb", Stream::Sized(50_000_000), "larger than"),
        ("endless", Stream::Endless, "larger than"),
        ("drip", Stream::Drip, "timed out"),
        ("hang", Stream::Hang, "timed out"),
    ];
    for (id, stream, _) in cases {
        api.set(id, Reply::stream(stream));
    }
    api.script(
        "control",
        vec![
            Reply::issuance("control", "WAITED"),
            Reply::issuance("control", "WAITED"),
            Reply::issuance("control", "DONE"),
        ],
    );
    let ids: Vec<&str> = cases.iter().map(|c| c.0).collect();
    w.insert(&ids).await;
    w.insert(&["control"]).await;
    for (id, _, expected) in cases {
        eventually(&format!("{id} recorded as an error"), || async {
            w.column(id, "last_error")
                .await
                .is_some_and(|e| e.contains(expected))
        })
        .await;
    }
    w.wait_watch("control", "settled").await;
    // The hostile ones keep being polled (and keep failing), nothing is recorded for them.
    let before = api.requests_for("endless");
    eventually("endless polled again", || async {
        api.requests_for("endless") > before
    })
    .await;
    for (id, _, _) in cases {
        assert!(w.transitions(id).await.is_empty(), "{id}");
        assert_eq!(w.column(id, "watch").await.as_deref(), Some("active"));
    }
    // The 50 MB bodies were never read through: the client hung up early.
    let polls_of_big = (api.requests_for("chunked-50mb") + api.requests_for("endless")) as u64;
    let streamed = api.streamed_bytes();
    assert!(
        streamed < polls_of_big * 8_000_000,
        "{streamed} bytes streamed for {polls_of_big} polls: bodies are read past the cap"
    );
    assert!(api.other_requests().is_empty());
    w.stop().await;
}

#[tokio::test]
async fn the_daemon_and_the_cli_survive_hostile_rows() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watcher.db");
    let config = TestSettings::new(&sim.base_url(), &db)
        .with(|s| s.poll.startup_spread = Duration::from_millis(10))
        .write_toml(&dir.path().join("config.toml"));
    let cli = |args: &[&str]| common::cli(&config, args);
    assert!(cli(&["migrate"]).status.success());
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let hostile: Vec<String> = hostile_ids().into_iter().chain(unusable_ids()).collect();
    for id in &hostile {
        sqlx::query("INSERT INTO issuances (id) VALUES (?)")
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    }
    for hex in NON_UTF8 {
        insert_raw(&pool, hex).await;
    }
    let control = sim.seed(1).remove(0);
    sim.force(&control, "DONE").unwrap();
    sqlx::query("INSERT INTO issuances (id) VALUES (?)")
        .bind(&control)
        .execute(&pool)
        .await
        .unwrap();

    let mut daemon = Daemon::start(&config);
    // Every hostile row ends (rejected by us, or not found by the simulator) with an error.
    eventually("every row to end its watch", || async {
        let active: i64 =
            sqlx::query_scalar("SELECT count(*) FROM issuances WHERE watch = 'active'")
                .fetch_one(&pool)
                .await
                .unwrap();
        active == 0
    })
    .await;
    assert!(daemon.running(), "the daemon is running");
    daemon.stop().await;
    let ends: Vec<(String, Option<String>, i64)> = sqlx::query_as(
        "SELECT watch, last_error, (SELECT count(*) FROM transitions t WHERE t.issuance_id = i.id) FROM issuances i WHERE id != ?",
    )
    .bind(&control)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(ends.len(), hostile.len() + NON_UTF8.len());
    for (watch, error, transitions) in &ends {
        assert!(watch == "rejected" || watch == "not_found", "{watch}");
        assert!(error.is_some() && *transitions == 0, "{watch} {error:?}");
    }
    let (watch, transitions): (String, i64) = sqlx::query_as(
        "SELECT watch, (SELECT count(*) FROM transitions WHERE issuance_id = ?1) FROM issuances WHERE id = ?1",
    )
    .bind(&control)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((watch.as_str(), transitions), ("settled", 1));
    // The simulator saw lookups only, each id one segment.
    for r in sim.request_log() {
        let segment = r
            .path
            .strip_prefix(LOOKUP)
            .unwrap_or_else(|| panic!("{}", r.path));
        assert!(!segment.contains(['/', '?', '#']), "{}", r.path);
        let id = decode(segment);
        assert!(id == control || hostile.contains(&id), "{}", r.path);
    }
    assert!(
        sim.stats()
            .by_status_code
            .keys()
            .all(|c| [200, 404].contains(c)),
        "{:?}",
        sim.stats().by_status_code
    );

    // The CLI over rows that are not UTF-8.
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["list", "--status", "UNSEEN"],
        &["flags"],
        &["flags", "--json"],
    ] {
        let out = cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let listed: Value =
        serde_json::from_slice(&cli(&["list", "--json", "--limit", "1000"]).stdout).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), ends.len() + 1);
    assert!(listed.iter().all(|r| r["id"].is_string()));
    assert!(
        listed.iter().any(|r| r["id"] == "\u{fffd}A"),
        "x'ff41' is listed lossily"
    );
    let shown = cli(&["show", "\u{fffd}A"]);
    assert!(!String::from_utf8_lossy(&shown.stderr).contains("panicked"));
    let shown = cli(&["show", &control, "--json"]);
    assert!(shown.status.success());
    pool.close().await;
    sim.shutdown().await;
}
