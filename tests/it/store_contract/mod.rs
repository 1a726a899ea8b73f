//! The store's contract, run against both engines: every test here takes a
//! fresh, migrated database on SQLite and on PostgreSQL and checks, through
//! the store's own interface and plain SQL as another program would write
//! it, that the engine keeps what `src/store/mod.rs` promises: claiming,
//! fencing, recording each transition once, flags, the outbox, external
//! writers, charges and deliveries.
//!
//! Each test is written once, as an `async` function of an [`Engine`]; the
//! `contract!` macro runs it on both. PostgreSQL comes from
//! `ISSUANCE_WATCHER_TEST_PG` (see `common::postgres`); without it the
//! PostgreSQL half fails under CI and says SKIPPED elsewhere.

use std::time::Duration;

use issuance_watcher::settings::DatabaseSettings;
use issuance_watcher::store::{Access, Store};

use crate::common::db::Db;
use crate::common::postgres::{FreshDatabase, require_server};

/// Each engine's whole run of one test, setup included.
const TEST_DEADLINE: Duration = Duration::from_secs(60);

/// A fresh, migrated store on one engine, and plain SQL on its database.
pub struct Engine {
    /// `"SQLite"` or `"PostgreSQL"`, for messages.
    pub name: &'static str,
    pub store: Store,
    /// The database's own handle, for a second store on the same database.
    pub target: Target,
    _dir: Option<tempfile::TempDir>,
}

/// Where an [`Engine`]'s database is, to open another store on it.
#[derive(Clone)]
pub enum Target {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Engine {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watcher.db");
        let target = Target::Sqlite(path);
        Self {
            name: "SQLite",
            store: open(&target, Access::Migrate).await,
            target,
            _dir: Some(dir),
        }
    }

    fn postgres(url: String, store: Store) -> Self {
        Self {
            name: "PostgreSQL",
            store,
            target: Target::Postgres(url),
            _dir: None,
        }
    }

    /// Another store on the same database (another daemon, or the CLI).
    pub async fn another(&self, access: Access) -> Store {
        open(&self.target, access).await
    }

    /// Runs `sql` (one or more statements, in a dialect both engines share)
    /// as another program would.
    pub async fn exec(&self, sql: &'static str) {
        let outcome = match self.store.pg_pool() {
            Some(pg) => sqlx::raw_sql(sql).execute(pg).await.map(|_| ()),
            None => sqlx::raw_sql(sql)
                .execute(self.store.pool())
                .await
                .map(|_| ()),
        };
        if let Err(e) = outcome {
            panic!("{} refused {sql}: {e}", self.name);
        }
    }

    /// The rows of `sql` (each column cast to text by the statement itself,
    /// in a dialect both engines share), every value text or NULL.
    pub async fn rows(&self, sql: &'static str) -> Vec<Vec<Option<String>>> {
        Db::from(&self.store).rows(sql, &[]).await
    }
}

async fn open(target: &Target, access: Access) -> Store {
    match target {
        Target::Sqlite(path) => Store::open_for(&DatabaseSettings::sqlite(path.clone()), access)
            .await
            .expect("a SQLite store opens"),
        Target::Postgres(url) => Store::open_postgres(url, access)
            .await
            .expect("a PostgreSQL store opens"),
    }
}

/// Runs `test` on a fresh SQLite store, then on a fresh PostgreSQL one (when
/// there is a server; see the module doc), each within [`TEST_DEADLINE`].
pub async fn on_each_engine<F>(test: impl Fn(Engine) -> F)
where
    F: Future<Output = ()>,
{
    tokio::time::timeout(TEST_DEADLINE, async { test(Engine::sqlite().await).await })
        .await
        .expect("the test did not finish on SQLite within its deadline");
    let Some(server) = require_server() else {
        return;
    };
    let database = FreshDatabase::create(&server, "iw_contract").await;
    let store = Store::open_postgres(&database.url, Access::Migrate)
        .await
        .expect("a PostgreSQL store opens and migrates");
    tokio::time::timeout(
        TEST_DEADLINE,
        test(Engine::postgres(database.url.clone(), store.clone())),
    )
    .await
    .expect("the test did not finish on PostgreSQL within its deadline");
    store.close().await;
    database.drop_database().await;
}

/// Declares `#[tokio::test]`s that each run an `async fn(Engine)` of this
/// suite on both engines: `contract!(claims::a_plain_insert_is_claimable, ...)`.
macro_rules! contract {
    ($($module:ident :: $test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                $crate::store_contract::on_each_engine($module::$test).await;
            }
        )*
    };
}

mod charges;
mod delivery_log;
mod events;
mod sinks;

contract!(
    delivery_log::each_attempt_is_logged_with_its_outcome_and_read_per_sink,
    delivery_log::pruning_removes_old_attempts_and_delivered_deliveries_never_undelivered_ones,
    delivery_log::events_are_selected_by_time_and_type_for_a_range_replay,
    delivery_log::a_sink_failing_for_disable_after_is_disabled_once_with_its_event,
);

