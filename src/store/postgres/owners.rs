//! PostgreSQL: which daemons are alive (see `store/owners.rs` for the contract).
//!
//! A running daemon holds a session-level advisory lock on a key derived from
//! its owner id ([`sql::owner_key`]), on a connection of its own that its
//! [`Ownership`] keeps open (not one of the pool's, which come and go). The
//! server releases the lock when that connection ends, however the daemon
//! dies; for a host that vanishes (a power cut), once the server's TCP
//! keepalives give up, which the connection asks to be quick
//! ([`OWNER_SESSION`]). Once the lock is taken the daemon registers in
//! `daemons` (host, pid, start; later its health), and it removes its row on
//! a clean stop before releasing the lock: that table is to PostgreSQL what
//! the lock files' directory is to SQLite.
//!
//! Another daemon tells an owner's liveness as SQLite does from lock files:
//! - alive: its lock cannot be taken (a try-lock fails);
//! - dead: it is registered and its lock can be taken;
//! - unknown: not registered (its ownership could not be taken, or it died
//!   before): its leases expire, its charge requests in flight become
//!   `unknown` once stale.
//!
//! A takeover also frees the dead daemon's webhook sinks (`holders.rs`).
//!
//! The probe is `pg_try_advisory_xact_lock`, released when the probing
//! transaction ends, so no daemon keeps another's lock; a takeover runs in the
//! probe's transaction, so two daemons never take over one owner at once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Connection as _, PgConnection, Postgres, Transaction};

use super::PgStore;
use crate::store::Context as _;
use crate::store::{StoreError, TakenOver};

/// Settings of the ownership's session: quick TCP keepalives, so that the
/// server ends the session (and the lock) within about 25 s of the daemon's
/// host going silent, instead of the system's two hours; no idle timeout,
/// since the session is idle by design. (Ignored over a Unix socket, where
/// the kernel tells the server at once.)
const OWNER_SESSION: [(&str, &str); 4] = [
    ("tcp_keepalives_idle", "10"),
    ("tcp_keepalives_interval", "5"),
    ("tcp_keepalives_count", "3"),
    ("idle_session_timeout", "0"),
];

/// How long taking the ownership may wait for the server.
const OWNER_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a check that the ownership's session is still there, or an
/// attempt to take it again, may wait.
const OWNER_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// A daemon's claim to be alive: its advisory lock, on the session this holds
/// open; dropping it closes the session, which releases the lock.
#[derive(Debug)]
pub struct Ownership {
    /// The owner id and the session holding its lock; `None` when it could not be taken.
    held: Option<(String, PgConnection)>,
}

impl Ownership {
    /// Whether the lock is held (otherwise this daemon's claims, should it die,
    /// wait out their lease).
    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }

    /// Ends the ownership after a clean stop: the registry row goes first,
    /// then the session (and with it the lock), so nobody ever finds this
    /// owner registered and free, and nothing is left to take over.
    pub async fn retire(mut self) {
        let Some((owner, mut session)) = self.held.take() else {
            return;
        };
        if let Err(e) = sqlx::query(sql::UNREGISTER)
            .bind(&owner)
            .execute(&mut session)
            .await
        {
            // Left registered: the next daemon finds it dead and removes the row.
            tracing::debug!(error = %e, "cannot remove this daemon from the registry");
        }
        if let Err(e) = session.close().await {
            tracing::debug!(error = %e, "cannot close the owner lock's session cleanly");
        }
    }
}

impl PgStore {
    /// Takes this handle's owner lock, for as long as the returned guard lives.
    /// When that fails (the server cannot be reached), logs one warning and
    /// carries on: this daemon's claims then wait out `poll.lease` if it dies.
    pub async fn hold_ownership(&self) -> Ownership {
        match tokio::time::timeout(OWNER_CONNECT_TIMEOUT, self.lock_owner()).await {
            Ok(Ok(session)) => Ownership {
                held: Some((self.owner().to_owned(), session)),
            },
            outcome => {
                let error = match outcome {
                    Ok(Err(e)) => e,
                    _ => format!("no answer within {OWNER_CONNECT_TIMEOUT:?}"),
                };
                tracing::warn!(database = %self.shown, error = %error, "cannot hold an owner lock on the database: should this daemon die, another one polls its claimed issuances only after poll.lease");
                Ownership { held: None }
            }
        }
    }

