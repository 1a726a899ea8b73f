//! Recording poll results, on both engines: each result only under the lease
//! it was polled with (stale ones counted, nothing written), each status
//! change once, backward moves kept with their anomaly, flags raised once per
//! rung and cleared when READY ends, external writers' edits winning, and a
//! batch with the claim for its freed slots committing together.

use chrono::Utc;
use issuance_watcher::domain::{Decision, Flag, Observation, Status};
use issuance_watcher::store::{Access, Claimed, Lease, PollRecord, RecordKind};

use super::Engine;
use super::claims::{claim, claim_all, failed, observed, of, one, poll_once};

/// Every transition, oldest first: (from, to, anomaly).
async fn transitions(e: &Engine) -> Vec<Vec<Option<String>>> {
    e.rows("SELECT from_status, to_status, anomaly FROM transitions ORDER BY seq")
        .await
}

fn transition(from: Option<&str>, to: &str, anomaly: Option<&str>) -> Vec<Option<String>> {
    vec![
        from.map(str::to_owned),
        Some(to.to_owned()),
        anomaly.map(str::to_owned),
    ]
}

/// (status, watch, polls, lease owner) of issuance 42, 1, 2, ... as stored.
async fn row(e: &Engine, id: &str) -> (Option<String>, String, i64, Option<String>) {
    let stored = e.store.issuance(id).await.unwrap().expect("the row exists");
    let owners = e.rows("SELECT id, lease_owner FROM issuances").await;
    let owner = owners
        .into_iter()
        .find(|r| r[0].as_deref() == Some(id))
        .and_then(|r| r[1].clone());
    (stored.status, stored.watch, stored.polls, owner)
}

pub async fn a_batch_and_the_claim_for_its_freed_slots_commit_together(e: Engine) {
    e.exec("INSERT INTO issuances (id, status) VALUES ('42', 'WAITED')")
        .await;
    let mut done = observed(Status::Ready, claim(&e.store, "42").await, vec![]);
    e.exec("INSERT INTO issuances (id) VALUES ('43')").await;
    let later = done.now + chrono::Duration::minutes(5);
    if let RecordKind::Observed { decision, .. } = &mut done.kind {
        *decision = Decision::PollAt(later);
    }
    let lease = Lease {
        now: done.now + chrono::Duration::seconds(1),
        until: done.now + chrono::Duration::minutes(2),
        limit: 10,
    };
    let (recorded, claimed) = e.store.record_and_claim(&[done], lease).await.unwrap();
    assert_eq!(recorded.transitions.len(), 1, "{}", e.name);
    let claimed: Vec<Vec<u8>> = claimed.unwrap().into_iter().map(|c| c.raw_id).collect();
    // 42 was just written with its next poll in 5 minutes: only 43 is due.
    assert_eq!(claimed, [b"43".to_vec()], "{}", e.name);
    assert_eq!(
        transitions(&e).await,
        [transition(Some("WAITED"), "READY", None)],
        "{}",
        e.name
    );
    assert_eq!(
        row(&e, "42").await.3,
        None,
        "{}: the write ended the lease",
        e.name
    );
    assert_eq!(
        one(&e, "SELECT lease_owner FROM issuances WHERE id = '43'")
            .await
            .as_deref(),
        Some(e.store.owner()),
        "{}: the claim committed",
        e.name
    );
}

pub async fn an_external_edit_of_the_watch_or_status_during_a_poll_wins(e: Engine) {
    // Another program ended the watch, or the operator cancelled the issuance
    // by SQL, while its poll was in flight: the edit ended the lease, so the
    // poll's result is dropped, not written over it (no CANCELLED -> READY),
    // and the row stays as the edit left it (a terminal status written by
    // another program also ends the watch).
    e.exec("INSERT INTO issuances (id, status) VALUES ('w', 'READY'), ('s', 'WAITED')")
        .await;
    let claims = claim_all(&e.store, Utc::now() + chrono::Duration::seconds(1)).await;
    e.exec("UPDATE issuances SET watch = 'settled' WHERE id = 'w'")
        .await;
    e.exec("UPDATE issuances SET status = 'CANCELLED' WHERE id = 's'")
        .await;
    for (id, left) in [("w", "READY"), ("s", "CANCELLED")] {
        let ready = observed(Status::Ready, of(&claims, id), vec![]);
        let recorded = e.store.record(&[ready]).await.unwrap();
        assert_eq!(
            (recorded.stale, recorded.transitions.len()),
            (1, 0),
            "{}: {id}",
            e.name
        );
        assert_eq!(
            row(&e, id).await,
            (Some(left.into()), "settled".into(), 0, None),
            "{}: {id}",
            e.name
        );
    }
    assert!(transitions(&e).await.is_empty(), "{}", e.name);
}

