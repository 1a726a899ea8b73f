//! Charges on both engines: the money-safety invariants of
//! `src/store/charges.rs` (a request is claimed once, its outcome written
//! only by its performer over `sending`, an `unknown` one blocks every new
//! charge until a person resolves it, once), a created charge's issuance
//! recorded with its outcome, a reused id never merged, and the balance.

use chrono::{DateTime, Utc};
use issuance_watcher::domain::{Decision, Observation, Status};
use issuance_watcher::store::{Access, ChargeResult, ID_REUSED, OpenCharge, Store};

use super::Engine;

/// An instant with whole milliseconds, stored and read back exactly by both.
fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Runs `sql` as another program would and says whether the engine took it.
async fn try_exec(e: &Engine, sql: &'static str) -> Result<(), String> {
    let done = match e.store.pg_pool() {
        Some(pg) => sqlx::raw_sql(sql).execute(pg).await.map(|_| ()),
        None => sqlx::raw_sql(sql).execute(e.store.pool()).await.map(|_| ()),
    };
    done.map_err(|err| err.to_string())
}

/// One value of a one-row, one-column query, as text.
async fn one(e: &Engine, sql: &'static str) -> Option<String> {
    let rows = e.rows(sql).await;
    assert_eq!(rows.len(), 1, "{}: {sql} gave {rows:?}", e.name);
    rows[0][0].clone()
}

fn refused() -> ChargeResult<'static> {
    ChargeResult::Refused {
        http_status: 400,
        code: "BAD_REQUEST",
        reason: "no",
    }
}

fn unknown() -> ChargeResult<'static> {
    ChargeResult::Unknown {
        http_status: Some(500),
        code: "SERVER_ERROR",
        detail: "HTTP 500",
    }
}

fn observed(status: Status) -> Observation {
    Observation {
        status,
        amount: Some(70_000),
        created_at: None,
        modified_at: None,
        vbank: None,
        warnings: Vec::new(),
    }
}

/// A request `store` sends at once, written unknown by it (as a 5xx leaves it).
async fn unknown_request(store: &Store, amount: i64) -> i64 {
    let now = Utc::now();
    let id = store
        .start_charge_request(amount, false, now)
        .await
        .unwrap();
    let finished = store
        .finish_charge_request(id, unknown(), now, now)
        .await
        .unwrap();
    assert!(finished.written);
    id
}

/// Four claimers on two stores (two daemons) take forty pending requests at
/// once: each request is claimed by exactly one of them, FIFO within each.
pub async fn a_pending_request_is_claimed_exactly_once(e: Engine) {
    e.exec(
        "INSERT INTO charge_requests (amount)
         SELECT 1000 + n FROM (WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 40)
                               SELECT n FROM r) AS numbers",
    )
    .await;
    let other = e.another(Access::Write).await;
    let claimers = [&e.store, &other, &e.store, &other].map(|store| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut claimed = Vec::new();
            // A claim that lost a race finds nothing and looks again, so the
            // drain is bounded by time rather than by rounds.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                assert!(
                    std::time::Instant::now() < deadline,
                    "pending requests left unclaimed after 30 s"
                );
                match store.claim_charge_request(Utc::now()).await.unwrap() {
                    Some(request) => claimed.push((request.id, request.amount)),
                    None if store.any_pending_charge_request().await.unwrap() => {}
                    None => break,
                }
            }
            (store.owner().to_owned(), claimed)
        })
    });
    let mut all = Vec::new();
    for claimer in claimers {
        let (owner, claimed) = claimer.await.unwrap();
        let ids: Vec<i64> = claimed.iter().map(|(id, _)| *id).collect();
        assert!(ids.is_sorted(), "{}: oldest first: {ids:?}", e.name);
        for (id, amount) in claimed {
            assert_eq!(amount, 1000 + id, "{}", e.name);
            let row = e.store.charge_request(id).await.unwrap().unwrap();
            assert_eq!(
                (row.state.as_str(), row.performed_by.as_deref()),
                ("sending", Some(owner.as_str())),
                "{}: request {id} is its claimer's",
                e.name
            );
            all.push(id);
        }
    }
    all.sort();
    assert_eq!(
        all,
        (1..=40).collect::<Vec<i64>>(),
        "{}: each request claimed exactly once",
        e.name
    );
    assert_eq!(
        e.store.claim_charge_request(Utc::now()).await.unwrap(),
        None
    );
    assert!(!e.store.any_pending_charge_request().await.unwrap());
}

