//! The dashboard in a real browser (Debian's headless `chromium`, driven over
//! WebDriver by `chromedriver`): every page loads without a console error
//! (a CSP violation, a failed load and a script error all log one), the
//! overview shows the open charge's account and deadline, an issuance's
//! timeline matches its transitions, a sink is disabled and enabled with the
//! token and not without, a cancel needs its confirmation, a hostile id
//! renders as text. Fails under CI when chromium is missing (`.ci/run`
//! installs it). `screenshots` (ignored) regenerates the README's images.

use crate::common;
use crate::support::{chromium, require};

use chrono::{Duration as Span, Utc};
use common::engine::on_both_engines;
use common::site::{ADMIN_TOKEN, Site};
use common::webdriver::Browser;
use issuance_watcher::domain::Status;

use super::dashboard::PAGES;

/// A browser, or `None` (the test then stops) outside CI without chromium.
async fn browser() -> Option<Browser> {
    let (driver, chromium) = require(chromium())?;
    Some(Browser::start(&driver, &chromium).await)
}

/// The console's errors (level SEVERE) since the last look.
async fn console_errors(browser: &Browser) -> Vec<String> {
    browser
        .console()
        .await
        .into_iter()
        .filter(|(level, _)| level == "SEVERE")
        .map(|(_, message)| message)
        .collect()
}

async fn sign_in(site: &Site, browser: &Browser) {
    browser.goto(&site.url("/login")).await;
    browser.type_into("#token", ADMIN_TOKEN).await;
    browser.click("#sign-in").await;
    // The click returns when the form is sent; the overview follows its answer.
    let overview = site.url("/");
    common::running::wait_for(
        "the sign-in to lead back to the overview",
        std::time::Duration::from_secs(10),
        async || match browser.url().await {
            url if url == overview => Ok(()),
            url => Err(url),
        },
    )
    .await;
}

async fn every_page_loads_without_a_console_error() {
    let site = Site::start(true, &["hooks"], |_| {}).await;
    site.charge("ok-1", Status::Ready, 50_000, Utc::now() + Span::hours(3))
        .await;
    site.unknown_request(10_000).await;
    let Some(browser) = browser().await else {
        return;
    };
    // Negative control: a failed load is an error the check sees.
    browser.goto(&site.url("/no-such-page")).await;
    assert!(
        !console_errors(&browser).await.is_empty(),
        "the console check must see a 404"
    );
    for signed_in in [false, true] {
        if signed_in {
            sign_in(&site, &browser).await;
        }
        for path in PAGES {
            browser.goto(&site.url(path)).await;
            let errors = console_errors(&browser).await;
            assert!(
                errors.is_empty(),
                "{path} (signed in: {signed_in}): {errors:?}"
            );
        }
    }
    browser.quit().await;
}

async fn the_overview_shows_the_open_charges_account_and_deadline() {
    let site = Site::start(false, &[], |_| {}).await;
    let due = Utc::now() + Span::hours(5);
    site.charge("open-1", Status::Ready, 1_500_000, due).await;
    let Some(browser) = browser().await else {
        return;
    };
    browser.goto(&site.url("/")).await;
    assert_eq!(
        browser.text("#open-charge .account").await,
        "110-123-456789"
    );
    let kst = due
        .with_timezone(&chrono_tz::Asia::Seoul)
        .format("%Y-%m-%d %H:%M:%S KST")
        .to_string();
    let deadline = browser.text("#open-charge .deadline").await;
    assert!(deadline.starts_with(&kst), "{deadline} is {kst}");
    assert!(deadline.contains("4h 59m left"), "{deadline}");
    assert!(browser.text("#open-charge").await.contains("1,500,000 KRW"));
    browser.quit().await;
}

async fn an_issuances_timeline_matches_its_transitions() {
    let site = Site::start(false, &[], |_| {}).await;
    let due = Utc::now() + Span::hours(5);
    site.charge("t-1", Status::Waited, 20_000, due).await;
    site.charge("t-1", Status::Ready, 20_000, due).await;
    site.charge("t-1", Status::Done, 20_000, due).await;
    let rows = site.store.transitions_of("t-1").await.unwrap();
    assert_eq!(rows.len(), 3, "the precondition: three transitions");
    let Some(browser) = browser().await else {
        return;
    };
    browser.goto(&site.url("/issuance?id=t-1")).await;
    let steps = browser.all("#timeline li").await;
    assert_eq!(steps.len(), rows.len());
    for (step, row) in steps.iter().zip(&rows) {
        let text = browser.text_of(step).await;
        let from = row.from_status.as_deref().unwrap_or("(first sighting)");
        assert!(
            text.starts_with(&format!("{from} → {}", row.to_status)),
            "{text} is {row:?}"
        );
    }
    browser.quit().await;
}