    /// Takes the lock again when its session was lost (the server restarted,
    /// a failover, a cut connection) or never opened: without it, another
    /// daemon would find this live one dead (registered, its lock free) and
    /// take over its claims, and should this one die, its claims would wait
    /// out `poll.lease`. Whether the lock is held afterwards.
    pub async fn keep_ownership(&self, ownership: &mut Ownership) -> bool {
        if let Some((_, session)) = &mut ownership.held {
            match tokio::time::timeout(OWNER_PING_TIMEOUT, session.ping()).await {
                Ok(Ok(())) => return true,
                _ => {
                    tracing::warn!(database = %self.shown, "lost the session holding this daemon's owner lock; taking it again");
                    ownership.held = None;
                }
            }
        }
        // Briefly: this runs in the watcher's loop, every housekeeping turn
        // while the server is away.
        match tokio::time::timeout(OWNER_PING_TIMEOUT, self.lock_owner()).await {
            Ok(Ok(session)) => {
                tracing::info!("holding this daemon's owner lock again");
                ownership.held = Some((self.owner().to_owned(), session));
                true
            }
            _ => false,
        }
    }

    /// Opens the ownership's session, takes the lock on it and registers.
    async fn lock_owner(&self) -> Result<PgConnection, String> {
        let options = self
            .options
            .clone()
            .application_name("issuance-watcher owner")
            .options(OWNER_SESSION);
        let mut session = PgConnection::connect_with(&options)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let locked: bool = sqlx::query_scalar(sql::LOCK_OWNER)
            .bind(self.owner())
            .fetch_one(&mut session)
            .await
            .map_err(|e| format!("cannot take the lock: {e}"))?;
        if !locked {
            // The id is this handle's own, random: only a probe of it could hold it.
            return Err("its lock is held by another session".to_owned());
        }
        sqlx::query(sql::REGISTER)
            .bind(self.owner())
            .bind(host())
            .bind(i64::from(std::process::id()))
            .bind(Utc::now())
            .execute(&mut session)
            .await
            .map_err(|e| format!("cannot register: {e}"))?;
        Ok(session)
    }

    /// Notes this daemon's own verdict on its health in its registry row
    /// (`ok` or the problem), where `status` reads it. Does nothing when the
    /// row is not there (no ownership held, or retired): it is never created here.
    pub async fn note_health(&self, problem: Option<&str>) -> std::io::Result<()> {
        let one_line: String = problem
            .unwrap_or("ok")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        sqlx::query(sql::NOTE_HEALTH)
            .bind(self.owner())
            .bind(one_line)
            .bind(Utc::now())
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(std::io::Error::other)
    }