/// Only the performer writes an outcome, and only over `sending` or an
/// unresolved `unknown`; a settled outcome is never overwritten and nothing
/// goes back to `pending`.
pub async fn an_outcome_is_written_only_by_its_performer_over_sending(e: Engine) {
    let now = Utc::now();
    let other = e.another(Access::Write).await;
    let mine = e
        .store
        .start_charge_request(5000, false, now)
        .await
        .unwrap();
    e.exec("INSERT INTO charge_requests (amount) VALUES (6000)")
        .await;
    let pending = mine + 1;
    let finish = async |store: &Store, id, result| {
        store
            .finish_charge_request(id, result, now, now)
            .await
            .unwrap()
            .written
    };
    assert!(
        !finish(&other, mine, refused()).await,
        "{}: not its performer",
        e.name
    );
    assert!(
        !finish(&e.store, pending, refused()).await,
        "{}: never sent",
        e.name
    );
    assert!(finish(&e.store, mine, unknown()).await, "{}", e.name);
    // The answer knows better than `unknown`: it may still be written.
    assert!(finish(&e.store, mine, refused()).await, "{}", e.name);
    assert!(
        !finish(&e.store, mine, unknown()).await,
        "{}: refused is final",
        e.name
    );
    let row = e.store.charge_request(mine).await.unwrap().unwrap();
    assert_eq!(
        (
            row.state.as_str(),
            row.http_status,
            row.error_code.as_deref()
        ),
        ("refused", Some(400), Some("BAD_REQUEST")),
        "{}",
        e.name
    );
    assert!(row.finished_at.is_some(), "{}", e.name);
    assert_eq!(
        e.rows("SELECT state FROM charge_requests ORDER BY id")
            .await,
        [[Some("refused".to_owned())], [Some("pending".to_owned())]],
        "{}",
        e.name
    );
}

/// A forced request records what it was sent past, while in flight for its
/// performer only.
pub async fn what_a_forced_request_is_sent_past_is_recorded(e: Engine) {
    let now = Utc::now();
    let other = e.another(Access::Write).await;
    let id = e.store.start_charge_request(5000, true, now).await.unwrap();
    assert!(
        !other.record_forced_past(id, "x").await.unwrap(),
        "{}",
        e.name
    );
    assert!(
        e.store
            .record_forced_past(id, "issuance 1000001 (READY)")
            .await
            .unwrap(),
        "{}",
        e.name
    );
    let row = e.store.charge_request(id).await.unwrap().unwrap();
    assert_eq!(
        (row.force, row.forced_past.as_deref()),
        (1, Some("issuance 1000001 (READY)")),
        "{}",
        e.name
    );
    e.store
        .finish_charge_request(id, refused(), now, now)
        .await
        .unwrap();
    assert!(
        !e.store.record_forced_past(id, "late").await.unwrap(),
        "{}",
        e.name
    );
}

/// A created charge: the request's outcome, the issuance, its first
/// transition and its event, in one transaction; then it is the open charge.
pub async fn a_created_charge_is_recorded_with_its_issuance(e: Engine) {
    let now = at("2026-12-05T01:02:03.456Z");
    let id = e
        .store
        .start_charge_request(70_000, false, now)
        .await
        .unwrap();
    let finished = e
        .store
        .finish_charge_request(
            id,
            ChargeResult::Created {
                issuance_id: "1000001",
                observation: Some(&observed(Status::Ready)),
                decision: Decision::PollAt(now),
                problem: None,
            },
            now,
            now,
        )
        .await
        .unwrap();
    assert!(finished.written && finished.reused.is_none(), "{}", e.name);
    assert_eq!(finished.recorded.transitions.len(), 1, "{}", e.name);
    let row = e.store.charge_request(id).await.unwrap().unwrap();
    assert_eq!(
        (row.state.as_str(), row.issuance_id.as_deref()),
        ("created", Some("1000001")),
        "{}",
        e.name
    );
    assert_eq!(
        e.rows(
            "SELECT status, watch,
                    (SELECT CAST(count(*) AS TEXT) FROM transitions WHERE issuance_id = '1000001'),
                    (SELECT CAST(count(*) AS TEXT) FROM events
                     WHERE type = 'issuance.status_changed' AND issuance_id = '1000001')
             FROM issuances WHERE id = '1000001'"
        )
        .await,
        [["READY", "active", "1", "1"].map(|s| Some(s.to_owned()))],
        "{}",
        e.name
    );
    assert_eq!(
        e.store.open_charge(id + 1, 10_000_000).await.unwrap(),
        Some(OpenCharge::Issuance {
            id: "1000001".into(),
            status: "READY".into()
        }),
        "{}",
        e.name
    );
    // An answer whose object could not be read still gets its id watched.
    let blind = e.store.start_charge_request(1000, true, now).await.unwrap();
    let finished = e
        .store
        .finish_charge_request(
            blind,
            ChargeResult::Created {
                issuance_id: "1000002",
                observation: None,
                decision: Decision::PollAt(now),
                problem: Some("unreadable"),
            },
            now,
            now,
        )
        .await
        .unwrap();
    assert!(finished.written, "{}", e.name);
    assert_eq!(
        one(&e, "SELECT watch FROM issuances WHERE id = '1000002'")
            .await
            .as_deref(),
        Some("active"),
        "{}",
        e.name
    );
}

