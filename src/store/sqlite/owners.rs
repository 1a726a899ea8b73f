//! Which lease owners are alive, from advisory locks beside the database.
//!
//! A running daemon holds an exclusive `flock` on
//! `<database>.owners/<owner>.lock` for its lifetime (an [`Ownership`]). The
//! kernel drops the lock when the process dies, however it dies (`kill -9`, an
//! OOM kill; a power cut ends every process), so another daemon that can take
//! that lock knows the owner is dead and ends its leases at once
//! ([`Store::take_over_dead_owners`]) instead of waiting out `poll.lease`.
//! SQLite is one host by construction, so this knowledge is exact.
//!
//! Invariants:
//! - an owner's leases are taken over only when its lock file exists and its
//!   lock could be taken: a live daemon's leases (even a stopped one's, SIGSTOP)
//!   are never cut short; past their expiry they are claimed as usual, and the
//!   fence keeps the paused daemon's late results out;
//! - a lock file appears under its final name only once it is locked (created
//!   under a temporary name, locked, then renamed), so a scan never finds a
//!   live daemon's file unlocked;
//! - whatever cannot be decided (the directory cannot be created, a lock file
//!   cannot be opened, e.g. another user's without read permission) falls back
//!   to lease expiry: slower recovery, never a double poll.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::SqliteStore;
use crate::store::{StoreError, TakenOver};

const LOCK_SUFFIX: &str = ".lock";

/// The lock file of `owner` in the owners' directory `dir`: `<owner>.lock`.
fn lock_path(dir: &Path, owner: &str) -> PathBuf {
    dir.join(format!("{owner}{LOCK_SUFFIX}"))
}

/// The directory of lock files for the database at `db`: `<db>.owners`.
pub fn owners_dir(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".owners");
    name.into()
}

/// A daemon's claim to be alive: the lock on its owner file, held until drop.
#[derive(Debug)]
pub struct Ownership {
    /// The lock file and its open (locked) handle; `None` when it could not be made.
    held: Option<(PathBuf, File)>,
}

impl Ownership {
    /// Whether the lock is held (otherwise this daemon's claims, should it die,
    /// wait out their lease).
    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }

    /// Ends the ownership after a clean stop whose claims were all written or
    /// handed back: the lock file is removed, then the lock released. After an
    /// unclean stop, drop the `Ownership` instead: the file stays, unlocked, and
    /// the next daemon takes over what is left.
    pub fn retire(mut self) {
        if let Some((path, file)) = self.held.take() {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::debug!(file = %path.display(), error = %e, "cannot remove the owner lock file");
            }
            drop(file);
        }
    }

    /// Releases the lock but leaves the file, as a killed process would.
    #[cfg(test)]
    pub(crate) fn die(mut self) {
        self.held.take();
    }
}

