//! An `unknown` request blocks every new charge until a person resolves it,
//! once; one issuance is never the charge of two requests.

use chrono::Utc;
use issuance_watcher::store::{Access, OpenCharge, Resolution};

use super::{Engine, refused, try_exec, unknown_request};

/// An unresolved `unknown` request comes before anything else in the way of
/// a new charge, until it is resolved; the charge found is then watched.
pub async fn an_unknown_request_blocks_new_charges_until_resolved(e: Engine) {
    let now = Utc::now();
    e.exec("INSERT INTO issuances (id, status) VALUES ('open', 'READY')")
        .await;
    let unknown = unknown_request(&e.store, 70_000).await;
    let later = e
        .store
        .start_charge_request(10_000, true, now)
        .await
        .unwrap();
    let since = e
        .store
        .charge_request(unknown)
        .await
        .unwrap()
        .unwrap()
        .finished_at;
    assert_eq!(
        e.store.open_charge(later, 10_000_000).await.unwrap(),
        Some(OpenCharge::Unknown {
            id: unknown,
            amount: 70_000,
            since: since.unwrap()
        }),
        "{}: the unknown request first, before the open issuance",
        e.name
    );
    // Another daemon finds it in its way too.
    let other = e.another(Access::Write).await;
    assert!(
        matches!(
            other.open_charge(later, 10_000_000).await.unwrap(),
            Some(OpenCharge::Unknown { id, .. }) if id == unknown
        ),
        "{}",
        e.name
    );
    for (id, says) in [(later, "not unknown"), (999, "no charge request 999")] {
        let refused = e
            .store
            .resolve_charge_request(id, Resolution::None, "cli:t@h", now)
            .await
            .unwrap()
            .unwrap_err();
        assert!(refused.contains(says), "{}: {refused}", e.name);
    }
    let resolved = e
        .store
        .resolve_charge_request(unknown, Resolution::Issuance("1000077"), "cli:t@h", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            resolved.state.as_str(),
            resolved.resolution.as_deref(),
            resolved.issuance_id.as_deref(),
            resolved.resolved_by.as_deref()
        ),
        (
            "unknown",
            Some("issuance"),
            Some("1000077"),
            Some("cli:t@h")
        ),
        "{}",
        e.name
    );
    assert!(resolved.resolved_at.is_some(), "{}", e.name);
    assert_eq!(
        super::one(&e, "SELECT watch FROM issuances WHERE id = '1000077'")
            .await
            .as_deref(),
        Some("active"),
        "{}: the charge found is watched",
        e.name
    );
    assert_eq!(
        e.store.open_charge(later, 10_000_000).await.unwrap(),
        Some(OpenCharge::Issuance {
            id: "open".into(),
            status: "READY".into()
        }),
        "{}: resolved, it is out of the way",
        e.name
    );
}

/// A resolution is written once: a second is refused with what the first
/// said, by the store and by the trigger for other programs; a late answer
/// of the performer never overwrites it.
pub async fn a_request_is_resolved_once(e: Engine) {
    let now = Utc::now();
    let id = unknown_request(&e.store, 70_000).await;
    e.store
        .resolve_charge_request(id, Resolution::Issuance("1000077"), "cli:first@h", now)
        .await
        .unwrap()
        .unwrap();
    let again = e
        .store
        .resolve_charge_request(id, Resolution::None, "cli:other@h", now)
        .await
        .unwrap()
        .unwrap_err();
    for said in [
        "resolved already",
        "cli:first@h",
        "issuance 1000077",
        "never changed",
    ] {
        assert!(again.contains(said), "{}: {said:?} not in {again}", e.name);
    }
    let by_sql = try_exec(&e, "UPDATE charge_requests SET resolution = 'none'").await;
    assert!(
        by_sql.is_err(),
        "{}: the trigger refuses a second resolution",
        e.name
    );
    let late = e
        .store
        .finish_charge_request(id, refused(), now, now)
        .await
        .unwrap();
    assert!(
        !late.written,
        "{}: a late answer never overwrites a resolution",
        e.name
    );
    let row = e.store.charge_request(id).await.unwrap().unwrap();
    assert_eq!(
        (
            row.state.as_str(),
            row.resolution.as_deref(),
            row.resolved_by.as_deref()
        ),
        ("unknown", Some("issuance"), Some("cli:first@h")),
        "{}",
        e.name
    );
    // One issuance is never the charge of two requests.
    let second = unknown_request(&e.store, 5000).await;
    let taken = e
        .store
        .resolve_charge_request(second, Resolution::Issuance("1000077"), "cli:t@h", now)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        taken.contains(&format!("charge of charge request {id}")),
        "{}: {taken}",
        e.name
    );
}

/// Two people (two stores) resolving at once: of two resolutions of one
/// request exactly one is written and the other is told it was resolved
/// already; of two requests resolved to one issuance, exactly one gets it.
pub async fn concurrent_resolutions_are_written_once(e: Engine) {
    let now = Utc::now();
    let other = e.another(Access::Write).await;
    for round in 0..10 {
        let a = unknown_request(&e.store, 1000).await;
        let (first, second) = tokio::join!(
            e.store
                .resolve_charge_request(a, Resolution::None, "cli:one@h", now),
            other.resolve_charge_request(a, Resolution::None, "cli:two@h", now),
        );
        let same = [first.unwrap(), second.unwrap()];
        assert_eq!(
            same.iter().filter(|r| r.is_ok()).count(),
            1,
            "{}: round {round}: {same:?}",
            e.name
        );
        let refused = same.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert!(
            refused.contains("resolved already"),
            "{}: {refused}",
            e.name
        );

        let (c, d) = (
            unknown_request(&e.store, 3000).await,
            unknown_request(&e.store, 4000).await,
        );
        let issuance = format!("30000{round}");
        let (x, y) = tokio::join!(
            e.store
                .resolve_charge_request(c, Resolution::Issuance(&issuance), "cli:one@h", now),
            other.resolve_charge_request(d, Resolution::Issuance(&issuance), "cli:two@h", now),
        );
        let both = [x.unwrap(), y.unwrap()];
        assert_eq!(
            both.iter().filter(|r| r.is_ok()).count(),
            1,
            "{}: round {round}: one issuance, one request: {both:?}",
            e.name
        );
        // Out of the way of the next round's checks.
        let left = if both[0].is_ok() { d } else { c };
        e.store
            .resolve_charge_request(left, Resolution::None, "cli:t@h", now)
            .await
            .unwrap()
            .unwrap();
    }
}