pub async fn the_same_observation_recorded_twice_is_one_transition(e: Engine) {
    e.exec("INSERT INTO issuances (id) VALUES ('42')").await;
    // A replay of the same claim (e.g. a retried batch) must not double-record:
    // the first write ended the lease, the replay is stale.
    let waited = observed(Status::Waited, claim(&e.store, "42").await, vec![]);
    e.store.record(std::slice::from_ref(&waited)).await.unwrap();
    let replay = e.store.record(&[waited]).await.unwrap();
    assert_eq!(replay.stale, 1, "{}", e.name);
    assert_eq!(
        transitions(&e).await,
        [transition(None, "WAITED", None)],
        "{}",
        e.name
    );
    // An answer outside a poll (a cancel's, a created charge's) that saw the
    // same status records nothing more either.
    let answer = Observation {
        status: Status::Waited,
        amount: Some(10_000),
        created_at: None,
        modified_at: None,
        vbank: None,
        warnings: vec![],
    };
    let now = Utc::now();
    let answered = e
        .store
        .record_answer("42", &answer, Decision::PollAt(now), now)
        .await
        .unwrap();
    assert_eq!(answered.transitions.len(), 0, "{}", e.name);
    assert_eq!(transitions(&e).await.len(), 1, "{}", e.name);
}

pub async fn a_result_polled_under_an_expired_and_reclaimed_lease_is_dropped(e: Engine) {
    // Daemon A claims, is paused past its lease; daemon B claims the row
    // again and records DONE; A resumes and writes its old READY (observed,
    // failed and rejected alike): nothing of it is recorded.
    let a = &e.store;
    let b = e.another(Access::Write).await;
    e.exec(
        "INSERT INTO issuances (id, status) VALUES ('1', 'READY'), ('2', 'READY'), ('3', 'READY')",
    )
    .await;
    let now = Utc::now() + chrono::Duration::seconds(1);
    let old: Vec<Claimed> = a.claim_due(now, now, 10).await.unwrap();
    assert_eq!(old.len(), 3, "{}", e.name);
    // A's lease (until `now`) has run out: B claims the rows.
    let new = claim_all(&b, now + chrono::Duration::milliseconds(1)).await;
    b.record(&[observed(Status::Done, of(&new, "1"), vec![])])
        .await
        .unwrap();
    let stale = a
        .record(&[
            observed(
                Status::Ready,
                of(&old, "1"),
                vec![Flag::due_soon(std::time::Duration::from_secs(3600))],
            ),
            failed(of(&old, "2")),
            PollRecord {
                claimed: of(&old, "3"),
                now,
                kind: RecordKind::Rejected {
                    reason: "late".into(),
                },
            },
        ])
        .await
        .unwrap();
    assert_eq!((stale.stale, stale.transitions.len()), (3, 0), "{}", e.name);
    assert!(stale.flags_raised.is_empty(), "{}", e.name);
    assert_eq!(
        transitions(&e).await,
        [transition(Some("READY"), "DONE", None)],
        "{}",
        e.name
    );
    assert_eq!(
        row(&e, "1").await.1,
        "settled",
        "{}: no settled row re-activated",
        e.name
    );
    for id in ["2", "3"] {
        let (status, watch, polls, owner) = row(&e, id).await;
        assert_eq!(
            (status.as_deref(), watch.as_str(), polls),
            (Some("READY"), "active", 0),
            "{}: {id}",
            e.name
        );
        assert_eq!(
            owner.as_deref(),
            Some(b.owner()),
            "{}: B's lease on {id} stands",
            e.name
        );
    }
    assert_eq!(
        one(&e, "SELECT CAST(count(*) AS TEXT) FROM flags")
            .await
            .as_deref(),
        Some("0"),
        "{}",
        e.name
    );
    // B's own results for 2 and 3 are still written.
    let fresh = b
        .record(&[failed(of(&new, "2")), failed(of(&new, "3"))])
        .await
        .unwrap();
    assert_eq!(fresh.stale, 0, "{}", e.name);
    assert_eq!(row(&e, "2").await.2, 1, "{}", e.name);
    b.close().await;
}

