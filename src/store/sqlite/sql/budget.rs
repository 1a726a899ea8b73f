//! The shared request budget's statements (`store/budget.rs`).

/// The budget row: next slot, pause end, pause reason.
pub(in crate::store::sqlite) const BUDGET_READ: &str =
    "SELECT next_slot_us, paused_until_us, pause_reason FROM api_budget WHERE id = 1";

/// Writes the budget row back: ?1 next slot, ?2 pause end, ?3 pause reason.
/// Inserts it if another program deleted it.
pub(in crate::store::sqlite) const BUDGET_WRITE: &str = "INSERT INTO api_budget (id, next_slot_us, paused_until_us, pause_reason) VALUES (1, ?1, ?2, ?3)
     ON CONFLICT (id) DO UPDATE SET next_slot_us = excluded.next_slot_us,
         paused_until_us = excluded.paused_until_us, pause_reason = excluded.pause_reason";
