//! Claiming due issuances as fenced leases, on both engines: what is claimed,
//! in which order, how many, and that a lease is exclusive (also between two
//! daemons claiming at the same moment). Also the fixtures `records.rs` uses.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use issuance_watcher::domain::timefmt::{from_db, to_db};
use issuance_watcher::domain::{Decision, Flag, Observation, Status, Vbank};
use issuance_watcher::store::{Access, Claimed, PollRecord, RecordKind, Recorded, Store};

use super::Engine;

/// An instant in the stored layout.
pub fn t(s: &str) -> DateTime<Utc> {
    from_db(s).unwrap()
}

/// Set-up SQL built at run time (the suite's `exec` takes static text).
pub fn leak(sql: String) -> &'static str {
    Box::leak(sql.into_boxed_str())
}

/// The one value of a one-row, one-column query (each engine's text of it).
pub async fn one(e: &Engine, sql: &'static str) -> Option<String> {
    let rows = e.rows(sql).await;
    assert_eq!(rows.len(), 1, "{}: {sql} gave {rows:?}", e.name);
    rows[0][0].clone()
}

/// The ids of `claims`, sorted.
pub fn ids(claims: &[Claimed]) -> Vec<String> {
    let mut ids: Vec<String> = claims
        .iter()
        .map(|c| String::from_utf8(c.raw_id.clone()).unwrap())
        .collect();
    ids.sort();
    ids
}

/// Claims every row due at `at`, as the scheduler would, for two minutes.
pub async fn claim_all(store: &Store, at: DateTime<Utc>) -> Vec<Claimed> {
    store
        .claim_due(at, at + chrono::Duration::minutes(2), 1000)
        .await
        .unwrap()
}

/// The claim of `id` among `claims`.
pub fn of(claims: &[Claimed], id: &str) -> Claimed {
    claims
        .iter()
        .find(|c| c.raw_id == id.as_bytes())
        .unwrap_or_else(|| panic!("{id} was not claimed"))
        .clone()
}

/// Claims every due row and returns the claim of `id`.
pub async fn claim(store: &Store, id: &str) -> Claimed {
    of(
        &claim_all(store, Utc::now() + chrono::Duration::seconds(1)).await,
        id,
    )
}

/// A poll that observed `status` (with a virtual account due in two hours),
/// due again at once unless it is terminal.
pub fn observed(status: Status, claimed: Claimed, flags: Vec<Flag>) -> PollRecord {
    let now = Utc::now();
    PollRecord {
        claimed,
        now,
        kind: RecordKind::Observed {
            observation: Observation {
                status,
                amount: Some(10_000),
                created_at: None,
                modified_at: None,
                vbank: Some(Vbank {
                    due_at: Some(now + chrono::Duration::hours(2)),
                    account_number: Some("451235741265".into()),
                    bank_name: Some("KB".into()),
                    holder_name: None,
                }),
                warnings: vec![],
            },
            decision: if status.is_terminal() {
                Decision::Settled
            } else {
                Decision::PollAt(now)
            },
            flags,
        },
    }
}

/// A failed poll (HTTP 503), due again in five seconds, with a DUE_SOON flag.
pub fn failed(claimed: Claimed) -> PollRecord {
    let now = Utc::now();
    PollRecord {
        claimed,
        now,
        kind: RecordKind::Failed {
            error: "HTTP 503".into(),
            attempts: 1,
            not_found_since: None,
            decision: Decision::PollAt(now + chrono::Duration::seconds(5)),
            flags: vec![Flag::due_soon(Duration::from_secs(3600))],
        },
    }
}

/// Claims `id` and records one poll of it that observed `status` with `flags`.
pub async fn poll_once(store: &Store, id: &str, status: Status, flags: Vec<Flag>) -> Recorded {
    let record = observed(status, claim(store, id).await, flags);
    store.record(&[record]).await.unwrap()
}

