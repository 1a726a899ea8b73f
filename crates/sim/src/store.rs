//! The issuances in memory: one compact record each, plus side tables for the
//! rare ones that were forced, cancelled or overridden.
//!
//! Ids are decimal strings `base + 1 + seq`, the base fixed at start (see
//! [`id_base_at`]: from the wall clock, so that a restarted simulator, which
//! has forgotten everything, never hands out an id an earlier one did);
//! anything else (`..`, `%2F`, 10 KB of digits) simply is not an id, which is
//! how hostile paths become a plain 404 `NOT_FOUND_PAY_INBOUND`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::config::LifecycleConfig;
use super::lifecycle::{self, BANKS, Event, Schedule, State, Status, VBANK_HOLDER};

/// An id base to pin (`id_base = 1000000` in a simulator configuration) for
/// ids that are the same on every run (7-digit ids, like the documentation's
/// examples): benchmarks that address ids by number, tests of a reused id.
pub const ID_BASE: u64 = 1_000_000;
/// A ceiling on the number of issuances, so a hostile seed request cannot exhaust memory.
pub const MAX_ISSUANCES: usize = 20_000_000;
/// How many ids each millisecond of wall clock makes room for: a simulator
/// started `d` ms after another starts `d * IDS_PER_MS` above it, past all the
/// ids of that one once `d >= MAX_ISSUANCES / IDS_PER_MS` (20 ms).
pub const IDS_PER_MS: u64 = 1_000_000;

/// The highest id base handed out in this process, so that simulators
/// started in one process less than 20 ms apart (tests) do not overlap either.
static LAST_BASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The id base of a simulator started at `now_ms` (Unix milliseconds): the
/// wall clock in units of [`IDS_PER_MS`], and above every base this process
/// handed out before by at least `MAX_ISSUANCES`. Ids stay numeric strings
/// of at most 19 digits (until the year 2262). Only a wall clock stepped back
/// between two runs could make a later simulator reuse ids.
pub fn id_base_at(now_ms: i64) -> u64 {
    use std::sync::atomic::Ordering;
    let from_clock = u64::try_from(now_ms)
        .unwrap_or(0)
        .saturating_mul(IDS_PER_MS);
    let mut base = from_clock;
    let _ = LAST_BASE.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
        base = if last == 0 {
            from_clock
        } else {
            from_clock.max(last.saturating_add(MAX_ISSUANCES as u64))
        };
        Some(base)
    });
    base
}

/// One issuance: its drawn schedule and its amount (64 bytes).
#[derive(Debug, Clone, Copy)]
pub struct Record {
    pub schedule: Schedule,
    pub amount: i64,
}

/// A canned answer for one issuance's lookup, for testing malformed responses.
#[derive(Debug, Clone, PartialEq)]
pub enum Override {
    /// Served as `{"data": <value>}` with 200.
    Data(serde_json::Value),
    /// Served verbatim.
    Raw {
        status: u16,
        content_type: String,
        body: String,
    },
}

/// The issuance object exactly as the API returns it inside `{"data": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuanceView {
    pub id: String,
    pub amount: i64,
    pub status: Status,
    pub created_at: String,
    pub modified_at: String,
    pub prepared_vbank_info: Option<VbankInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VbankInfo {
    pub vbank_due_date: String,
    pub vbank_account_number: String,
    pub bank_name: String,
    pub vbank_holder_name: String,
}

/// Why a charge could not be created or cancelled (answered as 400 BAD_REQUEST).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("another charge of this access key is still {0}: only one READY charge is allowed")]
    AnotherChargeOpen(Status),
    #[error("only a READY charge can be cancelled (this one is {0})")]
    NotCancellable(Status),
    #[error("the simulator holds its maximum number of issuances")]
    Full,
}

#[derive(Debug)]
pub struct Store {
    /// Ids are `base + 1 + seq`.
    base: u64,
    records: Vec<Record>,
    forced: HashMap<u32, Vec<Event>>,
    overrides: HashMap<u32, Override>,
    last_posted: Option<u32>,
    /// Every charge created through the API, in order.
    posted: Vec<u32>,
}

impl Default for Store {
    /// A store with the pinned [`ID_BASE`].
    fn default() -> Self {
        Self::with_id_base(ID_BASE)
    }
}

impl Store {
    /// An empty store whose ids are `base + 1 + seq`.
    pub fn with_id_base(base: u64) -> Self {
        Self {
            base,
            records: Vec::new(),
            forced: HashMap::new(),
            overrides: HashMap::new(),
            last_posted: None,
            posted: Vec::new(),
        }
    }