contract!(
    events::events_are_read_after_a_cursor_by_issuance_and_counted,
    events::a_sink_admits_only_its_types_from_its_cursor_once,
    events::two_daemons_admitting_at_once_admit_each_event_once,
    events::each_issuances_deliveries_go_out_in_order,
    events::a_failing_sink_answering_again_makes_its_backlog_due_at_once,
    sinks::each_undelivered_delivery_says_what_it_waits_for,
    sinks::a_removed_sinks_deliveries_are_discarded_for_good_but_can_be_redelivered,
    sinks::any_event_is_redelivered_as_new_in_its_issuances_order,
    sinks::a_sink_is_disabled_and_enabled_with_its_backlog_due_at_once,
    sinks::a_sinks_backlog_counts_open_deliveries_and_events_not_admitted,
);

mod smoke {
    use super::Engine;
    use issuance_watcher::store::Access;

    /// Opening, migrating and reading back an id added through the store.
    pub async fn an_added_id_is_listed(e: Engine) {
        assert_eq!(
            e.store.add_ids(&["s1".to_owned()]).await.unwrap(),
            1,
            "{}",
            e.name
        );
        let other = e.another(Access::Read).await;
        let row = other.issuance("s1").await.unwrap().expect("listed");
        assert_eq!(
            (row.id.as_str(), row.watch.as_str()),
            ("s1", "active"),
            "{}",
            e.name
        );
        assert_eq!(
            e.rows("SELECT id FROM issuances").await,
            [[Some("s1".to_owned())]],
            "{}",
            e.name
        );
    }
}

contract!(smoke::an_added_id_is_listed);

mod holders;
contract!(
    holders::a_sink_is_held_by_one_daemon_until_its_hold_runs_out_and_a_late_write_is_dropped,
    holders::a_dead_holders_sink_is_taken_at_once_and_a_takeover_frees_it,
);

mod owners;
contract!(
    owners::a_dead_owners_claims_are_due_at_once_and_a_live_ones_are_not,
    owners::a_retired_owner_leaves_nothing_to_take_over,
    owners::a_dead_performers_charge_requests_become_unknown_and_a_live_ones_do_not,
    owners::status_shows_a_live_daemon_and_its_health_and_not_a_dead_one,
);

mod queries;
contract!(
    queries::list_show_flags_and_counts_read_the_same_rows,
    queries::status_facts_read_the_same_facts,
);

contract!(
    charges::a_pending_request_is_claimed_exactly_once,
    charges::an_outcome_is_written_only_by_its_performer_over_sending,
    charges::what_a_forced_request_is_sent_past_is_recorded,
    charges::a_created_charge_is_recorded_with_its_issuance,
    charges::a_refused_charge_creates_nothing,
    charges::a_created_charge_under_a_settled_id_is_not_merged,
    charges::an_unknown_request_blocks_new_charges_until_resolved,
    charges::a_request_is_resolved_once,
    charges::concurrent_resolutions_are_written_once,
    charges::a_balance_is_recorded_and_low_only_when_said,
    charges::a_gone_performers_requests_in_flight_become_unknown,
    charges::a_live_performers_requests_are_left_alone,
);

mod claims;
mod records;

mod budget;
contract!(
    budget::concurrent_takers_never_get_more_slots_than_the_rate,
    budget::a_pause_written_by_one_is_seen_by_another,
);

contract!(
    claims::a_plain_insert_is_claimable_and_the_claim_is_a_lease,
    claims::claims_take_the_most_overdue_first_and_respect_the_limit,
    claims::settled_and_future_rows_are_not_claimed,
    claims::a_backlog_of_new_rows_gets_its_share_and_no_more,
    claims::released_claims_are_due_at_once_unless_someone_rescheduled_them,
    claims::a_dead_owners_claims_are_taken_over,
    claims::rows_scheduled_beyond_any_legitimate_wait_are_pulled_back,
    claims::two_stores_claiming_at_once_never_get_the_same_row,
    claims::a_claim_passes_over_rows_another_transaction_holds,
    records::a_batch_and_the_claim_for_its_freed_slots_commit_together,
    records::an_external_edit_of_the_watch_or_status_during_a_poll_wins,
    records::the_same_observation_recorded_twice_is_one_transition,
    records::a_result_polled_under_an_expired_and_reclaimed_lease_is_dropped,
    records::the_one_by_one_fallback_is_fenced_too,
    records::a_backward_move_is_recorded_as_an_anomaly,
    records::flags_are_raised_once_and_cleared_when_ready_ends,
    records::a_terminal_status_written_by_another_program_settles_the_row,
    records::a_batch_records_each_change_once,
    records::a_status_changed_under_a_live_lease_is_the_one_the_transition_leaves,
);
