//! What is being watched, read from the database ([`Snapshot`]), and the
//! one-line `STATUS=` text systemd shows for it.

use chrono::{DateTime, Utc};

use crate::ops::progress::Progress;
use crate::store::Store;

/// The statuses an actively watched issuance can have (`UNSEEN`: not answered yet).
pub const WATCHED_STATUSES: &[&str] = &["UNSEEN", "WAITED", "READY"];

/// What is being watched, read from the database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub active: i64,
    /// Actively watched issuances by last seen status (`UNSEEN` for none yet).
    pub active_by_status: Vec<(String, i64)>,
    /// Open `DUE_SOON` flags.
    pub due_soon: i64,
    /// Open `OVERDUE` flags.
    pub overdue: i64,
    /// Charge requests of unknown outcome nobody resolved.
    pub unknown_charges: i64,
    pub wal_bytes: Option<u64>,
}

impl Snapshot {
    pub async fn read(store: &Store) -> anyhow::Result<Self> {
        let counts = store.active_counts().await?;
        let due_soon = store.open_due_soon().await?;
        let overdue = store.open_overdue().await?;
        let unknown_charges = store.unknown_charges().await?.total;
        let mut snapshot = Snapshot {
            due_soon,
            overdue,
            unknown_charges,
            wal_bytes: store.wal_bytes(),
            ..Snapshot::default()
        };
        for (status, count) in counts {
            snapshot.active += count;
            let status = status.unwrap_or_else(|| "UNSEEN".to_owned());
            snapshot.active_by_status.push((status, count));
        }
        Ok(snapshot)
    }
}

/// The one-line `STATUS=` text: live counts and the last successful poll.
pub fn status_line(snapshot: &Snapshot, progress: &Progress, now: DateTime<Utc>) -> String {
    let mut line = format!("{} active", snapshot.active);
    if !snapshot.active_by_status.is_empty() {
        let parts: Vec<String> = snapshot
            .active_by_status
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        line.push_str(&format!(" ({})", parts.join(", ")));
    }
    line.push_str(&format!(", {} due soon", snapshot.due_soon));
    match progress.last_success() {
        Some(at) => line.push_str(&format!(
            ", last successful poll {} s ago",
            (now - at).num_seconds().max(0)
        )),
        None => line.push_str(", no successful poll yet"),
    }
    let backlog = progress.sinks.pending();
    if backlog > 0 {
        line.push_str(&format!(", {backlog} events not yet delivered"));
    }
    if progress.auth_failing() {
        line.push_str("; the API refuses our credentials");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::progress::Progress;

    #[test]
    fn status_line_names_the_counts() {
        let progress = Progress::default();
        let snapshot = Snapshot {
            active: 3,
            active_by_status: vec![("READY".into(), 2), ("UNSEEN".into(), 1)],
            due_soon: 1,
            overdue: 0,
            unknown_charges: 0,
            wal_bytes: None,
        };
        let line = status_line(&snapshot, &progress, Utc::now());
        assert_eq!(
            line,
            "3 active (READY 2, UNSEEN 1), 1 due soon, no successful poll yet"
        );
        assert!(!line.contains('\n'));
        progress.sinks.set_backlog("shop", 12, None);
        assert!(
            status_line(&snapshot, &progress, Utc::now())
                .ends_with(", 12 events not yet delivered"),
        );
    }
}
