//! The web dashboard over plain HTTP: security headers on every page, every
//! value escaped (hostile ids render as text), the payer's view of the open
//! charge, the CSV, keyset paging, and actions only for a signed-in holder of
//! the admin token with the page's CSRF token. On both engines.
//! The same pages in a real browser: `dashboard_browser.rs`.

use crate::common;

use chrono::{Duration as Span, Utc};
use common::engine::on_both_engines;
use common::site::{ADMIN_TOKEN, Site};
use issuance_watcher::domain::Status;
use issuance_watcher::store::{Access, Store};
use issuance_watcher::web::CONTENT_SECURITY_POLICY;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

/// Every page, with a query where it needs one.
pub(crate) const PAGES: [&str; 8] = [
    "/",
    "/to-pay",
    "/issuances",
    "/issuance?id=ok-1",
    "/events",
    "/sinks",
    "/charges",
    "/login",
];

/// A client that shows redirects instead of following them (to see `Set-Cookie`).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get(site: &Site, path: &str, cookie: Option<&str>) -> (StatusCode, HeaderMap, String) {
    let mut request = client().get(site.url(path));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

async fn post(
    site: &Site,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let body: Vec<String> = form
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    let mut request = client()
        .post(site.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.join("&"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

/// The value of the first hidden `csrf` field of `html` (empty when none).
fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    html.find(marker)
        .map(|at| {
            let rest = &html[at + marker.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .unwrap_or_default()
}

/// Signs in with `token`; the cookie to send after, if it worked.
async fn sign_in(site: &Site, token: &str) -> Option<String> {
    let (_, _, form) = get(site, "/login", None).await;
    let csrf = csrf_of(&form);
    let (status, headers, _) =
        post(site, "/login", None, &[("csrf", &csrf), ("token", token)]).await;
    if status != StatusCode::SEE_OTHER {
        return None;
    }
    assert_eq!(headers[LOCATION], "/");
    let cookie = headers[SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    Some(cookie.split(';').next().unwrap().to_owned())
}

async fn sink_disabled(site: &Site, name: &str) -> bool {
    site.store
        .sink(name)
        .await
        .unwrap()
        .unwrap()
        .disabled_at
        .is_some()
}

async fn every_page_sends_the_security_headers_and_no_secret() {
    let site = Site::start(true, &["hooks"], |_| {}).await;
    site.charge("ok-1", Status::Ready, 50_000, Utc::now() + Span::hours(3))
        .await;
    for path in PAGES {
        let (status, headers, body) = get(&site, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(headers["content-security-policy"], CONTENT_SECURITY_POLICY);
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(!body.contains("<script"), "{path} has a script");
        for secret in [ADMIN_TOKEN, common::SECRET_B64, common::WEBHOOK_SECRET] {
            assert!(!body.contains(secret), "{path} shows a secret");
        }
    }
    // The policy itself: no script, no framing, forms only to this origin.
    for part in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(CONTENT_SECURITY_POLICY.contains(part));
    }
    let (status, headers, _) = get(&site, "/no-such-page", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["x-frame-options"], "DENY");
}

/// Ids and texts another program or the API could store.
const HOSTILE: [&str; 6] = [
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "' onmouseover='alert(1)",
    "a&b=c#frag",
    "../../etc/passwd",
    "</td></tr></table><h1>x",
];

async fn hostile_ids_render_as_text_everywhere() {
    let site = Site::start(true, &["hooks"], |_| {}).await;
    // Configured names are validated; the database may hold any (another program's).
    site.store.register_sink("<b>sink</b>").await.unwrap();
    site.charge("ok-1", Status::Ready, 50_000, Utc::now() + Span::hours(3))
        .await;
    for (i, id) in HOSTILE.iter().enumerate() {
        site.charge(
            id,
            Status::Ready,
            1000 + i as i64,
            Utc::now() + Span::hours(2),
        )
        .await;
    }
    let cookie = sign_in(&site, ADMIN_TOKEN).await.unwrap();
    let mut pages: Vec<String> = PAGES.iter().map(|p| (*p).to_owned()).collect();
    pages.extend(
        HOSTILE
            .iter()
            .map(|id| format!("/issuance?id={}", urlencode(id))),
    );
    for path in &pages {
        let (status, _, body) = get(&site, path, Some(&cookie)).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        for raw in ["<script>", "<img", "<b>sink", "<h1>x", "onmouseover='"] {
            assert!(
                !body.contains(raw),
                "{path} renders {raw:?} as markup:\n{body}"
            );
        }
    }
    let (_, _, issuance) = get(
        &site,
        &format!("/issuance?id={}", urlencode(HOSTILE[0])),
        None,
    )
    .await;
    assert!(
        issuance.contains(&escaped(HOSTILE[0])),
        "the id is shown, escaped: {issuance}"
    );
    let (_, _, list) = get(&site, "/issuances", None).await;
    for id in HOSTILE {
        assert!(
            list.contains(&escaped(id)),
            "{id:?} is listed as text: {list}"
        );
    }
    // Links carry the id percent-encoded: one query value, whatever it holds.
    assert!(list.contains("/issuance?id=a%26b%3Dc%23frag"), "{list}");
}

/// `text` as HTML text, escaped the way the templates escape it (numeric entities).
fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn the_overview_shows_the_open_charge_as_a_payer_needs_it() {
    let site = Site::start(false, &["hooks"], |_| {}).await;
    let due = Utc::now() + Span::minutes(150);
    site.charge("pay-me", Status::Ready, 1_234_000, due).await;
    site.charge("done-1", Status::Done, 9_999, Utc::now()).await;
    let unknown = site.unknown_request(77_000).await;
    site.store
        .record_balance(Utc::now(), 5_432_100, 0, None)
        .await
        .unwrap();
    let (_, _, body) = get(&site, "/", None).await;
    let kst = due
        .with_timezone(&chrono_tz::Asia::Seoul)
        .format("%Y-%m-%d %H:%M")
        .to_string();
    for expected in [
        "110-123-456789",
        "Shinhan",
        "Bunjang Point",
        "1,234,000 KRW",
        kst.as_str(),
        " KST",
        "2h 29m left",
        "5,432,100 points",
        "<polyline",
    ] {
        assert!(
            body.contains(expected),
            "the overview lacks {expected:?}:\n{body}"
        );
    }
    assert!(!body.contains("done-1"), "a settled charge is not open");
    // The unknown charge comes first, in the red section.
    let section = body
        .find("id=\"unknown-charges\"")
        .expect("an unknown-charges section");
    assert!(section < body.find("id=\"open-charge\"").unwrap());
    assert!(body[section..].contains(&format!("<td>{unknown}</td>")));
    assert!(body.contains("http-equiv=\"refresh\""), "it reloads itself");
}

async fn to_pay_lists_open_charges_soonest_first_and_downloads_them_as_csv() {
    let site = Site::start(false, &[], |_| {}).await;
    site.charge(
        "later",
        Status::Ready,
        2_000_000,
        Utc::now() + Span::hours(20),
    )
    .await;
    site.charge("sooner", Status::Ready, 30_000, Utc::now() + Span::hours(1))
        .await;
    site.charge(
        "=cmd|' /C calc'!A0",
        Status::Waited,
        1,
        Utc::now() + Span::hours(40),
    )
    .await;
    let (_, _, body) = get(&site, "/to-pay", None).await;
    let (sooner, later) = (
        body.find(">sooner<").unwrap(),
        body.find(">later<").unwrap(),
    );
    assert!(sooner < later, "soonest first");
    assert!(body.contains("2,000,000"));
    let (status, headers, csv) = get(&site, "/to-pay.csv", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("deadline_kst,"));
    assert!(
        lines[1].contains("\"30000\"") && lines[1].ends_with("\"sooner\""),
        "{csv}"
    );
    assert!(lines[1].contains("\"110-123-456789\""));
    assert!(
        lines[3].ends_with("\"'=cmd|' /C calc'!A0\""),
        "no formula: {csv}"
    );
}

async fn issuances_page_by_keyset_and_filter() {
    let site = Site::start(false, &[], |_| {}).await;
    let ids: Vec<String> = (0..120).map(|i| format!("id-{i:03}")).collect();
    site.store.add_ids(&ids).await.unwrap();
    site.charge("id-050", Status::Ready, 100, Utc::now() + Span::hours(1))
        .await;
    let mut seen = Vec::new();
    let mut path = "/issuances".to_owned();
    for _ in 0..5 {
        let (_, _, body) = get(&site, &path, None).await;
        seen.extend(
            body.match_indices(">id-")
                .map(|(at, _)| body[at + 1..at + 7].to_owned()),
        );
        let Some(at) = body.find("id=\"next\"") else {
            break;
        };
        let href_at = body[..at].rfind("href=\"").unwrap() + 6;
        path = body[href_at..at]
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&");
        assert!(path.contains("after=id%2D"), "a keyset cursor: {path}");
    }
    assert_eq!(seen, ids, "every id once, in order, over three pages");
    let (_, _, ready) = get(&site, "/issuances?status=READY&watch=active", None).await;
    assert_eq!(ready.matches(">id-").count(), 1, "{ready}");
    assert!(ready.contains(">id-050<"));
    let (_, _, unseen) = get(&site, "/issuances?status=UNSEEN", None).await;
    assert_eq!(unseen.matches(">id-").count(), 50);
}

async fn without_a_token_the_dashboard_is_read_only() {
    let site = Site::start(false, &["hooks"], |_| {}).await;
    let (_, _, sinks) = get(&site, "/sinks", None).await;
    assert!(sinks.contains("read-only") && !sinks.contains("<form method=\"post\""));
    assert_eq!(sign_in(&site, ADMIN_TOKEN).await, None);
    let (status, _, _) = post(
        &site,
        "/actions/sink",
        None,
        &[("csrf", ""), ("sink", "hooks"), ("op", "disable")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!sink_disabled(&site, "hooks").await);
}

async fn actions_need_the_token_the_cookie_and_the_csrf_token() {
    let site = Site::start(true, &["hooks"], |_| {}).await;
    assert_eq!(sign_in(&site, "not-the-admin-token-at-all").await, None);
    let (_, _, anonymous) = get(&site, "/sinks", None).await;
    assert_eq!(csrf_of(&anonymous), "", "no token for a page not signed in");
    let cookie = sign_in(&site, ADMIN_TOKEN)
        .await
        .expect("the right token signs in");
    let (_, _, page) = get(&site, "/sinks", Some(&cookie)).await;
    let csrf = csrf_of(&page);
    assert_eq!(csrf.len(), 64, "{page}");
    let disable = |csrf: &str| {
        [
            ("csrf", csrf.to_owned()),
            ("sink", "hooks".to_owned()),
            ("op", "disable".to_owned()),
        ]
    };
    let as_pairs = |f: &[(&'static str, String); 3]| {
        f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
    };
    for (cookie, csrf) in [
        (None, csrf.as_str()),
        (Some(cookie.as_str()), "forged"),
        (Some(cookie.as_str()), ""),
    ] {
        let form = as_pairs(&disable(csrf));
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, _) = post(&site, "/actions/sink", cookie, &form).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "cookie {cookie:?} csrf {csrf:?}"
        );
        assert!(!sink_disabled(&site, "hooks").await);
    }
    let form = as_pairs(&disable(&csrf));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, body) = post(&site, "/actions/sink", Some(&cookie), &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(sink_disabled(&site, "hooks").await);
    let (status, _, _) = post(
        &site,
        "/actions/sink",
        Some(&cookie),
        &[("csrf", &csrf), ("sink", "hooks"), ("op", "enable")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!sink_disabled(&site, "hooks").await);
    // Redelivering an event schedules it for the configured sinks, with the token only.
    site.charge("r-1", Status::Ready, 1000, Utc::now() + Span::hours(1))
        .await;
    let seq = site.store.events_of("r-1").await.unwrap()[0]
        .seq
        .to_string();
    let forged = [
        ("csrf", "forged"),
        ("seq", seq.as_str()),
        ("back", "/events"),
    ];
    let (status, _, _) = post(&site, "/actions/redeliver", Some(&cookie), &forged).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(site.store.deliveries_of("r-1").await.unwrap().is_empty());
    let form = [
        ("csrf", csrf.as_str()),
        ("seq", seq.as_str()),
        ("back", "/events"),
    ];
    let (status, _, body) = post(&site, "/actions/redeliver", Some(&cookie), &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deliveries = site.store.deliveries_of("r-1").await.unwrap();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(
        (deliveries[0].sink.as_str(), deliveries[0].seq.to_string()),
        ("hooks", seq)
    );
    // GET never acts.
    let (status, _, _) = get(&site, "/actions/sink", Some(&cookie)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

async fn a_cancel_first_asks_for_a_confirmation_naming_the_charge() {
    let site = Site::start(true, &[], |_| {}).await;
    site.charge(
        "ready-1",
        Status::Ready,
        45_000,
        Utc::now() + Span::hours(5),
    )
    .await;
    let cookie = sign_in(&site, ADMIN_TOKEN).await.unwrap();
    let (_, _, page) = get(&site, "/issuance?id=ready-1", Some(&cookie)).await;
    assert!(page.contains("id=\"cancel\""), "{page}");
    let csrf = csrf_of(&page);
    let (status, _, body) = post(
        &site,
        "/actions/cancel",
        Some(&cookie),
        &[("csrf", &csrf), ("id", "ready-1")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Cancel charge ready-1?") && body.contains("45,000 KRW"));
    assert!(body.contains("110-123-456789") && body.contains("name=\"confirm\" value=\"ready-1\""));
    let status_now = site
        .store
        .issuance("ready-1")
        .await
        .unwrap()
        .unwrap()
        .status;
    assert_eq!(status_now.as_deref(), Some("READY"), "nothing sent yet");
    // A confirmation for another charge confirms nothing.
    let (_, _, body) = post(
        &site,
        "/actions/cancel",
        Some(&cookie),
        &[("csrf", &csrf), ("id", "ready-1"), ("confirm", "other")],
    )
    .await;
    assert!(body.contains("Cancel charge ready-1?"));
}

on_both_engines!(
    every_page_sends_the_security_headers_and_no_secret,
    hostile_ids_render_as_text_everywhere,
    the_overview_shows_the_open_charge_as_a_payer_needs_it,
    to_pay_lists_open_charges_soonest_first_and_downloads_them_as_csv,
    issuances_page_by_keyset_and_filter,
    without_a_token_the_dashboard_is_read_only,
    actions_need_the_token_the_cookie_and_the_csrf_token,
    a_cancel_first_asks_for_a_confirmation_naming_the_charge,
    the_daemon_serves_the_dashboard_beside_healthz_and_metrics(
        flavor = "multi_thread",
        worker_threads = 2
    ),
);

/// PostgreSQL's planner, asked through its statistics: with sequential
/// scans priced out (`enable_seqscan = off`: the planner then scans a table
/// only where no index serves the statement), rendering every page adds no
/// sequential scan of a table that grows. The SQLite plans are asserted in
/// the store's unit tests.
#[tokio::test]
async fn on_postgres_no_page_scans_a_growing_table() {
    common::engine::on_postgres(async {
        let url = common::engine::postgres_url().unwrap();
        // Seeded through a store of its own, closed before the site starts:
        // a backend reports its counters when it ends, so none of the
        // seeding's scans can be counted against the pages.
        let seed = Store::open_postgres(&url, Access::Migrate).await.unwrap();
        let ids: Vec<String> = (0..5000).map(|i| format!("bulk-{i:05}")).collect();
        seed.add_ids(&ids).await.unwrap();
        for i in 0..20 {
            let status = if i % 2 == 0 { Status::Done } else { Status::Ready };
            let due = Utc::now() + Span::hours(i);
            common::site::charge(&seed, &format!("c-{i}"), status, 1000, due).await;
        }
        seed.record_balance(Utc::now(), 1000, 0, None).await.unwrap();
        seed.close().await;
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query("ANALYZE").execute(&admin).await.unwrap();
        sqlx::query(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET enable_seqscan = off', current_database()); END $$",
        )
        .execute(&admin)
        .await
        .unwrap();
        let tables = "'issuances', 'transitions', 'events', 'deliveries', 'attempts', 'flags', 'balance_history'";
        let sql = format!(
            "SELECT relname::text, seq_scan FROM pg_stat_user_tables WHERE relname IN ({tables}) ORDER BY relname"
        );
        let scans = async || -> Vec<(String, i64)> {
            // The counters a backend reported, read afresh (not from this
            // transaction's snapshot), after the reports of at most a second ago.
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            sqlx::query("SELECT pg_stat_clear_snapshot()")
                .execute(&admin)
                .await
                .unwrap();
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .fetch_all(&admin)
                .await
                .unwrap()
        };
        let before = scans().await;
        assert_eq!(before.len(), 7, "{before:?}");
        let site = Site::start(false, &[], |_| {}).await;
        for path in PAGES.iter().copied().chain([
            "/issuances?after=bulk-02500",
            "/issuances?status=READY",
            "/issuance?id=c-3",
            "/issuance?id=c-4",
        ]) {
            let path = path.replace("ok-1", "c-1");
            let (status, _, _) = get(&site, &path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}");
        }
        // Its connections end, and so report their counters.
        site.store.close().await;
        drop(site);
        let after = scans().await;
        admin.close().await;
        assert_eq!(before, after, "sequential scans while rendering the pages");
    })
    .await;
}

async fn the_daemon_serves_the_dashboard_beside_healthz_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin_token");
    std::fs::write(&token, format!("{ADMIN_TOKEN}\n")).unwrap();
    let port = common::metrics::free_port();
    let settings = common::TestSettings::new("http://127.0.0.1:9", &dir.path().join("w.db"))
        .with(|s| {
            s.http.listen = format!("127.0.0.1:{port}");
            s.http.admin_token_file = Some(token.clone());
        })
        .build();
    let app = common::running::RunningApp::start(settings).await;
    app.running().await;
    let base = format!("http://127.0.0.1:{port}");
    let page = client().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()["content-security-policy"],
        CONTENT_SECURITY_POLICY
    );
    let body = page.text().await.unwrap();
    assert!(
        body.contains("Sign in") && !body.contains(ADMIN_TOKEN),
        "{body}"
    );
    let health = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert!(health.status().is_success() || health.status() == StatusCode::SERVICE_UNAVAILABLE);
    app.stop().await.unwrap();
}