    /// The id of the issuance with sequence number `seq`.
    pub fn id_of(&self, seq: u32) -> String {
        (self.base + 1 + u64::from(seq)).to_string()
    }

    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// The sequence number for an id string, if it names an existing issuance.
    pub fn seq_of(&self, id: &str) -> Option<u32> {
        if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let seq = id.parse::<u64>().ok()?.checked_sub(self.base + 1)?;
        let seq = u32::try_from(seq).ok()?;
        ((seq as usize) < self.records.len() && self.id_of(seq) == id).then_some(seq)
    }

    /// Creates `count` issuances at `now_ms` (amounts drawn from the seed when `amount` is None).
    pub fn create_many(
        &mut self,
        config: &LifecycleConfig,
        seed: u64,
        count: usize,
        amount: Option<i64>,
        now_ms: i64,
    ) -> Result<std::ops::Range<u32>, Refusal> {
        if self.records.len().saturating_add(count) > MAX_ISSUANCES {
            return Err(Refusal::Full);
        }
        let first = self.records.len() as u32;
        self.records.reserve(count);
        for seq in first..first + count as u32 {
            let schedule = lifecycle::draw(config, seed, u64::from(seq), now_ms);
            // Amount from its own stream, so it never disturbs the schedule draw.
            let amount = amount.unwrap_or_else(|| {
                let mut rng = fastrand::Rng::with_seed(lifecycle::issuance_seed(
                    seed ^ 0xA5A5,
                    u64::from(seq),
                ));
                rng.i64(1..=100) * 10_000
            });
            self.records.push(Record { schedule, amount });
        }
        Ok(first..first + count as u32)
    }

    /// A charge asked for through the API, honouring the one-open-charge rule when asked to.
    pub fn create_posted(
        &mut self,
        config: &LifecycleConfig,
        seed: u64,
        amount: i64,
        now_ms: i64,
        one_open: bool,
    ) -> Result<u32, Refusal> {
        if one_open && let Some(last) = self.last_posted {
            let status = self.state(last, now_ms).status;
            if matches!(status, Status::Waited | Status::Ready) {
                return Err(Refusal::AnotherChargeOpen(status));
            }
        }
        let seq = self
            .create_many(config, seed, 1, Some(amount), now_ms)?
            .start;
        self.last_posted = Some(seq);
        self.posted.push(seq);
        Ok(seq)
    }

    /// Charges created through the API so far (every POST that created one,
    /// answered or not).
    pub fn posted(&self) -> usize {
        self.posted.len()
    }

    /// The points credited by charges created through the API that are DONE
    /// at `now_ms` (points are credited 1:1 on deposit).
    pub fn credited(&self, now_ms: i64) -> i64 {
        self.posted
            .iter()
            .filter(|&&seq| self.state(seq, now_ms).status == Status::Done)
            .map(|&seq| self.records[seq as usize].amount)
            .sum()
    }

    fn forced(&self, seq: u32) -> &[Event] {
        self.forced.get(&seq).map_or(&[], Vec::as_slice)
    }

    pub fn state(&self, seq: u32, now_ms: i64) -> State {
        lifecycle::state_at(
            &self.records[seq as usize].schedule,
            self.forced(seq),
            now_ms,
        )
    }

    pub fn timeline(&self, seq: u32, until_ms: i64) -> Vec<Event> {
        lifecycle::timeline(
            &self.records[seq as usize].schedule,
            self.forced(seq),
            until_ms,
        )
    }

    /// Sets a status now, whatever the current one (illegal moves included).
    pub fn force(&mut self, seq: u32, status: Status, now_ms: i64) {
        let created = self.records[seq as usize].schedule.created_ms;
        let events = self.forced.entry(seq).or_default();
        // Keep forced events in time order even if the wall clock stepped back.
        let at = events
            .last()
            .map_or(now_ms, |(last, _)| now_ms.max(*last))
            .max(created);
        events.push((at, status));
    }

    /// The API's cancel: only READY can be cancelled.
    pub fn cancel(&mut self, seq: u32, now_ms: i64) -> Result<(), Refusal> {
        match self.state(seq, now_ms).status {
            Status::Ready => {
                self.force(seq, Status::Cancelled, now_ms);
                Ok(())
            }
            other => Err(Refusal::NotCancellable(other)),
        }
    }

    pub fn set_override(&mut self, seq: u32, value: Option<Override>) {
        match value {
            Some(o) => self.overrides.insert(seq, o),
            None => self.overrides.remove(&seq),
        };
    }

    pub fn override_of(&self, seq: u32) -> Option<&Override> {
        self.overrides.get(&seq)
    }

