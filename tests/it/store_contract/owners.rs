//! Which daemons are alive, and what happens to a dead one's work: its claims
//! are due at once, its charge requests in flight become `unknown`; a live
//! one's are left alone, and a cleanly stopped one leaves nothing behind.
//! Leases are set by plain SQL (as a claim would leave them), so these tests
//! depend on nothing but the owners' interface. A daemon "dies" by dropping
//! its ownership without retiring it: SQLite's lock file stays, unlocked;
//! PostgreSQL's session closes, which ends its advisory lock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use issuance_watcher::store::{Access, Store, TakenOver};

use super::Engine;
use crate::common::running::wait_for;

/// The instant the takeovers run at.
const NOW: &str = "2026-12-06T10:00:00.000Z";

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

/// A statement made at run time, for [`Engine::exec`] and [`Engine::rows`].
fn sql(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// Leases `ids` to `owner` as its claim would (a new fence, due far later).
async fn lease(e: &Engine, owner: &str, ids: &str) {
    e.exec(sql(format!(
        "UPDATE issuances SET lease_owner = '{owner}', lease_fence = lease_fence + 1,
             next_poll_at = '2099-01-01T00:00:00.000Z' WHERE id IN ({ids})"
    )))
    .await;
}

/// Each issuance's (id, lease owner or `-`, due).
async fn leases(e: &Engine) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    for id in ["x1", "x2", "y1"] {
        let row = e.store.issuance(id).await.unwrap().expect("inserted");
        let owner = e
            .rows(sql(format!(
                "SELECT coalesce(lease_owner, '-') FROM issuances WHERE id = '{id}'"
            )))
            .await;
        rows.push((
            id.to_owned(),
            owner[0][0].clone().unwrap(),
            row.next_poll_at,
        ));
    }
    rows
}

/// Takes over until one dead owner was found (a closed session's lock goes
/// a moment after the client closed it), and returns what was found.
async fn take_over_the_dead_one(store: &Store) -> TakenOver {
    wait_for(
        "the dead owner to be taken over",
        Duration::from_secs(10),
        async || {
            let found = store.take_over_dead_owners(now()).await.unwrap();
            if found.owners == 1 {
                Ok(found)
            } else {
                Err(format!("{found:?}"))
            }
        },
    )
    .await
}

pub async fn a_dead_owners_claims_are_due_at_once_and_a_live_ones_are_not(e: Engine) {
    e.exec("INSERT INTO issuances (id, next_poll_at) VALUES ('x1', '2026-12-06T09:00:00.000Z'), ('x2', '2026-12-06T09:00:00.000Z'), ('y1', '2026-12-06T09:00:00.000Z')").await;
    let a = e.another(Access::Write).await;
    let ownership = a.hold_ownership().await;
    assert!(ownership.is_held(), "{}", e.name);
    lease(&e, a.owner(), "'x1', 'x2'").await;
    let far = "2099-01-01T00:00:00.000Z".to_owned();
    let leased = vec![
        ("x1".to_owned(), a.owner().to_owned(), far.clone()),
        ("x2".to_owned(), a.owner().to_owned(), far),
        (
            "y1".to_owned(),
            "-".to_owned(),
            "2026-12-06T09:00:00.000Z".to_owned(),
        ),
    ];

    // A is alive: its claims are left to it, however often B looks.
    for _ in 0..3 {
        let found = e.store.take_over_dead_owners(now()).await.unwrap();
        assert_eq!(found, TakenOver::default(), "{}", e.name);
        assert_eq!(leases(&e).await, leased, "{}", e.name);
    }
    // Neither does B's charge sweep touch anything of a live owner.
    assert_eq!(
        e.store.sweep_charge_requests(now(), now()).await.unwrap(),
        0,
        "{}",
        e.name
    );

    // A dies: B ends its leases, its claims due at once; the unleased row is untouched.
    drop(ownership);
    let found = take_over_the_dead_one(&e.store).await;
    assert_eq!(
        (
            found.issuances,
            found.charge_requests,
            found.undecided.len()
        ),
        (2, 0, 0),
        "{}",
        e.name
    );
    assert_eq!(
        leases(&e).await,
        [
            ("x1".to_owned(), "-".to_owned(), NOW.to_owned()),
            ("x2".to_owned(), "-".to_owned(), NOW.to_owned()),
            (
                "y1".to_owned(),
                "-".to_owned(),
                "2026-12-06T09:00:00.000Z".to_owned()
            ),
        ],
        "{}",
        e.name
    );
    // Once: a dead owner is taken over by one daemon, one time.
    let again = e.store.take_over_dead_owners(now()).await.unwrap();
    assert_eq!(again, TakenOver::default(), "{}", e.name);
    a.close().await;
}

pub async fn a_retired_owner_leaves_nothing_to_take_over(e: Engine) {
    e.exec("INSERT INTO issuances (id, next_poll_at) VALUES ('x1', '2026-12-06T09:00:00.000Z'), ('x2', '2026-12-06T09:00:00.000Z'), ('y1', '2026-12-06T09:00:00.000Z')").await;
    let a = e.another(Access::Write).await;
    let ownership = a.hold_ownership().await;
    assert!(ownership.is_held(), "{}", e.name);
    assert_eq!(e.store.daemons().await.live.len(), 1, "{}", e.name);
    // A lease it kept (as if handed back late): a clean stop's leases expire.
    lease(&e, a.owner(), "'x1'").await;
    ownership.retire().await;
    let daemons = e.store.daemons().await;
    assert_eq!(
        (daemons.live.len(), daemons.dead),
        (0, 0),
        "{}: {daemons:?}",
        e.name
    );
    // Give a closed session's lock time to go: still nothing to take over.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let found = e.store.take_over_dead_owners(now()).await.unwrap();
    assert_eq!(found, TakenOver::default(), "{}", e.name);
    assert_eq!(leases(&e).await[0].1, a.owner(), "{}", e.name);
    a.close().await;
}