impl SqliteStore {
    /// Takes this handle's owner lock, for as long as the returned guard lives.
    /// When that fails (the directory cannot be created or written), logs one
    /// warning and carries on: this daemon's claims then wait out `poll.lease`
    /// if it dies, as before there were owner locks.
    pub fn hold_ownership(&self) -> Ownership {
        let dir = owners_dir(self.path());
        match lock_owner_file(&dir, self.owner(), &started_now()) {
            Ok(held) => Ownership { held: Some(held) },
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot hold an owner lock beside the database: should this daemon die, another one polls its claimed issuances only after poll.lease");
                Ownership { held: None }
            }
        }
    }

    /// Writes this daemon's own verdict on its health into its lock file, beside
    /// its pid and start (`health ok` or `health PROBLEM`), so that `status`,
    /// which reads the lock files, shows what `/healthz` would say. Through a
    /// second handle: the lock belongs to the ownership's, and writing needs
    /// none. Does nothing when the file is not there (no ownership held, or
    /// retired): it is never created here.
    pub async fn note_health(&self, problem: Option<&str>) -> std::io::Result<()> {
        let path = lock_path(&owners_dir(self.path()), self.owner());
        let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut old = String::new();
        std::io::Read::read_to_string(&mut file, &mut old)?;
        let started = old
            .lines()
            .find_map(|line| line.strip_prefix("started "))
            .map_or_else(started_now, str::to_owned);
        let one_line: String = problem
            .unwrap_or("ok")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let text = lock_text(&started, Some(&one_line));
        std::io::Seek::rewind(&mut file)?;
        file.write_all(text.as_bytes())?;
        file.set_len(text.len() as u64)
    }

    /// Ends the leases of every owner whose lock file is there but unlocked
    /// (its daemon is dead): their claims are due at `now`. Removes those
    /// files. Costs a directory listing and one indexed statement per dead owner.
    pub async fn take_over_dead_owners(&self, now: DateTime<Utc>) -> Result<TakenOver, StoreError> {
        let dir = owners_dir(self.path());
        let mut found = TakenOver::default();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(found);
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(owner) = name.to_str().and_then(|n| n.strip_suffix(LOCK_SUFFIX)) else {
                continue;
            };
            if owner == self.owner() || owner.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) => {
                    found.undecided.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => {
                    found.undecided.push(format!("{}: {e}", path.display()));
                    continue;
                }
            }
            // Dead: nobody else can be writing under its leases, nor will
            // anyone record the answers to its charge POSTs.
            found.issuances += self.take_over_claims_of(owner, now).await?;
            found.charge_requests += self.abandon_charge_requests_of(owner, now).await?;
            self.free_sinks_of(owner).await?;
            found.owners += 1;
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::debug!(file = %path.display(), error = %e, "cannot remove a dead owner's lock file");
            }
        }
        Ok(found)
    }
}

/// What an owner's lock file says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Liveness {
    Alive,
    Dead,
    /// No lock file (never made, or removed by a takeover), or it cannot be read.
    Unknown,
}

pub(super) fn liveness(dir: &Path, owner: &str) -> Liveness {
    let Ok(file) = File::open(lock_path(dir, owner)) else {
        return Liveness::Unknown;
    };
    match file.try_lock() {
        Ok(()) => Liveness::Dead,
        Err(TryLockError::WouldBlock) => Liveness::Alive,
        Err(TryLockError::Error(_)) => Liveness::Unknown,
    }
}

impl SqliteStore {
    /// Makes the charge requests in flight of performers that are gone
    /// `unknown`: those whose lock file is there and free at once, those
    /// without a readable lock file once sent before `stale_before` (by then
    /// any request of theirs has timed out). A live performer's are left alone.
    /// Returns how many.
    pub async fn sweep_charge_requests(
        &self,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let dir = owners_dir(self.path());
        let mut swept = 0;
        for performer in self.charge_performers().await? {
            if performer == self.owner() {
                continue;
            }
            swept += match liveness(&dir, &performer) {
                Liveness::Alive => 0,
                Liveness::Dead => self.abandon_charge_requests_of(&performer, now).await?,
                Liveness::Unknown => {
                    self.abandon_stale_charge_requests_of(&performer, now, stale_before)
                        .await?
                }
            };
        }
        Ok(swept)
    }
}

/// Creates, locks and publishes `<dir>/<owner>.lock`.
/// Now, as a lock file's `started` line gives it.
fn started_now() -> String {
    crate::domain::timefmt::to_db(Utc::now())
}

/// A lock file's text: `pid N`, `started INSTANT` and, once known, `health ...`.
fn lock_text(started: &str, health: Option<&str>) -> String {
    let mut text = format!("pid {}\nstarted {started}\n", std::process::id());
    if let Some(health) = health {
        text.push_str(&format!("health {health}\n"));
    }
    text
}

