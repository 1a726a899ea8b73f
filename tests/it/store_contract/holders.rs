//! Which daemon holds a webhook sink (`store/holders.rs`): one at a time;
//! a live holder keeps it until its hold runs out, a dead one loses it at
//! once; every write of a holder that lost the sink is dropped whole.

use std::time::Duration;

use chrono::{DateTime, Utc};
use issuance_watcher::store::{Access, SinkHold, Store, StoreError};

use super::Engine;
use super::events::{at, attempt, balance_low, due};
use crate::common::running::wait_for;

const T0: &str = "2026-12-06T10:00:00.000Z";

fn t(seconds: i64) -> DateTime<Utc> {
    at(T0) + chrono::Duration::seconds(seconds)
}

fn not_held<T: std::fmt::Debug>(outcome: Result<T, StoreError>) -> bool {
    matches!(outcome, Err(StoreError::NotHeld { .. }))
}

async fn holder(store: &Store) -> Option<String> {
    let holders = store.sink_holders().await.unwrap();
    holders
        .into_iter()
        .find(|h| h.sink == "shop")
        .and_then(|h| h.holder)
}

pub async fn a_sink_is_held_by_one_daemon_until_its_hold_runs_out_and_a_late_write_is_dropped(
    e: Engine,
) {
    let n = e.name;
    let a = e.another(Access::Write).await;
    let b = &e.store;
    let (a_alive, b_alive) = (a.hold_ownership().await, b.hold_ownership().await);
    assert!(a_alive.is_held() && b_alive.is_held(), "{n}");
    let hold_a = a
        .take_sink("shop", t(0), t(15))
        .await
        .unwrap()
        .expect("free");
    assert_eq!(holder(b).await.as_deref(), Some(a.owner()), "{n}");
    balance_low(&e).await;
    balance_low(&e).await;
    assert_eq!(
        a.admit_held_events(&hold_a, &["balance.low"], t(1), 100)
            .await
            .unwrap(),
        2,
        "{n}"
    );

    // A is alive and its hold runs: B cannot take the sink, however often it tries.
    for s in [1, 10, 14] {
        assert_eq!(
            b.take_sink("shop", t(s), t(s + 15)).await.unwrap(),
            None,
            "{n}"
        );
    }
    assert!(a.renew_sink(&hold_a, t(30)).await.unwrap(), "{n}");
    assert_eq!(
        b.take_sink("shop", t(29), t(44)).await.unwrap(),
        None,
        "{n}"
    );

    // A froze: its hold ran out, B takes the sink with a new fence.
    let hold_b = b
        .take_sink("shop", t(31), t(46))
        .await
        .unwrap()
        .expect("a hold that ran out is taken");
    assert!(hold_b.fence > hold_a.fence, "{n}: {hold_a:?} {hold_b:?}");
    assert_eq!(holder(b).await.as_deref(), Some(b.owner()), "{n}");

    // A resumes: nothing it writes for the sink lands.
    assert!(!a.renew_sink(&hold_a, t(60)).await.unwrap(), "{n}");
    let delivered = attempt(1, "2026-12-06T10:00:31.000Z", 204, None);
    assert!(
        not_held(
            a.record_held_attempts(&hold_a, std::slice::from_ref(&delivered), None, None)
                .await
        ),
        "{n}"
    );
    assert!(
        not_held(
            a.admit_held_events(&hold_a, &["balance.low"], t(31), 100)
                .await
        ),
        "{n}"
    );
    assert!(
        not_held(
            a.disable_held_if_failing(&hold_a, Duration::from_secs(1), t(31))
                .await
        ),
        "{n}"
    );
    assert_eq!(
        due(b, "shop", "2026-12-06T10:00:32.000Z").await,
        [(String::new(), 1)],
        "{n}: A's late outcome left the delivery open"
    );
    // B's own write lands.
    b.record_held_attempts(&hold_b, &[delivered], None, None)
        .await
        .unwrap();
    assert_eq!(
        due(b, "shop", "2026-12-06T10:00:32.000Z").await,
        [(String::new(), 2)],
        "{n}"
    );

    // B hands it back: A takes it at once, with a newer fence still.
    assert_eq!(
        a.take_sink("shop", t(32), t(47)).await.unwrap(),
        None,
        "{n}"
    );
    b.release_sink(&hold_b).await.unwrap();
    let again = a
        .take_sink("shop", t(33), t(48))
        .await
        .unwrap()
        .expect("handed back");
    assert!(again.fence > hold_b.fence, "{n}");
    assert!(
        not_held(b.record_held_attempts(&hold_b, &[], None, None).await),
        "{n}"
    );
    a.close().await;
}

/// Takes the sink for `store` until it gets it (a closed session's lock goes
/// a moment after the client closed it).
async fn take_once_free(store: &Store, at_second: i64) -> SinkHold {
    wait_for(
        "the dead holder's sink to be taken",
        Duration::from_secs(10),
        async || match store
            .take_sink("shop", t(at_second), t(3600))
            .await
            .unwrap()
        {
            Some(hold) => Ok(hold),
            None => Err("still held".to_owned()),
        },
    )
    .await
}

pub async fn a_dead_holders_sink_is_taken_at_once_and_a_takeover_frees_it(e: Engine) {
    let n = e.name;
    let b = &e.store;
    // A holds the sink for an hour, then dies: B takes it at once.
    let a = e.another(Access::Write).await;
    let a_alive = a.hold_ownership().await;
    assert!(a_alive.is_held(), "{n}");
    let hold_a = a
        .take_sink("shop", t(0), t(3600))
        .await
        .unwrap()
        .expect("free");
    assert_eq!(b.take_sink("shop", t(1), t(16)).await.unwrap(), None, "{n}");
    drop(a_alive);
    let hold_b = take_once_free(b, 2).await;
    assert!(hold_b.fence > hold_a.fence, "{n}");
    assert!(
        not_held(a.record_held_attempts(&hold_a, &[], None, None).await),
        "{n}"
    );
    b.release_sink(&hold_b).await.unwrap();
    a.close().await;

    // C holds it and dies; B's takeover of the dead daemon frees the sink too.
    let c = e.another(Access::Write).await;
    let c_alive = c.hold_ownership().await;
    c.take_sink("shop", t(10), t(3600))
        .await
        .unwrap()
        .expect("free");
    drop(c_alive);
    // (A, dead too, may be found with it.)
    wait_for(
        "the dead daemon's takeover to free its sink",
        Duration::from_secs(10),
        async || {
            let found = b.take_over_dead_owners(t(11)).await.unwrap();
            match holder(b).await {
                None => Ok(()),
                Some(h) => Err(format!("held by {h} after {found:?}")),
            }
        },
    )
    .await;
    c.close().await;
}
