//! The top-up rule's step after each balance poll: read its state, decide
//! ([`super::top_up::decide`]), and ask the database to insert the request,
//! which re-checks every guard as it writes (`Store::ask_top_up`). The
//! request is then performed like any other from the database. Suspension
//! (written by the database's triggers) is noticed here: logged once and
//! reported by `/healthz` until a person resumes the rule.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::scheduler::Watcher;
use super::top_up::{Decision, Situation, decide, windows};
use crate::store::{OpenCharge, StoreError, TopUpLimits};

impl Watcher {
    /// Runs the rule on `balance`, asked for at `asked_at` (business clock);
    /// whether a request was inserted.
    pub(super) async fn top_up_step(&self, balance: i64, asked_at: DateTime<Utc>) -> bool {
        match self.try_top_up(balance, asked_at).await {
            Ok(asked) => asked,
            Err(e) => {
                warn!(error = %e, "cannot run the top-up rule (nothing asked)");
                false
            }
        }
    }

    /// Reads whether the rule is suspended into the daemon's health, and
    /// logs a new suspension once.
    pub(super) async fn note_top_up_suspension(&self) {
        let ctx = self.context();
        if !ctx.settings.top_up.enabled() {
            return;
        }
        let (day, month) = windows(Utc::now(), ctx.settings.api.timezone);
        match self.store().top_up_state(day, month).await {
            Ok(state) => self.noted(state.suspended_reason),
            Err(e) => warn!(error = %e, "cannot read the top-up rule's state"),
        }
    }

    fn noted(&self, suspended: Option<String>) {
        let ctx = self.context();
        crate::ops::metrics::top_up_suspended(suspended.is_some());
        if ctx.progress.set_top_up_suspended(suspended.clone()) {
            warn!(
                reason = suspended.as_deref().unwrap_or_default(),
                "top-up rule SUSPENDED: it asks for no charge until a person checks and runs `issuance-watcher top-up resume`"
            );
        }
    }

    async fn try_top_up(&self, balance: i64, asked_at: DateTime<Utc>) -> Result<bool, StoreError> {
        let ctx = self.context();
        let settings = &ctx.settings;
        let rule = &settings.top_up;
        let store = self.store();
        let now = Utc::now();
        let (day_start, month_start) = windows(now, settings.api.timezone);
        let state = store.top_up_state(day_start, month_start).await?;
        self.noted(state.suspended_reason.clone());
        let open = store
            .open_charge(i64::MAX, settings.charge.max_amount)
            .await?;
        let situation = Situation {
            balance,
            day_count: state.day_count,
            month_sum: state.month_sum,
            open: open.as_ref().map(describe),
            suspended: state.suspended_reason.clone(),
            expiry_retry_spent: state.expiry_retry_spent,
        };
        let decision = decide(rule, settings.charge.max_amount, &situation);
        let (said, asked) = match decision {
            Decision::Ask(amount) => {
                let limits = TopUpLimits {
                    day_start,
                    month_start,
                    max_per_day: rule.max_per_day,
                    max_per_month: rule.max_per_month,
                };
                match store.ask_top_up(amount, now, limits, asked_at).await? {
                    Some(id) => {
                        info!(
                            request = id,
                            amount,
                            balance,
                            below = rule.below,
                            "top-up: the balance is low; asking for a charge"
                        );
                        (format!("{decision} (request {id})"), true)
                    }
                    None => (
                        "hold: a guard in the database held (a charge opened, another daemon asked, a cap, or a charge was paid meanwhile)"
                            .to_owned(),
                        false,
                    ),
                }
            }
            Decision::Hold(_) => (decision.to_string(), false),
        };
        let shown = format!("balance {balance}: {said}");
        store.note_top_up_decision(&shown, now).await?;
        Ok(asked)
    }
}

/// What stands in the way, for a person.
fn describe(open: &OpenCharge) -> String {
    match open {
        OpenCharge::Unknown { id, amount, .. } => {
            format!("charge request {id} ({amount} KRW) is of unknown outcome and unresolved")
        }
        OpenCharge::Issuance { id, status } => format!("issuance {id} is still {status}"),
        OpenCharge::Request { id, state } => format!("charge request {id} is still {state}"),
    }
}