pub async fn the_one_by_one_fallback_is_fenced_too(e: Engine) {
    e.exec("INSERT INTO issuances (id, status) VALUES ('poison', 'WAITED'), ('stale', 'WAITED'), ('fine', 'WAITED')")
        .await;
    let now = Utc::now() + chrono::Duration::seconds(1);
    let first = e.store.claim_due(now, now, 10).await.unwrap();
    let stale = of(&first, "stale");
    let second = claim_all(&e.store, now + chrono::Duration::milliseconds(1)).await;
    // A row whose write always fails makes the batch fail as a whole.
    if e.name == "PostgreSQL" {
        e.exec(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'poisoned'; END; $$;
             CREATE TRIGGER poison BEFORE UPDATE OF status ON issuances
                 FOR EACH ROW WHEN (NEW.id = 'poison') EXECUTE FUNCTION poison()",
        )
        .await;
    } else {
        e.exec("CREATE TRIGGER poison BEFORE UPDATE OF status ON issuances WHEN NEW.id = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END")
            .await;
    }
    let recorded = e
        .store
        .record(&[
            observed(Status::Ready, of(&second, "poison"), vec![]),
            observed(Status::Ready, stale, vec![]),
            observed(Status::Ready, of(&second, "fine"), vec![]),
        ])
        .await
        .unwrap();
    assert_eq!(
        (recorded.transitions.len(), recorded.stale),
        (1, 1),
        "{}",
        e.name
    );
    assert_eq!(
        row(&e, "stale").await.0.as_deref(),
        Some("WAITED"),
        "{}",
        e.name
    );
    assert_eq!(
        row(&e, "fine").await.0.as_deref(),
        Some("READY"),
        "{}",
        e.name
    );
    assert_eq!(
        row(&e, "poison").await.0.as_deref(),
        Some("WAITED"),
        "{}",
        e.name
    );
}

pub async fn a_backward_move_is_recorded_as_an_anomaly(e: Engine) {
    // Inserted as DONE it is settled; watching it again is setting it active.
    e.exec("INSERT INTO issuances (id, status) VALUES ('42', 'DONE'); UPDATE issuances SET watch = 'active' WHERE id = '42'")
        .await;
    let recorded = poll_once(&e.store, "42", Status::Ready, vec![]).await;
    assert_eq!(
        recorded.transitions[0].anomaly.as_deref(),
        Some("unexpected move DONE -> READY"),
        "{}",
        e.name
    );
    assert_eq!(
        transitions(&e).await,
        [transition(
            Some("DONE"),
            "READY",
            Some("unexpected move DONE -> READY")
        )],
        "{}",
        e.name
    );
}

