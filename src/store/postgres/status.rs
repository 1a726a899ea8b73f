//! PostgreSQL: status (see `store/status.rs` for what each call must do).
//!
//! Read-only like SQLite's: the live daemons are read from the registry and
//! the server's lock table (`pg_locks`), without taking any lock, so `status`
//! never stands in a starting daemon's way nor looks like one.

use chrono::{DateTime, Utc};

use crate::store::Context as _;
use crate::store::{Daemons, LiveDaemon, StatusFacts, StoreError, UnknownCharge, UnknownCharges};

impl super::PgStore {
    /// Reads everything `status` shows; `errors_since` bounds the recent errors.
    pub async fn status_facts(
        &self,
        errors_since: DateTime<Utc>,
    ) -> Result<StatusFacts, StoreError> {
        let active_by_status = self.active_counts().await?;
        let last_success: Option<String> = sqlx::query_scalar(sql::STATUS_LAST_SUCCESS)
            .fetch_one(&self.pool)
            .await
            .context("reading the last successful poll")?;
        let errors = sqlx::query_as(sql::STATUS_RECENT_ERRORS)
            .bind(errors_since)
            .fetch_all(&self.pool)
            .await
            .context("reading recent errors")?;
        Ok(StatusFacts {
            daemons: self.daemons().await,
            active_by_status,
            last_success,
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
            .fetch_all(&self.pool)
            .await
            .context("reading charge requests of unknown outcome")?;
        Ok(UnknownCharges {
            total: rows.first().map_or(0, |r| r.total),
            newest: rows.into_iter().map(|r| r.charge).collect(),
        })
    }

    /// Which daemons hold their owner lock on this database now: the
    /// registered ones whose lock is held are alive, the others died (their
    /// claims are taken over at the next daemon's housekeeping). A failed
    /// read is reported as undecided.
    pub async fn daemons(&self) -> Daemons {
        #[derive(sqlx::FromRow)]
        struct Row {
            owner: String,
            host: Option<String>,
            pid: Option<i64>,
            since: Option<String>,
            health: Option<String>,
            alive: bool,
        }
        let rows: Vec<Row> = match sqlx::query_as(sql::DAEMONS).fetch_all(&self.pool).await {
            Ok(rows) => rows,
            Err(e) => {
                return Daemons {
                    undecided: vec![format!("the daemons registry of {}: {e}", self.shown)],
                    ..Daemons::default()
                };
            }
        };
        let mut found = Daemons::default();
        for row in rows {
            if !row.alive {
                found.dead += 1;
                continue;
            }
            found.live.push(LiveDaemon {
                owner: row.owner,
                host: row.host,
                pid: row.pid.and_then(|pid| u32::try_from(pid).ok()),
                since: row.since,
                health: row.health,
            });
        }
        found
    }
}

/// The statements of this file.
mod sql {
    use super::super::owners::sql::owner_key;

    /// The newest successful lookup: the newest `last_seen_at` of an active
    /// issuance (the active-status index) or the newest transition (a settled
    /// issuance's last answer was one), whichever is later.
    pub(super) const STATUS_LAST_SUCCESS: &str = "SELECT utc_text(greatest(
            (SELECT max(last_seen_at) FROM issuances WHERE watch = 'active'),
            (SELECT max(observed_at) FROM transitions)))";

    /// Active issuances whose last poll failed at or after $1, by error text, most first.
    pub(super) const STATUS_RECENT_ERRORS: &str =
        "SELECT last_error AS error, count(*) AS issuances,
            utc_text(max(last_polled_at)) AS last_at
         FROM issuances
         WHERE watch = 'active' AND last_error IS NOT NULL AND last_polled_at >= $1
         GROUP BY last_error ORDER BY issuances DESC, last_error COLLATE \"C\" LIMIT 10";

    /// Charge requests whose outcome is unknown and that no person has
    /// resolved yet: how many, and the newest ten.
    pub(super) const STATUS_UNKNOWN_CHARGES: &str =
        "SELECT id, amount, utc_text(requested_at) AS requested_at, error_code,
            count(*) OVER () AS total
         FROM charge_requests WHERE state = 'unknown' AND resolved_at IS NULL
         ORDER BY id DESC LIMIT 10";

    /// The registered daemons, each with whether a session holds its owner
    /// lock now. `pg_locks` shows a bigint advisory key as its high half in
    /// `classid` and its low half in `objid`, with `objsubid` 1.
    pub(super) const DAEMONS: &str = concat!(
        "SELECT d.owner, d.host, d.pid, utc_text(d.started_at) AS since, d.health,
            EXISTS (SELECT 1 FROM pg_locks l
                    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                      AND l.classid = ((k.key >> 32) & 4294967295)::oid
                      AND l.objid = (k.key & 4294967295)::oid) AS alive
         FROM daemons d, LATERAL (SELECT ",
        owner_key!("d.owner"),
        " AS key) k
         ORDER BY d.owner COLLATE \"C\""
    );
}
