//! `write`: `Store::record` with batches of 256 results that are all transitions.

use std::time::Instant;

use chrono::{DateTime, Utc};
use issuance_watcher::domain::status::Status;
use issuance_watcher::domain::{Decision, Observation, Vbank};
use issuance_watcher::store::{Claimed, PollRecord, RecordKind};

use crate::Opts;
use crate::harness::{open_store, workdir};
use crate::table::Table;

pub(crate) async fn write_path(opts: &Opts, table: &mut Table) -> anyhow::Result<()> {
    const B: &str = "write";
    let count: usize = if opts.quick { 12_800 } else { 51_200 };
    let dir = workdir()?;
    let store = open_store(&dir.path().join("watcher.db")).await?;
    sqlx::query(
        "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < ?1 - 1)
         INSERT INTO issuances (id, status) SELECT CAST(1000001 + n AS TEXT), 'WAITED' FROM s",
    )
    .bind(i64::try_from(count)?)
    .execute(store.pool())
    .await?;
    for (from, to, batch) in [
        (Status::Waited, Status::Ready, 256),
        (Status::Ready, Status::Done, 256),
    ] {
        // Results are written under the leases they were polled with: claim
        // every row first (untimed), as the daemon would have.
        let now = Utc::now() + chrono::Duration::seconds(1);
        sqlx::query("UPDATE issuances SET next_poll_at = '2000-01-01T00:00:00.000Z'")
            .execute(store.pool())
            .await?;
        let claimed = store
            .claim_due(now, now + chrono::Duration::minutes(2), count)
            .await?;
        anyhow::ensure!(
            claimed.len() == count,
            "claimed {} of {count}",
            claimed.len()
        );
        let records: Vec<PollRecord> = claimed
            .into_iter()
            .map(|c| transition_record(c, to, now))
            .collect();
        let started = Instant::now();
        let mut transitions = 0;
        for chunk in records.chunks(batch) {
            transitions += store.record(chunk).await?.transitions.len();
        }
        let elapsed = started.elapsed();
        anyhow::ensure!(transitions == count, "recorded {transitions} of {count}");
        let rate = count as f64 / elapsed.as_secs_f64();
        table.check(
            B,
            format!("transitions committed/s, {from} → {to}, batches of {batch} ({count} in all)"),
            format!("{rate:.0}"),
            "≥ 20,000/s",
            rate >= 20_000.0,
        );
    }
    store.close().await;
    Ok(())
}

/// The result of a poll of `claimed` that saw `to`.
pub(crate) fn transition_record(claimed: Claimed, to: Status, now: DateTime<Utc>) -> PollRecord {
    PollRecord {
        claimed,
        now,
        kind: RecordKind::Observed {
            observation: Observation {
                status: to,
                amount: Some(50_000),
                created_at: Some(now),
                modified_at: Some(now),
                vbank: Some(Vbank {
                    due_at: Some(now + chrono::Duration::hours(30)),
                    account_number: Some("451235741265".into()),
                    bank_name: Some("국민은행".into()),
                    holder_name: Some("번개장터".into()),
                }),
                warnings: vec![],
            },
            decision: if to.is_terminal() {
                Decision::Settled
            } else {
                Decision::PollAt(now + chrono::Duration::minutes(10))
            },
            flags: vec![],
        },
    }
}