pub async fn a_plain_insert_is_claimable_and_the_claim_is_a_lease(e: Engine) {
    e.exec("INSERT INTO issuances (id) VALUES ('123'), ('456')")
        .await;
    let now = Utc::now() + chrono::Duration::seconds(1);
    let lease = now + chrono::Duration::minutes(2);
    let claimed = e.store.claim_due(now, lease, 10).await.unwrap();
    assert_eq!(ids(&claimed), ["123", "456"], "{}", e.name);
    assert_eq!(claimed[0].status, None, "{}", e.name);
    assert!(
        e.store.claim_due(now, lease, 10).await.unwrap().is_empty(),
        "{}: leased rows are not claimed twice",
        e.name
    );
    assert_eq!(
        e.store.next_due().await.unwrap(),
        Some(t(&to_db(lease))),
        "{}",
        e.name
    );
    assert_eq!(e.store.last_due().await.unwrap(), Some(t(&to_db(lease))));
    let owners = e
        .rows("SELECT lease_owner FROM issuances ORDER BY id")
        .await;
    let mine = Some(e.store.owner().to_owned());
    assert_eq!(owners, [[mine.clone()], [mine]], "{}", e.name);
    let after_lease = lease + chrono::Duration::milliseconds(1);
    let again = e
        .store
        .claim_due(after_lease, after_lease, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 2, "{}: expired leases come back", e.name);
    assert!(
        again.iter().all(|c| claimed
            .iter()
            .any(|old| old.raw_id == c.raw_id && old.fence < c.fence)),
        "{}: each claim takes a new fence",
        e.name
    );
}

pub async fn claims_take_the_most_overdue_first_and_respect_the_limit(e: Engine) {
    e.exec(
        "INSERT INTO issuances (id, next_poll_at) VALUES
             ('a', '2026-01-01T00:00:03.000Z'), ('b', '2026-01-01T00:00:01.000Z'),
             ('c', '2026-01-01T00:00:02.000Z')",
    )
    .await;
    let now = t("2026-01-01T00:00:05.000Z");
    let claimed = e
        .store
        .claim_due(now, now + chrono::Duration::minutes(1), 2)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), ["b", "c"], "{}", e.name);
}

pub async fn settled_and_future_rows_are_not_claimed(e: Engine) {
    e.exec(
        "INSERT INTO issuances (id, watch) VALUES ('done', 'settled');
         INSERT INTO issuances (id, next_poll_at) VALUES ('later', '2999-01-01T00:00:00.000Z')",
    )
    .await;
    let now = Utc::now();
    assert!(
        e.store.claim_due(now, now, 10).await.unwrap().is_empty(),
        "{}",
        e.name
    );
    assert_eq!(
        e.store.next_due().await.unwrap(),
        Some(t("2999-01-01T00:00:00.000Z")),
        "{}: settled rows are never due",
        e.name
    );
}

pub async fn a_backlog_of_new_rows_gets_its_share_and_no_more(e: Engine) {
    let new: Vec<String> = (0..100).map(|i| format!("new{i}")).collect();
    e.store.add_ids(&new).await.unwrap();
    e.exec("UPDATE issuances SET next_poll_at = '2026-01-01T00:00:00.000Z'")
        .await;
    // Three READY rows fall due after the whole backlog was inserted.
    e.exec(
        "INSERT INTO issuances (id, status, next_poll_at) VALUES
             ('ready0', 'READY', '2026-01-01T00:00:01.000Z'),
             ('ready1', 'READY', '2026-01-01T00:00:01.000Z'),
             ('ready2', 'READY', '2026-01-01T00:00:01.000Z')",
    )
    .await;
    let now = t("2026-01-01T00:00:05.000Z");
    let until = now + chrono::Duration::minutes(1);
    let of_kind =
        |ids: &[String], prefix: &str| ids.iter().filter(|i| i.starts_with(prefix)).count();
    // 8 slots: the due READY rows come first, new rows fill the rest.
    let first = ids(&e.store.claim_due(now, until, 8).await.unwrap());
    assert_eq!(
        (of_kind(&first, "ready"), of_kind(&first, "new")),
        (3, 5),
        "{}: {first:?}",
        e.name
    );
    // With more due READY rows than slots, new rows still get a quarter.
    let more: Vec<String> = (0..20)
        .map(|i| format!("('more{i}', 'READY', '2026-01-01T00:00:02.000Z')"))
        .collect();
    e.exec(leak(format!(
        "INSERT INTO issuances (id, status, next_poll_at) VALUES {}",
        more.join(", ")
    )))
    .await;
    let second = ids(&e.store.claim_due(now, until, 8).await.unwrap());
    assert_eq!(
        (of_kind(&second, "more"), of_kind(&second, "new")),
        (6, 2),
        "{}: {second:?}",
        e.name
    );
    // Without a backlog of seen rows, new rows take the whole claim.
    e.exec("UPDATE issuances SET watch = 'settled' WHERE status = 'READY'")
        .await;
    assert_eq!(e.store.claim_due(now, until, 8).await.unwrap().len(), 8);
}