    pub fn view(&self, seq: u32, now_ms: i64) -> IssuanceView {
        let record = &self.records[seq as usize];
        let s = &record.schedule;
        let state = self.state(seq, now_ms);
        let prepared_vbank_info =
            (state.has_account && state.status != Status::Waited).then(|| VbankInfo {
                vbank_due_date: lifecycle::format_kst(s.due_ms),
                vbank_account_number: format!("{:012}", s.account),
                bank_name: BANKS[usize::from(s.bank) % BANKS.len()].to_owned(),
                vbank_holder_name: VBANK_HOLDER.to_owned(),
            });
        IssuanceView {
            id: self.id_of(seq),
            amount: record.amount,
            status: state.status,
            created_at: lifecycle::format_kst(s.created_ms),
            modified_at: lifecycle::format_kst(state.modified_ms),
            prepared_vbank_info,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(n: usize) -> Store {
        let mut store = Store::default();
        store
            .create_many(&LifecycleConfig::default(), 1, n, None, 0)
            .unwrap();
        store
    }

    #[test]
    fn id_bases_follow_the_wall_clock_and_never_overlap_in_one_process() {
        // Far ahead of the real clock, so that simulators started meanwhile do not interfere.
        let now_ms = 4_000_000_000_000;
        let first = id_base_at(now_ms);
        let same_instant = id_base_at(now_ms);
        assert!(same_instant >= first + MAX_ISSUANCES as u64);
        let an_hour_later = id_base_at(now_ms + 3_600_000);
        assert_eq!(an_hour_later, (now_ms as u64 + 3_600_000) * IDS_PER_MS);
        let last_id = Store::with_id_base(an_hour_later).id_of(MAX_ISSUANCES as u32 - 1);
        assert!(
            last_id.len() <= 19 && last_id.parse::<i64>().is_ok(),
            "{last_id}"
        );
    }

    #[test]
    fn a_record_stays_small() {
        assert!(
            std::mem::size_of::<Record>() <= 64,
            "{}",
            std::mem::size_of::<Record>()
        );
    }

    #[test]
    fn only_plain_existing_ids_are_ids() {
        let store = store_with(3);
        assert_eq!(store.seq_of("1000001"), Some(0));
        assert_eq!(store.seq_of("1000003"), Some(2));
        for hostile in [
            "1000004",
            "1000000",
            "..",
            "a/b",
            " 1000001",
            "01000001",
            "+1000001",
            "",
            "99999999999999999999",
        ] {
            assert_eq!(store.seq_of(hostile), None, "{hostile:?}");
        }
        assert_eq!(store.seq_of(&"9".repeat(10_000)), None);
    }

    #[test]
    fn waited_has_no_account_and_ready_has_one() {
        let store = store_with(1);
        let view = store.view(0, 0);
        assert_eq!(view.status, Status::Waited);
        assert_eq!(view.prepared_vbank_info, None);
        let later = store.view(0, 6_000);
        if later.status == Status::Ready {
            let info = later.prepared_vbank_info.unwrap();
            assert_eq!(info.vbank_account_number.len(), 12);
            assert_eq!(info.vbank_holder_name, "번개장터");
            assert_eq!(info.vbank_due_date, "1970-01-02T23:59:59");
        }
    }

    /// The default lifecycle, except that no charge ever fails.
    fn never_failing() -> LifecycleConfig {
        LifecycleConfig {
            p_fail: 0.0,
            ..LifecycleConfig::default()
        }
    }

    #[test]
    fn one_open_charge_at_a_time_when_asked() {
        let config = never_failing();
        let mut store = Store::default();
        let first = store.create_posted(&config, 1, 1000, 0, true).unwrap();
        assert!(matches!(
            store.create_posted(&config, 1, 1000, 10, true),
            Err(Refusal::AnotherChargeOpen(_))
        ));
        assert!(store.create_posted(&config, 1, 1000, 10, false).is_ok());
        let now = 10_000;
        store.force(first, Status::Done, now);
        // The last posted one (created without the rule) is still open.
        assert!(store.create_posted(&config, 1, 1000, now, true).is_err());
    }

    #[test]
    fn only_ready_can_be_cancelled() {
        let config = never_failing();
        let mut store = Store::default();
        store.create_many(&config, 1, 1, None, 0).unwrap();
        assert_eq!(
            store.cancel(0, 0),
            Err(Refusal::NotCancellable(Status::Waited))
        );
        assert_eq!(store.cancel(0, 5_000), Ok(()));
        assert_eq!(store.view(0, 6_000).status, Status::Cancelled);
        assert_eq!(store.view(0, 6_000).modified_at, "1970-01-01T09:00:05");
        assert_eq!(
            store.cancel(0, 7_000),
            Err(Refusal::NotCancellable(Status::Cancelled))
        );
    }
}