/// A refused charge creates nothing (but its charge.refused event) and stands
/// in nobody's way.
pub async fn a_refused_charge_creates_nothing(e: Engine) {
    let now = Utc::now();
    let id = e
        .store
        .start_charge_request(70_000, false, now)
        .await
        .unwrap();
    let finished = e
        .store
        .finish_charge_request(id, refused(), now, now)
        .await
        .unwrap();
    assert!(
        finished.written && finished.recorded.transitions.is_empty(),
        "{}",
        e.name
    );
    assert_eq!(
        one(
            &e,
            "SELECT CAST((SELECT count(*) FROM issuances) AS TEXT) || ' '
                    || coalesce((SELECT min(type) || ' ' || CAST(count(*) AS TEXT) FROM events), '-')"
        )
        .await
        .as_deref(),
        Some("0 charge.refused 1"),
        "{}",
        e.name
    );
    assert_eq!(
        e.store.open_charge(id + 1, 10_000_000).await.unwrap(),
        None,
        "{}",
        e.name
    );
}

/// A created charge under an id stored as settled is not merged into that
/// record: the request becomes `unknown` (`ISSUANCE_ID_REUSED`) and blocks.
pub async fn a_created_charge_under_a_settled_id_is_not_merged(e: Engine) {
    e.exec(
        "INSERT INTO issuances (id, status, watch) VALUES ('1000001', 'DONE', 'settled');
         INSERT INTO transitions (issuance_id, to_status, observed_at)
             VALUES ('1000001', 'DONE', '2026-01-01T00:00:00.000Z')",
    )
    .await;
    let now = Utc::now();
    let id = e
        .store
        .start_charge_request(70_000, false, now)
        .await
        .unwrap();
    let finished = e
        .store
        .finish_charge_request(
            id,
            ChargeResult::Created {
                issuance_id: "1000001",
                observation: Some(&observed(Status::Waited)),
                decision: Decision::PollAt(now),
                problem: None,
            },
            now,
            now,
        )
        .await
        .unwrap();
    assert!(
        finished.written && finished.recorded.transitions.is_empty(),
        "{}",
        e.name
    );
    let reused = finished.reused.expect("reported as reused");
    assert!(
        reused.contains("1000001") && reused.contains("DONE"),
        "{reused}"
    );
    let row = e.store.charge_request(id).await.unwrap().unwrap();
    assert_eq!(
        (
            row.state.as_str(),
            row.error_code.as_deref(),
            row.issuance_id
        ),
        ("unknown", Some(ID_REUSED), None),
        "{}",
        e.name
    );
    assert_eq!(
        e.rows(
            "SELECT status, watch, (SELECT CAST(count(*) AS TEXT) FROM transitions)
             FROM issuances WHERE id = '1000001'"
        )
        .await,
        [["DONE", "settled", "1"].map(|s| Some(s.to_owned()))],
        "{}: the settled record is left as it was",
        e.name
    );
    assert!(
        matches!(
            e.store.open_charge(id + 1, 10_000_000).await.unwrap(),
            Some(OpenCharge::Unknown { id: u, .. }) if u == id
        ),
        "{}",
        e.name
    );
}

mod resolving;
pub use resolving::*;

mod balance_and_performers;
pub use balance_and_performers::*;
