//! Fixtures the store's unit tests share: a migrated database, claims made as
//! the scheduler makes them, observation records, and query-plan checks.

use chrono::Utc;

use crate::domain::status::Status;
use crate::domain::{Decision, Flag, Observation, Vbank};
use crate::settings::DatabaseSettings;
use crate::store::{Claimed, PollRecord, RecordKind, Recorded, Store};

/// The database settings of a test database in `dir`.
fn settings_in(dir: &std::path::Path) -> DatabaseSettings {
    DatabaseSettings::sqlite(dir.join("nested").join("watcher.db"))
}

/// A migrated database in a fresh temporary directory (kept alive by the returned guard).
pub async fn temp_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_migrated(&settings_in(dir.path()))
        .await
        .unwrap();
    (store, dir)
}

/// [`temp_store`] with `setup` (statements separated by `;`) already run.
pub async fn temp_store_with(setup: &'static str) -> (Store, tempfile::TempDir) {
    let (store, dir) = temp_store().await;
    exec(&store, setup).await;
    (store, dir)
}

/// A second daemon's store on the database of [`temp_store`] in `dir`.
pub async fn second_store(dir: &tempfile::TempDir) -> Store {
    Store::open(&settings_in(dir.path())).await.unwrap()
}

/// The `detail` column of `EXPLAIN QUERY PLAN` for `statement`, one of the
/// constants in `sql.rs` that production runs (never a copy of one).
/// Unbound parameters are NULL, which does not change the plan.
pub async fn query_plan(store: &Store, statement: &'static str) -> Vec<String> {
    let explain = sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {statement}"));
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(explain)
        .fetch_all(store.pool())
        .await
        .unwrap_or_else(|e| panic!("explaining {statement}: {e}"));
    plan.into_iter().map(|row| row.3).collect()
}

/// The plan step of a statement that finds an issuance by its id.
pub const BY_ID: &str = "SEARCH issuances USING INDEX sqlite_autoindex_issuances_1";

/// Asserts that `statement`'s plan has, for each of `uses`, a step that
/// contains it, and that no other step scans `table` (a scan of an index
/// is allowed only where `uses` names it). Returns the plan for further checks.
pub async fn assert_plan(
    store: &Store,
    statement: &'static str,
    table: &str,
    uses: &[&str],
) -> Vec<String> {
    let details = query_plan(store, statement).await;
    for wanted in uses {
        assert!(
            details.iter().any(|d| d.contains(wanted)),
            "{wanted} not in the plan of {statement}: {details:?}"
        );
    }
    let scan = format!("SCAN {table}");
    let scans_table = |d: &String| d == &scan || d.starts_with(&format!("{scan} "));
    assert!(
        !details
            .iter()
            .any(|d| scans_table(d) && !uses.iter().any(|wanted| d.contains(wanted))),
        "{statement} scans {table}: {details:?}"
    );
    details
}

/// Runs test set-up: one or more statements separated by `;`.
pub async fn exec(store: &Store, sql: &'static str) {
    sqlx::raw_sql(sql).execute(store.pool()).await.unwrap();
}

/// Claims `id` and records one poll of it that observed `status` with `flags`.
pub async fn poll_once(store: &Store, id: &str, status: Status, flags: Vec<Flag>) -> Recorded {
    let record = observed(status, claim(store, id).await, flags);
    store.record(&[record]).await.unwrap()
}

/// Claims every row due at `at`, as the scheduler would, for two minutes.
pub async fn claim_all(store: &Store, at: chrono::DateTime<Utc>) -> Vec<Claimed> {
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