pub async fn released_claims_are_due_at_once_unless_someone_rescheduled_them(e: Engine) {
    // (SQLite also holds ids that are not UTF-8, which are left to expire;
    // PostgreSQL text cannot hold them: the SQLite unit test covers that.)
    e.exec("INSERT INTO issuances (id) VALUES ('a'), ('b')")
        .await;
    let now = Utc::now() + chrono::Duration::seconds(1);
    let lease = now + chrono::Duration::minutes(2);
    let claimed = e.store.claim_due(now, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 2, "{}", e.name);
    // Another program moves b meanwhile; its schedule is left alone.
    e.exec("UPDATE issuances SET next_poll_at = '2030-01-01T00:00:00.000Z' WHERE id = 'b'")
        .await;
    let leases: Vec<_> = claimed.iter().cloned().map(|c| (c, lease)).collect();
    assert_eq!(
        e.store.release(&leases, now).await.unwrap(),
        1,
        "{}",
        e.name
    );
    let again = e.store.claim_due(now, lease, 10).await.unwrap();
    assert_eq!(ids(&again), ["a"], "{}: only a is due again", e.name);
    // A second release of the old claims finds their fences gone.
    assert_eq!(
        e.store.release(&leases, now).await.unwrap(),
        0,
        "{}",
        e.name
    );
}

pub async fn a_dead_owners_claims_are_taken_over(e: Engine) {
    e.exec(
        "INSERT INTO issuances (id) VALUES ('mine'), ('theirs1'), ('theirs2'); \
         INSERT INTO issuances (id, next_poll_at) VALUES ('later', '2999-01-01T00:00:00.000Z')",
    )
    .await;
    let dead = e.another(Access::Write).await;
    let now = Utc::now() + chrono::Duration::seconds(1);
    let lease = now + chrono::Duration::minutes(10);
    let theirs = dead.claim_due(now, lease, 2).await.unwrap();
    assert_eq!(theirs.len(), 2, "{}", e.name);
    let mine = e.store.claim_due(now, lease, 10).await.unwrap();
    assert_eq!(mine.len(), 1, "{}", e.name);
    let taken = e
        .store
        .take_over_claims_of(dead.owner(), now)
        .await
        .unwrap();
    assert_eq!(taken, 2, "{}: only the dead owner's leases end", e.name);
    let back = e.store.claim_due(now, lease, 10).await.unwrap();
    assert_eq!(ids(&back), ids(&theirs), "{}: due at once", e.name);
    // The dead daemon's late results are stale.
    let late: Vec<PollRecord> = theirs
        .into_iter()
        .map(|c| observed(Status::Waited, c, vec![]))
        .collect();
    let recorded = dead.record(&late).await.unwrap();
    assert_eq!(
        (recorded.stale, recorded.transitions.len()),
        (2, 0),
        "{}",
        e.name
    );
    dead.close().await;
}

