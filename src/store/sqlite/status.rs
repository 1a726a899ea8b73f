//! SQLite: status.

use super::owners::owners_dir;
use super::{SqliteStore, sql};
use crate::domain::timefmt::{from_db, to_db};
use crate::store::{
    Context, Daemons, LiveDaemon, StatusFacts, StoreError, UnknownCharge, UnknownCharges,
};
use chrono::{DateTime, Utc};
use std::fs::{File, TryLockError};
use std::io::Read as _;

impl SqliteStore {
    /// Reads everything `status` shows; `errors_since` bounds the recent errors.
    pub async fn status_facts(
        &self,
        errors_since: DateTime<Utc>,
    ) -> Result<StatusFacts, StoreError> {
        let active_by_status = self.active_counts().await?;
        let last_seen: Option<String> = sqlx::query_scalar(sql::STATUS_LAST_SEEN_ACTIVE)
            .fetch_one(self.pool())
            .await
            .context("reading the last successful poll")?;
        let last_transition: Option<String> = sqlx::query_scalar(sql::STATUS_LAST_TRANSITION)
            .fetch_one(self.pool())
            .await
            .context("reading the last transition")?;
        let errors = sqlx::query_as(sql::STATUS_RECENT_ERRORS)
            .bind(to_db(errors_since))
            .fetch_all(self.pool())
            .await
            .context("reading recent errors")?;
        Ok(StatusFacts {
            daemons: self.daemons().await,
            active_by_status,
            last_success: newest(last_seen, last_transition),
            errors,
            unknown_charges: self.unknown_charges().await?,
        })
    }

    /// The charge requests whose outcome is unknown: how many, the newest ten.
    pub async fn unknown_charges(&self) -> Result<UnknownCharges, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            charge: UnknownCharge,
            total: i64,
        }
        let rows: Vec<Row> = sqlx::query_as(sql::STATUS_UNKNOWN_CHARGES)
            .fetch_all(self.pool())
            .await
            .context("reading charge requests of unknown outcome")?;
        Ok(UnknownCharges {
            total: rows.first().map_or(0, |r| r.total),
            newest: rows.into_iter().map(|r| r.charge).collect(),
        })
    }

    /// Which daemons hold their owner lock on this database now.
    pub async fn daemons(&self) -> Daemons {
        let mut found = Daemons::default();
        let dir = owners_dir(self.path());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return found;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(owner) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
                continue;
            };
            if owner.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(e) => {
                    found.undecided.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            // A shared probe: it fails while the owner holds its exclusive lock.
            match file.try_lock_shared() {
                Ok(()) => found.dead += 1,
                Err(TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    let field = |key: &str| {
                        text.lines()
                            .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
                            .map(str::trim)
                    };
                    let pid = field("pid").and_then(|pid| pid.parse().ok());
                    let health = field("health").map(str::to_owned);
                    let since = field("started").map(str::to_owned).or_else(|| {
                        entry
                            .metadata()
                            .and_then(|m| m.modified())
                            .ok()
                            .map(|t| to_db(DateTime::<Utc>::from(t)))
                    });
                    found.live.push(LiveDaemon {
                        owner: owner.to_owned(),
                        host: None,
                        pid,
                        since,
                        health,
                    });
                }
                Err(TryLockError::Error(e)) => {
                    found.undecided.push(format!("{}: {e}", path.display()));
                }
            }
        }
        found.live.sort_by(|a, b| a.owner.cmp(&b.owner));
        found
    }
}