pub async fn flags_are_raised_once_and_cleared_when_ready_ends(e: Engine) {
    e.exec("INSERT INTO issuances (id, status) VALUES ('42', 'READY')")
        .await;
    let hour = || Flag::due_soon(std::time::Duration::from_secs(3600));
    let minutes = || Flag::due_soon(std::time::Duration::from_secs(600));
    let first = poll_once(&e.store, "42", Status::Ready, vec![hour()]).await;
    let again = poll_once(&e.store, "42", Status::Ready, vec![hour(), minutes()]).await;
    let overdue = poll_once(
        &e.store,
        "42",
        Status::Ready,
        vec![hour(), minutes(), Flag::overdue()],
    )
    .await;
    assert_eq!(
        (
            first.flags_raised.len(),
            again.flags_raised.len(),
            overdue.flags_raised.len()
        ),
        (1, 1, 1),
        "{}: each (kind, rung) once",
        e.name
    );
    assert_eq!(
        one(&e, "SELECT CAST(count(*) AS TEXT) FROM events WHERE type IN ('issuance.due_soon', 'issuance.overdue')")
            .await
            .as_deref(),
        Some("3"),
        "{}: one event per flag",
        e.name
    );
    let done = poll_once(&e.store, "42", Status::Done, vec![]).await;
    assert_eq!(done.flags_cleared, 3, "{}", e.name);
    assert_eq!(
        one(
            &e,
            "SELECT CAST(count(*) AS TEXT) FROM flags WHERE cleared_at IS NULL"
        )
        .await
        .as_deref(),
        Some("0"),
        "{}",
        e.name
    );
    assert_eq!(row(&e, "42").await.1, "settled", "{}", e.name);
}

pub async fn a_terminal_status_written_by_another_program_settles_the_row(e: Engine) {
    // An import of history, and a status set by hand on a watched row.
    e.exec("INSERT INTO issuances (id, status) VALUES ('imported', 'DONE'), ('watched', 'READY'), ('new', NULL); UPDATE issuances SET status = 'FAIL' WHERE id = 'watched'")
        .await;
    for id in ["imported", "watched"] {
        assert_eq!(row(&e, id).await.1, "settled", "{}: {id}", e.name);
    }
    let now = Utc::now() + chrono::Duration::seconds(1);
    let claimed: Vec<Vec<u8>> = e
        .store
        .claim_due(now, now, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.raw_id)
        .collect();
    assert_eq!(
        claimed,
        [b"new".to_vec()],
        "{}: terminal rows are never polled",
        e.name
    );
    // Watching one again (watch only) is still possible: it is polled once more.
    e.exec("UPDATE issuances SET watch = 'active' WHERE id = 'imported'")
        .await;
    assert_eq!(row(&e, "imported").await.1, "active", "{}", e.name);
}

pub async fn a_batch_records_each_change_once(e: Engine) {
    e.exec("INSERT INTO issuances (id, status) VALUES ('a', NULL), ('b', 'WAITED'), ('c', 'READY'), ('d', 'READY')")
        .await;
    let claims = claim_all(&e.store, Utc::now() + chrono::Duration::seconds(1)).await;
    let batch = [
        observed(Status::Waited, of(&claims, "a"), vec![]),
        observed(Status::Waited, of(&claims, "b"), vec![]),
        observed(Status::Done, of(&claims, "c"), vec![]),
        observed(Status::Done, of(&claims, "d"), vec![]),
    ];
    let recorded = e.store.record(&batch).await.unwrap();
    assert_eq!(
        (recorded.transitions.len(), recorded.stale),
        (3, 0),
        "{}",
        e.name
    );
    let replay = e.store.record(&batch).await.unwrap();
    assert_eq!(
        (replay.transitions.len(), replay.stale),
        (0, 4),
        "{}",
        e.name
    );
    let rows = e
        .rows("SELECT issuance_id, from_status, to_status FROM transitions ORDER BY issuance_id")
        .await;
    let expected: Vec<Vec<Option<String>>> = [
        ("a", None, "WAITED"),
        ("c", Some("READY"), "DONE"),
        ("d", Some("READY"), "DONE"),
    ]
    .iter()
    .map(|(i, f, t)| {
        vec![
            Some(i.to_string()),
            f.map(str::to_owned),
            Some(t.to_string()),
        ]
    })
    .collect();
    assert_eq!(rows, expected, "{}", e.name);
    assert_eq!(
        one(
            &e,
            "SELECT CAST(count(*) AS TEXT) FROM events WHERE type = 'issuance.status_changed'"
        )
        .await
        .as_deref(),
        Some("3"),
        "{}: one event per transition",
        e.name
    );
    assert_eq!(
        row(&e, "b").await.2,
        1,
        "{}: unchanged observations are still counted",
        e.name
    );
}