pub async fn rows_scheduled_beyond_any_legitimate_wait_are_pulled_back(e: Engine) {
    e.exec(
        "INSERT INTO issuances (id, next_poll_at) VALUES
             ('far', '2026-02-01T00:00:00.000Z'), ('legit', '2026-01-01T00:30:00.000Z');
         INSERT INTO issuances (id, watch, next_poll_at) VALUES
             ('done', 'settled', '2027-01-01T00:00:00.000Z')",
    )
    .await;
    let now = t("2026-01-01T00:00:00.000Z");
    let latest = now + chrono::Duration::hours(1);
    let pulled = e
        .store
        .pull_back_beyond(now, latest, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(pulled, 1, "{}", e.name);
    let at = async |id: &str| t(&e.store.issuance(id).await.unwrap().unwrap().next_poll_at);
    let far = at("far").await;
    assert!(
        far >= now && far < now + chrono::Duration::seconds(10),
        "{}: {far}",
        e.name
    );
    assert_eq!(
        at("legit").await,
        t("2026-01-01T00:30:00.000Z"),
        "{}",
        e.name
    );
    assert_eq!(
        at("done").await,
        t("2027-01-01T00:00:00.000Z"),
        "{}",
        e.name
    );
}

/// Two daemons claim from the same due rows at the same moment, small claims
/// again and again: no row is ever leased to both, and together they take
/// every row.
pub async fn two_stores_claiming_at_once_never_get_the_same_row(e: Engine) {
    const ROWS: usize = 3000;
    let ids_added: Vec<String> = (0..ROWS).map(|i| format!("c{i:05}")).collect();
    e.store.add_ids(&ids_added).await.unwrap();
    let other = e.another(Access::Write).await;
    let now = Utc::now() + chrono::Duration::seconds(1);
    let until = now + chrono::Duration::minutes(10);
    let claimer = |store: Store| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            // Every claim takes at least one of the ROWS or ends the drain.
            for _ in 0..=ROWS {
                let claimed = store.claim_due(now, until, 25).await.unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|c| c.raw_id));
            }
            panic!("claims still found rows after {ROWS} rounds")
        })
    };
    let (a, b) = (claimer(e.store.clone()), claimer(other.clone()));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let a_set: HashSet<_> = a.iter().cloned().collect();
    let b_set: HashSet<_> = b.iter().cloned().collect();
    assert_eq!(
        a_set.len(),
        a.len(),
        "{}: a row claimed twice by one",
        e.name
    );
    assert_eq!(
        b_set.len(),
        b.len(),
        "{}: a row claimed twice by one",
        e.name
    );
    let both = a_set.intersection(&b_set).count();
    assert_eq!(both, 0, "{}: {both} rows leased to both daemons", e.name);
    assert_eq!(
        a.len() + b.len(),
        ROWS,
        "{}: every row claimed once",
        e.name
    );
    eprintln!("{}: claims split {} / {}", e.name, a.len(), b.len());
    other.close().await;
}

/// A claim passes over rows another transaction holds locked (another
/// daemon's claim or write in flight) instead of waiting for it.
pub async fn a_claim_passes_over_rows_another_transaction_holds(e: Engine) {
    // SQLite has one writer at a time: no other transaction can hold a row
    // while a claim runs, so there is nothing to pass over.
    let Some(pg) = e.store.pg_pool() else {
        return;
    };
    e.exec(
        "INSERT INTO issuances (id, next_poll_at) VALUES
             ('held', '2026-01-01T00:00:00.000Z'), ('free', '2026-01-01T00:00:01.000Z')",
    )
    .await;
    let mut holder = pg.begin().await.unwrap();
    sqlx::query("SELECT id FROM issuances WHERE id = 'held' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let now = Utc::now();
    let until = now + chrono::Duration::minutes(2);
    let claimed = tokio::time::timeout(Duration::from_secs(5), e.store.claim_due(now, until, 10))
        .await
        .expect("the claim does not wait for the locked row")
        .unwrap();
    assert_eq!(ids(&claimed), ["free"], "{}", e.name);
    holder.rollback().await.unwrap();
    let later = e.store.claim_due(now, until, 10).await.unwrap();
    assert_eq!(ids(&later), ["held"], "{}: taken once it is free", e.name);
}