/// The later of two stored instants (both in the one sortable layout).
fn newest(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => match (from_db(&a), from_db(&b)) {
            (Some(x), Some(y)) if y > x => Some(b),
            _ => Some(a),
        },
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_plan, temp_store, temp_store_with};
    use super::*;
    use crate::store::{ErrorCount, Store};

    async fn exec(store: &Store, sql: &'static str) {
        sqlx::query(sql).execute(store.pool()).await.unwrap();
    }

    #[tokio::test]
    async fn facts_count_active_rows_and_find_the_last_success_and_recent_errors() {
        let (store, _dir) = temp_store_with(
            "INSERT INTO issuances (id, status, last_seen_at, last_polled_at, last_error) VALUES
               ('a', 'READY', '2026-12-02T10:00:00.000Z', '2026-12-02T11:30:00.000Z', 'HTTP 503'),
               ('b', 'READY', '2026-12-02T11:00:00.000Z', '2026-12-02T11:40:00.000Z', 'HTTP 503'),
               ('c', 'WAITED', '2026-12-02T09:00:00.000Z', '2026-12-02T09:00:00.000Z', 'timeout'),
               ('d', NULL, NULL, NULL, NULL)",
        )
        .await;
        // A settled row's last answer is its last transition, newer than any active row's.
        exec(
            &store,
            "INSERT INTO issuances (id, status, watch, last_error, last_polled_at) VALUES ('e', 'DONE', 'settled', 'old', '2026-12-02T11:50:00.000Z')",
        )
        .await;
        exec(
            &store,
            "INSERT INTO transitions (issuance_id, from_status, to_status, observed_at) VALUES ('e', 'READY', 'DONE', '2026-12-02T11:45:00.000Z')",
        )
        .await;
        let since = from_db("2026-12-02T11:00:00.000Z").unwrap();
        let facts = store.status_facts(since).await.unwrap();
        assert_eq!(
            facts.active_by_status,
            [
                (None, 1),
                (Some("READY".to_owned()), 2),
                (Some("WAITED".to_owned()), 1)
            ]
        );
        assert_eq!(
            facts.last_success.as_deref(),
            Some("2026-12-02T11:45:00.000Z")
        );
        // 'c' failed before the hour, 'e' is settled: neither counts.
        assert_eq!(
            facts.errors,
            [ErrorCount {
                error: "HTTP 503".into(),
                issuances: 2,
                last_at: "2026-12-02T11:40:00.000Z".into()
            }]
        );
        assert_eq!(facts.daemons, Daemons::default());
        assert_eq!(facts.unknown_charges, UnknownCharges::default());
    }

    #[tokio::test]
    async fn unknown_charge_requests_are_counted_newest_first() {
        let (store, _dir) = temp_store().await;
        for (amount, state) in [
            (1000, "unknown"),
            (2000, "created"),
            (3000, "unknown"),
            (4000, "pending"),
        ] {
            sqlx::query(
                "INSERT INTO charge_requests (amount, state, error_code) VALUES (?, ?, 'TIMEOUT')",
            )
            .bind(amount)
            .bind(state)
            .execute(store.pool())
            .await
            .unwrap();
        }
        let unknown = store.unknown_charges().await.unwrap();
        assert_eq!(unknown.total, 2);
        let amounts: Vec<i64> = unknown.newest.iter().map(|c| c.amount).collect();
        assert_eq!(amounts, [3000, 1000]);
        assert_eq!(unknown.newest[0].error_code.as_deref(), Some("TIMEOUT"));
    }

    #[tokio::test]
    async fn a_held_owner_lock_is_a_live_daemon_and_a_released_one_is_dead() {
        let (store, _dir) = temp_store().await;
        let held = store.hold_ownership().await;
        assert!(held.is_held());
        let daemons = store.daemons().await;
        assert_eq!(daemons.live.len(), 1, "{daemons:?}");
        assert_eq!(daemons.live[0].owner, store.owner());
        assert_eq!(daemons.live[0].pid, Some(std::process::id()));
        let since = daemons.live[0].since.clone();
        assert!(since.is_some());
        assert_eq!(daemons.live[0].health, None, "not judged yet");
        assert_eq!(daemons.dead, 0);
        // The daemon's own verdict, as `/healthz` would give it, read back;
        // the start it wrote with the lock is kept.
        store
            .note_health(Some("468 of 469 poll results dropped"))
            .await
            .unwrap();
        let daemons = store.daemons().await;
        assert_eq!(
            daemons.live[0].health.as_deref(),
            Some("468 of 469 poll results dropped")
        );
        assert_eq!(daemons.live[0].since, since);
        store.note_health(None).await.unwrap();
        assert_eq!(store.daemons().await.live[0].health.as_deref(), Some("ok"));
        // Released as a killed process's would be: the file stays, unlocked.
        held.die();
        let daemons = store.daemons().await;
        assert!(daemons.live.is_empty(), "{daemons:?}");
        assert_eq!(daemons.dead, 1);
    }

    #[tokio::test]
    async fn a_health_note_never_creates_a_lock_file() {
        let (store, _dir) = temp_store().await;
        store.note_health(Some("a problem")).await.unwrap();
        assert_eq!(store.daemons().await, Daemons::default());
    }

    #[tokio::test]
    async fn the_reads_use_indexes() {
        let (store, _dir) = temp_store().await;
        let by_time = "transitions_by_time";
        assert_plan(
            &store,
            sql::STATUS_LAST_TRANSITION,
            "transitions",
            &[by_time],
        )
        .await;
        let active = "INDEX issuances_active_by_status";
        for statement in [sql::STATUS_LAST_SEEN_ACTIVE, sql::STATUS_RECENT_ERRORS] {
            assert_plan(&store, statement, "issuances", &[active]).await;
        }
    }
}