async fn a_sink_is_disabled_and_enabled_with_the_token_and_not_without() {
    let site = Site::start(true, &["hooks"], |_| {}).await;
    let disabled = async || {
        site.store
            .sink("hooks")
            .await
            .unwrap()
            .unwrap()
            .disabled_at
            .is_some()
    };
    let Some(browser) = browser().await else {
        return;
    };
    browser.goto(&site.url("/sinks")).await;
    assert!(
        browser.all("button.disable").await.is_empty(),
        "no action without the token"
    );
    sign_in(&site, &browser).await;
    browser.goto(&site.url("/sinks")).await;
    browser.click("button.disable").await;
    assert!(browser.text("#message").await.contains("is disabled"));
    assert!(disabled().await);
    browser.goto(&site.url("/sinks")).await;
    assert_eq!(browser.text("td.health").await, "disabled");
    browser.click("button.enable").await;
    assert!(browser.text("#message").await.contains("is enabled"));
    assert!(!disabled().await);
    browser.quit().await;
}

async fn a_cancel_needs_its_confirmation() {
    let site = Site::start(true, &[], |_| {}).await;
    site.charge("c-1", Status::Ready, 45_000, Utc::now() + Span::hours(5))
        .await;
    let Some(browser) = browser().await else {
        return;
    };
    sign_in(&site, &browser).await;
    browser.goto(&site.url("/issuance?id=c-1")).await;
    browser.click("#cancel").await;
    assert_eq!(browser.text("#confirm-id").await, "c-1");
    let status = site.store.issuance("c-1").await.unwrap().unwrap().status;
    assert_eq!(
        status.as_deref(),
        Some("READY"),
        "nothing is sent before the confirmation"
    );
    // Confirmed: the cancel goes to the API (here nothing listens: its outcome is unknown).
    browser.click("#confirm-cancel").await;
    let said = browser.text("#message").await;
    assert!(said.contains("may or may not be cancelled"), "{said}");
    browser.quit().await;
}

async fn a_hostile_id_renders_as_text() {
    let site = Site::start(false, &[], |_| {}).await;
    let id = "<img src=x onerror=alert(1)><script>alert(2)</script>";
    site.charge(id, Status::Ready, 1_000, Utc::now() + Span::hours(5))
        .await;
    let Some(browser) = browser().await else {
        return;
    };
    for path in ["/", "/issuances", "/to-pay"] {
        browser.goto(&site.url(path)).await;
        assert!(browser.all("img").await.is_empty(), "{path} made an image");
    }
    browser.click("a[href^='/issuance?id=']").await;
    assert_eq!(browser.text("h1 .id").await, id);
    assert!(browser.all("img, script").await.is_empty());
    let errors = console_errors(&browser).await;
    assert!(errors.is_empty(), "{errors:?}");
    browser.quit().await;
}

on_both_engines!(
    every_page_loads_without_a_console_error,
    the_overview_shows_the_open_charges_account_and_deadline,
    an_issuances_timeline_matches_its_transitions,
    a_sink_is_disabled_and_enabled_with_the_token_and_not_without,
    a_cancel_needs_its_confirmation,
    a_hostile_id_renders_as_text,
);

/// Regenerates `docs/dashboard-overview.png` and `docs/dashboard-issuance.png`:
/// `cargo test --test it -- --ignored dashboard_browser::screenshots`.
#[tokio::test]
#[ignore = "writes the README's screenshots"]
async fn screenshots() {
    let site = Site::start(true, &["shop", "slack-finance"], |_| {}).await;
    let due = Utc::now() + Span::minutes(95);
    site.charge("P2026120600001", Status::Waited, 3_000_000, due)
        .await;
    site.charge("P2026120600001", Status::Ready, 3_000_000, due)
        .await;
    site.charge("P2026120500042", Status::Done, 1_200_000, Utc::now())
        .await;
    for (i, balance) in [
        4_100_000, 3_900_000, 3_950_000, 3_400_000, 3_600_000, 3_200_000,
    ]
    .iter()
    .enumerate()
    {
        site.store
            .record_balance(Utc::now() - Span::hours(6 - i as i64), *balance, 0, None)
            .await
            .unwrap();
    }
    // A daemon alive on the database, as on a real host.
    let _alive = site.store.hold_ownership().await;
    let Some(browser) = browser().await else {
        return;
    };
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    browser.goto(&site.url("/")).await;
    std::fs::write(
        docs.join("dashboard-overview.png"),
        browser.screenshot().await,
    )
    .unwrap();
    browser.goto(&site.url("/issuance?id=P2026120600001")).await;
    std::fs::write(
        docs.join("dashboard-issuance.png"),
        browser.screenshot().await,
    )
    .unwrap();
    browser.quit().await;
}
