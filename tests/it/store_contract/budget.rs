//! The request budget all daemons on one database share (`store/budget.rs`):
//! slots are never handed out twice, and a pause written by one daemon is
//! seen by every other, also one opened later.

use std::time::Duration;

use issuance_watcher::store::{Access, Grant};

use super::Engine;

/// Every slot of `grants`, on the database's clock.
fn slots(grants: &[Grant]) -> Vec<i64> {
    grants
        .iter()
        .flat_map(|g| (0..g.count).map(move |i| g.first + g.interval * i64::from(i)))
        .collect()
}

/// Four stores take grants at once: no two slots closer than the interval,
/// so together they never exceed the rate; each grant starts no earlier
/// than the database's now.
pub async fn concurrent_takers_never_get_more_slots_than_the_rate(e: Engine) {
    const INTERVAL: i64 = 2_000; // 500 requests per second
    let mut stores = vec![e.store.clone()];
    for _ in 0..3 {
        stores.push(e.another(Access::Write).await);
    }
    let mut takers = tokio::task::JoinSet::new();
    for store in stores {
        takers.spawn(async move {
            let mut grants = Vec::new();
            for _ in 0..25 {
                grants.push(store.take_budget(5, INTERVAL).await.unwrap());
            }
            grants
        });
    }
    let grants: Vec<Grant> = takers.join_all().await.into_iter().flatten().collect();
    assert_eq!(grants.len(), 100, "{}", e.name);
    for g in &grants {
        assert_eq!(g.count, 5, "{}: {g:?}", e.name);
        assert!(g.first >= g.now, "{}: a slot in the past: {g:?}", e.name);
    }
    let mut all = slots(&grants);
    all.sort_unstable();
    assert_eq!(all.len(), 500, "{}", e.name);
    for pair in all.windows(2) {
        assert!(
            pair[1] - pair[0] >= INTERVAL,
            "{}: slots {} and {} are closer than {INTERVAL} µs",
            e.name,
            pair[0],
            pair[1]
        );
    }
    // The first 500 slots span (at least) a second: one second's worth.
    assert!(all[499] - all[0] >= 499 * INTERVAL, "{}", e.name);
}

/// A pause written through one store stops grants through another, and
/// through one opened afterwards (a daemon started meanwhile); a shorter
/// pause does not shorten it; once it ends, slots are granted again.
pub async fn a_pause_written_by_one_is_seen_by_another(e: Engine) {
    let other = e.another(Access::Write).await;
    assert!(
        e.store
            .pause_budget(Duration::from_secs(30), "retry_after")
            .await
            .unwrap(),
        "{}",
        e.name
    );
    assert!(
        !other
            .pause_budget(Duration::from_secs(5), "auth")
            .await
            .unwrap(),
        "{}: a shorter pause must not shorten it",
        e.name
    );
    for store in [&other, &e.another(Access::Write).await] {
        let g = store.take_budget(5, 1_000).await.unwrap();
        assert_eq!(g.count, 0, "{}: granted while paused: {g:?}", e.name);
        let left = g.pause_left().expect("paused");
        assert!(
            left > Duration::from_secs(29) && left <= Duration::from_secs(30),
            "{}: {left:?}",
            e.name
        );
        assert_eq!(g.pause_reason.as_deref(), Some("retry_after"), "{}", e.name);
    }
    // A short pause, waited out: grants resume.
    e.exec("UPDATE api_budget SET paused_until_us = NULL, pause_reason = NULL")
        .await;
    e.store
        .pause_budget(Duration::from_millis(200), "auth")
        .await
        .unwrap();
    assert_eq!(
        other.take_budget(1, 1_000).await.unwrap().count,
        0,
        "{}",
        e.name
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let g = other.take_budget(3, 1_000).await.unwrap();
    assert_eq!((g.count, g.pause_left()), (3, None), "{}", e.name);
}