/// Charge requests in flight: (id, state, error code or `-`).
async fn charge_states(e: &Engine) -> Vec<(String, String, String)> {
    e.rows(
        "SELECT CAST(id AS TEXT), state, coalesce(error_code, '-') FROM charge_requests ORDER BY id",
    )
    .await
    .into_iter()
    .map(|r| {
        (
            r[0].clone().unwrap(),
            r[1].clone().unwrap(),
            r[2].clone().unwrap(),
        )
    })
    .collect()
}

fn states(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect()
}

pub async fn a_dead_performers_charge_requests_become_unknown_and_a_live_ones_do_not(e: Engine) {
    let a = e.another(Access::Write).await;
    let c = e.another(Access::Write).await;
    let a_ownership = a.hold_ownership().await;
    let c_ownership = c.hold_ownership().await;
    assert!(a_ownership.is_held() && c_ownership.is_held(), "{}", e.name);
    // 1: A's, 2: C's, 3 and 4: a performer that never held a lock (a `charge`
    // that died before taking it), one sent long ago, one just now.
    e.exec(sql(format!(
        "INSERT INTO charge_requests (amount, state, performed_by, sent_at) VALUES
           (1000, 'sending', '{a}', '2026-12-06T09:59:00.000Z'),
           (2000, 'sending', '{c}', '2026-12-06T09:59:00.000Z'),
           (3000, 'sending', 'gone', '2026-12-06T09:00:00.000Z'),
           (4000, 'sending', 'gone', '2026-12-06T09:59:30.000Z')",
        a = a.owner(),
        c = c.owner()
    )))
    .await;
    let stale_before: DateTime<Utc> = "2026-12-06T09:30:00.000Z".parse().unwrap();

    // Both live: only the unknown performer's stale request is given up.
    let swept = e
        .store
        .sweep_charge_requests(now(), stale_before)
        .await
        .unwrap();
    assert_eq!(swept, 1, "{}", e.name);
    assert_eq!(
        e.store.take_over_dead_owners(now()).await.unwrap(),
        TakenOver::default(),
        "{}",
        e.name
    );
    let mut expected = states(&[
        ("1", "sending", "-"),
        ("2", "sending", "-"),
        ("3", "unknown", "PERFORMER_DIED"),
        ("4", "sending", "-"),
    ]);
    assert_eq!(charge_states(&e).await, expected, "{}", e.name);

    // C dies: the sweep makes its request unknown at once (never sent again).
    drop(c_ownership);
    wait_for(
        "the dead performer's request to be swept",
        Duration::from_secs(10),
        async || match e.store.sweep_charge_requests(now(), stale_before).await {
            Ok(1) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    expected[1] = ("2".into(), "unknown".into(), "PERFORMER_DIED".into());
    assert_eq!(charge_states(&e).await, expected, "{}", e.name);

    // A dies: the takeover makes its request unknown (C, swept but not yet
    // taken over, is taken over too: it had nothing left).
    drop(a_ownership);
    let mut made_unknown = 0;
    wait_for(
        "the dead performer's request to be taken over",
        Duration::from_secs(10),
        async || {
            let found = e.store.take_over_dead_owners(now()).await.unwrap();
            made_unknown += found.charge_requests;
            match charge_states(&e).await[0].1.as_str() {
                "unknown" => Ok(()),
                state => Err(format!("{found:?}, request 1 {state}")),
            }
        },
    )
    .await;
    assert_eq!(made_unknown, 1, "{}", e.name);
    expected[0] = ("1".into(), "unknown".into(), "PERFORMER_DIED".into());
    assert_eq!(charge_states(&e).await, expected, "{}", e.name);
    a.close().await;
    c.close().await;
}

pub async fn status_shows_a_live_daemon_and_its_health_and_not_a_dead_one(e: Engine) {
    let a = e.another(Access::Write).await;
    // No ownership yet: a health note creates nothing.
    a.note_health(Some("a problem")).await.unwrap();
    assert_eq!(e.store.daemons().await, Default::default(), "{}", e.name);

    let ownership = a.hold_ownership().await;
    let facts = e.store.status_facts(now()).await.unwrap();
    let live = &facts.daemons.live;
    assert_eq!(live.len(), 1, "{}: {:?}", e.name, facts.daemons);
    assert_eq!(live[0].owner, a.owner(), "{}", e.name);
    assert_eq!(live[0].pid, Some(std::process::id()), "{}", e.name);
    assert!(live[0].since.is_some(), "{}", e.name);
    assert_eq!(live[0].health, None, "{}: not judged yet", e.name);
    let since = live[0].since.clone();

    a.note_health(Some("468 of 469 poll results dropped"))
        .await
        .unwrap();
    let live = e.store.daemons().await.live;
    assert_eq!(
        live[0].health.as_deref(),
        Some("468 of 469 poll results dropped"),
        "{}",
        e.name
    );
    assert_eq!(live[0].since, since, "{}", e.name);
    a.note_health(None).await.unwrap();
    assert_eq!(
        e.store.daemons().await.live[0].health.as_deref(),
        Some("ok"),
        "{}",
        e.name
    );

    // Dead: no longer live, counted as dead until taken over.
    drop(ownership);
    wait_for(
        "the dead daemon to be seen dead",
        Duration::from_secs(10),
        async || {
            let daemons = e.store.daemons().await;
            if daemons.live.is_empty() && daemons.dead == 1 {
                Ok(())
            } else {
                Err(format!("{daemons:?}"))
            }
        },
    )
    .await;
    a.close().await;
}