    /// Ends the leases of every registered owner whose lock is free (its
    /// daemon is dead): their claims are due at `now`, their charge requests
    /// in flight become `unknown`, their rows go. One short transaction per
    /// registered daemon (live ones and dead ones not yet taken over: few).
    pub async fn take_over_dead_owners(&self, now: DateTime<Utc>) -> Result<TakenOver, StoreError> {
        let others: Vec<String> = sqlx::query_scalar(sql::REGISTERED_OTHERS)
            .bind(self.owner())
            .fetch_all(&self.pool)
            .await
            .context("listing registered daemons")?;
        let mut found = TakenOver::default();
        for owner in others {
            let taken = self
                .write("committing a takeover of a dead daemon", async |tx| {
                    if probe(tx, &owner).await? != Liveness::Dead {
                        return Ok(None);
                    }
                    // Dead: nobody else can be writing under its leases, nor
                    // will anyone record the answers to its charge POSTs.
                    let claims = sqlx::query(sql::TAKE_OVER)
                        .bind(&owner)
                        .bind(now)
                        .execute(&mut **tx)
                        .await
                        .context("taking over a dead daemon's claims")?;
                    let charges = abandon_charge_requests_of(tx, &owner, now).await?;
                    sqlx::query(sql::FREE_SINKS_OF)
                        .bind(&owner)
                        .execute(&mut **tx)
                        .await
                        .context("freeing a dead daemon's sinks")?;
                    sqlx::query(sql::UNREGISTER)
                        .bind(&owner)
                        .execute(&mut **tx)
                        .await
                        .context("removing a dead daemon from the registry")?;
                    Ok(Some((claims.rows_affected(), charges)))
                })
                .await?;
            if let Some((issuances, charge_requests)) = taken {
                found.owners += 1;
                found.issuances += issuances;
                found.charge_requests += charge_requests;
            }
        }
        Ok(found)
    }

    /// Makes the charge requests in flight of performers that are gone
    /// `unknown`: a dead one's at once, an unregistered one's once sent before
    /// `stale_before`. A live performer's are left alone. Returns how many.
    pub async fn sweep_charge_requests(
        &self,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let performers: Vec<String> = sqlx::query_scalar(sql::CHARGE_PERFORMERS)
            .fetch_all(&self.pool)
            .await
            .context("listing charge requests in flight")?;
        let mut swept = 0;
        for performer in performers {
            if performer == self.owner() {
                continue;
            }
            swept += self
                .write(
                    "committing charge requests made unknown",
                    async |tx| match probe(tx, &performer).await? {
                        Liveness::Alive => Ok(0),
                        Liveness::Dead => abandon_charge_requests_of(tx, &performer, now).await,
                        Liveness::Unknown => {
                            let done = sqlx::query(sql::ABANDON_STALE_CHARGE_REQUESTS_OF)
                                .bind(&performer)
                                .bind(now)
                                .bind(stale_before)
                                .execute(&mut **tx)
                                .await
                                .context("marking stale charge requests unknown")?;
                            Ok(done.rows_affected())
                        }
                    },
                )
                .await?;
        }
        Ok(swept)
    }
}

/// What an owner's lock and registry row say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Liveness {
    Alive,
    Dead,
    /// Not registered, and its lock free: never held one, or died before registering.
    Unknown,
}

/// Tells `owner`'s liveness within `tx`. A free lock stays taken by `tx`
/// until it ends, so whatever `tx` then does to a dead owner's rows, no other
/// daemon does at the same time.
pub(super) async fn probe(
    tx: &mut Transaction<'_, Postgres>,
    owner: &str,
) -> Result<Liveness, StoreError> {
    let free: bool = sqlx::query_scalar(sql::TRY_OWNER_LOCK)
        .bind(owner)
        .fetch_one(&mut **tx)
        .await
        .context("probing a daemon's owner lock")?;
    if !free {
        return Ok(Liveness::Alive);
    }
    let registered: bool = sqlx::query_scalar(sql::IS_REGISTERED)
        .bind(owner)
        .fetch_one(&mut **tx)
        .await
        .context("reading the daemons registry")?;
    Ok(if registered {
        Liveness::Dead
    } else {
        Liveness::Unknown
    })
}

/// The requests in flight of the dead performer `owner` become unknown.
async fn abandon_charge_requests_of(
    tx: &mut Transaction<'_, Postgres>,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let done = sqlx::query(sql::ABANDON_CHARGE_REQUESTS_OF)
        .bind(owner)
        .bind(now)
        .execute(&mut **tx)
        .await
        .context("marking a dead performer's charge requests unknown")?;
    Ok(done.rows_affected())
}