fn lock_owner_file(dir: &Path, owner: &str, started: &str) -> std::io::Result<(PathBuf, File)> {
    std::fs::create_dir_all(dir)?;
    let staging = dir.join(format!(".{owner}.tmp"));
    let path = lock_path(dir, owner);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&staging)?;
    let published = (|| {
        file.try_lock().map_err(|e| match e {
            TryLockError::WouldBlock => std::io::Error::other("lock taken by another process"),
            TryLockError::Error(e) => e,
        })?;
        write!(file, "{}", lock_text(started, None))?;
        std::fs::rename(&staging, &path)
    })();
    match published {
        Ok(()) => Ok((path, file)),
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::temp_store;
    use super::*;
    use crate::domain::timefmt::to_db;
    use crate::store::Store;

    async fn insert_due(store: &Store, ids: &[&str]) {
        for id in ids {
            sqlx::query(
                "INSERT INTO issuances (id, next_poll_at) VALUES (?1, '2026-01-01T00:00:00.000Z')",
            )
            .bind(id)
            .execute(store.pool())
            .await
            .unwrap();
        }
    }

    async fn second_handle(store: &Store) -> Store {
        Store::open(&crate::settings::DatabaseSettings::sqlite(
            store.path().unwrap().to_owned(),
        ))
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_dead_owners_claims_are_due_at_once_and_a_live_owners_are_not() {
        let (a, _dir) = temp_store().await;
        let b = second_handle(&a).await;
        insert_due(&a, &["1", "2", "3"]).await;
        let now = Utc::now();
        let until = now + chrono::Duration::minutes(2);
        let a_lock = a.hold_ownership().await;
        assert!(a_lock.is_held());
        assert_eq!(a.claim_due(now, until, 2).await.unwrap().len(), 2);

        // A alive: B finds nothing to take over and cannot claim A's rows.
        let found = b.take_over_dead_owners(now).await.unwrap();
        assert_eq!(found, TakenOver::default());
        assert_eq!(b.claim_due(now, until, 10).await.unwrap().len(), 1);

        // A dies (its lock goes, its file stays): B ends its leases at once.
        a_lock.die();
        let found = b.take_over_dead_owners(now).await.unwrap();
        assert_eq!((found.owners, found.issuances), (1, 2));
        let reclaimed = b.claim_due(now, until, 10).await.unwrap();
        assert_eq!(reclaimed.len(), 2, "A's two claims are B's now");
        assert!(
            std::fs::read_dir(owners_dir(a.path().unwrap()))
                .unwrap()
                .all(|e| !e.unwrap().file_name().to_string_lossy().contains(a.owner())),
            "the dead owner's lock file is removed"
        );
        let owners: Vec<Option<String>> =
            sqlx::query_scalar("SELECT DISTINCT lease_owner FROM issuances")
                .fetch_all(a.pool())
                .await
                .unwrap();
        assert_eq!(owners, [Some(b.owner().to_owned())]);
    }

    #[tokio::test]
    async fn a_retired_owner_leaves_no_file_and_undecidable_owners_keep_their_leases() {
        let (a, _dir) = temp_store().await;
        let b = second_handle(&a).await;
        insert_due(&a, &["1"]).await;
        let now = Utc::now();
        a.hold_ownership().await.retire().await;
        let dir = owners_dir(a.path().unwrap());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);

        // A lock file that cannot be opened (here a dangling link; in life,
        // another user's file without read permission): liveness unknown.
        a.claim_due(now, now + chrono::Duration::minutes(2), 1)
            .await
            .unwrap();
        std::os::unix::fs::symlink(dir.join("nowhere"), dir.join(format!("{}.lock", a.owner())))
            .unwrap();
        let found = b.take_over_dead_owners(now).await.unwrap();
        assert_eq!((found.owners, found.undecided.len()), (0, 1), "{found:?}");
        let next: String = sqlx::query_scalar("SELECT next_poll_at FROM issuances")
            .fetch_one(a.pool())
            .await
            .unwrap();
        assert!(next > to_db(now), "the lease is left to expire");
    }

    #[tokio::test]
    async fn without_a_lock_directory_the_daemon_runs_on_lease_expiry() {
        let (a, _dir) = temp_store().await;
        // A file where the directory should be: it cannot be created.
        std::fs::write(owners_dir(a.path().unwrap()), b"not a directory").unwrap();
        let ownership = a.hold_ownership().await;
        assert!(!ownership.is_held());
        let found = a.take_over_dead_owners(Utc::now()).await.unwrap();
        assert_eq!(found, TakenOver::default());
    }
}