pub async fn a_status_changed_under_a_live_lease_is_the_one_the_transition_leaves(e: Engine) {
    // Should a writer change the status without ending the lease (here: with
    // the trigger that ends it gone), the observation is still written over
    // the status actually stored, and the transition starts from it, not
    // from the status the claim saw.
    e.exec("INSERT INTO issuances (id, status) VALUES ('42', 'WAITED')")
        .await;
    let claimed = claim(&e.store, "42").await;
    assert_eq!(claimed.status.as_deref(), Some("WAITED"), "{}", e.name);
    if e.name == "PostgreSQL" {
        e.exec("DROP TRIGGER issuances_external_edit_ends_lease ON issuances")
            .await;
    } else {
        e.exec("DROP TRIGGER issuances_external_edit_ends_lease")
            .await;
    }
    e.exec("UPDATE issuances SET status = 'READY' WHERE id = '42'")
        .await;
    let recorded = e
        .store
        .record(&[observed(Status::Done, claimed, vec![])])
        .await
        .unwrap();
    assert_eq!(
        (recorded.stale, recorded.transitions.len()),
        (0, 1),
        "{}",
        e.name
    );
    assert_eq!(
        transitions(&e).await,
        [transition(Some("READY"), "DONE", None)],
        "{}",
        e.name
    );
}

/// A rough rate of the record path, printed, not asserted (the same shape
/// as `cargo bench --bench watcher -- throughput`'s "database alone" line:
/// claim → record cycles of unchanged READY answers, 64 at a time, over
/// 100,000 active rows; then transitions WAITED → READY in batches of 256).
/// `cargo test --release --test it -- --ignored --nocapture record_rate`.
#[tokio::test]
#[ignore = "a measurement, not a test"]
async fn record_rate() {
    super::on_each_engine(measure_record_rate).await;
}

async fn measure_record_rate(e: Engine) {
    use std::time::{Duration, Instant};
    const ACTIVE: usize = 100_000;
    let ids: Vec<String> = (0..ACTIVE).map(|i| format!("{}", 1_000_001 + i)).collect();
    for chunk in ids.chunks(10_000) {
        e.store.add_ids(chunk).await.unwrap();
    }
    e.exec("UPDATE issuances SET status = 'READY', next_poll_at = '2000-01-01T00:00:00.000Z'")
        .await;
    let window = Duration::from_secs(5);
    let started = Instant::now();
    let mut polled = 0;
    let mut claimed = e.store.claim_due(Utc::now(), Utc::now(), 64).await.unwrap();
    while started.elapsed() < window {
        let now = Utc::now();
        let records: Vec<PollRecord> = claimed
            .iter()
            .map(|c| {
                let mut record = observed(Status::Ready, c.clone(), vec![]);
                record.now = now;
                record
            })
            .collect();
        polled += records.len();
        let lease = Lease {
            now,
            until: now + chrono::Duration::minutes(2),
            limit: 64,
        };
        let (recorded, next) = e.store.record_and_claim(&records, lease).await.unwrap();
        assert_eq!(recorded.stale, 0);
        claimed = next.unwrap();
    }
    let steady = polled as f64 / started.elapsed().as_secs_f64();
    // Transitions: 12,800 rows WAITED, due before all others, claimed
    // (untimed), then recorded READY.
    e.exec("UPDATE issuances SET status = 'WAITED', next_poll_at = '1999-01-01T00:00:00.000Z' WHERE CAST(id AS INTEGER) < 1012801")
        .await;
    let now = Utc::now();
    let claims = e
        .store
        .claim_due(now, now + chrono::Duration::minutes(2), 12_800)
        .await
        .unwrap();
    let records: Vec<PollRecord> = claims
        .into_iter()
        .filter(|c| c.status.as_deref() == Some("WAITED"))
        .map(|c| observed(Status::Ready, c, vec![]))
        .collect();
    let started = Instant::now();
    let mut transitions = 0;
    for chunk in records.chunks(256) {
        transitions += e.store.record(chunk).await.unwrap().transitions.len();
    }
    let moving = transitions as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "{}: claim → record cycles {steady:.0} polls/s (batches of 64, {ACTIVE} active); \
         transitions {moving:.0}/s ({transitions} in batches of 256)",
        e.name
    );
}