/// This host's name, as the registry shows it (`None` when it cannot be read).
fn host() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// The statements of this file.
pub(super) mod sql {
    /// The advisory lock key of the owner id in parameter `$n`: a 64-bit hash
    /// computed by the server, so every daemon derives the same key.
    macro_rules! owner_key {
        ($owner:literal) => {
            concat!(
                "hashtextextended('issuance-watcher owner ' || ",
                $owner,
                ", 0)"
            )
        };
    }
    pub(crate) use owner_key;

    /// Takes owner $1's lock for the session, without waiting: true if taken.
    pub(super) const LOCK_OWNER: &str =
        concat!("SELECT pg_try_advisory_lock(", owner_key!("$1"), ")");

    /// Takes owner $1's lock until the transaction ends, without waiting:
    /// true if it was free (its daemon is not running).
    pub(super) const TRY_OWNER_LOCK: &str =
        concat!("SELECT pg_try_advisory_xact_lock(", owner_key!("$1"), ")");

    /// Registers daemon $1 on host $2 as process $3, started at $4 (a row
    /// left by a daemon with the same id is replaced: ids are random per open).
    pub(super) const REGISTER: &str = "INSERT INTO daemons (owner, host, pid, started_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (owner) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid,
             started_at = EXCLUDED.started_at, health = NULL, noted_at = NULL";

    /// Removes daemon $1 from the registry.
    pub(super) const UNREGISTER: &str = "DELETE FROM daemons WHERE owner = $1";

    /// Notes daemon $1's health $2 at $3 (nothing if it is not registered).
    pub(super) const NOTE_HEALTH: &str =
        "UPDATE daemons SET health = $2, noted_at = $3 WHERE owner = $1";

    /// Whether daemon $1 is registered.
    pub(super) const IS_REGISTERED: &str = "SELECT EXISTS (SELECT 1 FROM daemons WHERE owner = $1)";

    /// The registered daemons other than $1.
    pub(super) const REGISTERED_OTHERS: &str =
        "SELECT owner FROM daemons WHERE owner <> $1 ORDER BY owner";

    /// Makes the claims of a dead daemon $1 due at $2 (or earlier, if they
    /// were) and ends its leases. Reads only leased rows (the partial index
    /// `issuances_leased`). Returns how many.
    pub(super) const TAKE_OVER: &str =
        "UPDATE issuances SET next_poll_at = least(next_poll_at, $2), lease_owner = NULL
         WHERE lease_owner = $1";

    /// The dead daemon $1 holds no webhook sink any more (`holders.rs`).
    pub(super) const FREE_SINKS_OF: &str =
        "UPDATE sinks SET holder = NULL, hold_expires_at = NULL WHERE holder = $1";

    /// Performers with requests in flight (the partial index `charge_requests_sending`).
    pub(super) const CHARGE_PERFORMERS: &str = "SELECT DISTINCT performed_by FROM charge_requests
         WHERE state = 'sending' AND performed_by IS NOT NULL";

    /// Requests in flight of the dead performer $1 become unknown at $2: their
    /// POST may have been answered, and nobody will ever record the answer.
    pub(super) const ABANDON_CHARGE_REQUESTS_OF: &str = "UPDATE charge_requests SET state = 'unknown', error_code = 'PERFORMER_DIED',
         error_message = 'the process sending this request ended before recording its answer: a charge may exist',
         finished_at = $2
     WHERE state = 'sending' AND performed_by = $1";

    /// Requests in flight of performer $1 sent before $3 become unknown at $2
    /// (performers whose liveness cannot be known, after any request's time is up).
    pub(super) const ABANDON_STALE_CHARGE_REQUESTS_OF: &str = "UPDATE charge_requests SET state = 'unknown', error_code = 'PERFORMER_DIED',
         error_message = 'no answer was recorded long after the request was sent (its process is gone): a charge may exist',
         finished_at = $2
     WHERE state = 'sending' AND performed_by = $1 AND sent_at < $3";
}
