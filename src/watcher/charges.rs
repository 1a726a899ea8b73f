//! Performing one charge request: the one code path of the `charge` command,
//! the daemon's requests from the database and the demo.
//!
//! The request row is already `sending` when [`perform`] is called (inserted
//! so, or claimed). It is refused here (`rejected`, nothing sent) when its
//! amount exceeds `charge.max_amount` or a charge is still open (unless
//! forced); otherwise its POST is sent exactly once and whatever came back is
//! written over `sending`: created (with the issuance recorded as observed, so
//! it is watched at once), refused, or unknown. Nothing here retries a POST.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::api::{ApiClient, ChargeOutcome, Refusal, Unknown};
use crate::domain::{Clock, Decision, Observation};
use crate::settings::Settings;
use crate::store::{ChargeRequest, ChargeResult, OpenCharge, Store, StoreError};
use crate::watcher::pacing::Pacer;

/// What [`perform`] needs.
#[derive(Debug, Clone, Copy)]
pub struct Charger<'a> {
    pub store: &'a Store,
    pub client: &'a ApiClient,
    pub settings: &'a Settings,
    /// The business clock (the issuance's observation is stamped with it).
    pub clock: Clock,
    /// The daemon's global request rate; `None` for a one-off command.
    pub pacer: Option<&'a Pacer>,
}

/// What a request came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Performed {
    Created {
        issuance_id: String,
        observation: Option<Observation>,
        problem: Option<String>,
    },
    Refused(Refusal),
    Unknown(Unknown),
    /// Refused here; nothing was sent.
    Rejected {
        code: &'static str,
        message: String,
    },
}

impl Performed {
    /// The request's state as stored.
    pub fn state(&self) -> &'static str {
        match self {
            Performed::Created { .. } => "created",
            Performed::Refused(_) => "refused",
            Performed::Unknown(_) => "unknown",
            Performed::Rejected { .. } => "rejected",
        }
    }
}

/// Parses an amount as a person types it: a positive whole number of KRW
/// (digits only), at most `max`. The error says what was wrong.
pub fn parse_amount(text: &str, max: i64) -> Result<i64, String> {
    let shown: String = text.chars().take(40).collect();
    let trimmed = text.trim();
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "amount {shown:?} is not a whole number of KRW (digits only, e.g. 50000)"
        ));
    }
    let amount: i64 = trimmed
        .parse()
        .map_err(|_| format!("amount {shown:?} is far above charge.max_amount ({max})"))?;
    if amount <= 0 {
        return Err(format!("amount {shown:?} must be positive"));
    }
    if amount > max {
        return Err(format!(
            "amount {amount} is above charge.max_amount ({max}); raise that setting if this is meant"
        ));
    }
    Ok(amount)
}

/// How the issuance of a created charge is watched from its first sighting.
pub fn first_decision(
    observation: &Observation,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Decision {
    if observation.status.is_terminal() {
        Decision::Settled
    } else {
        let interval = crate::domain::time::span(settings.poll.interval);
        Decision::PollAt(now + interval)
    }
}

/// Performs the request (see the module doc). Returns what it came to and
/// whether that was recorded: a charge created but not recorded (the database
/// failed) must still be shown to whoever asked.
pub async fn perform(
    charger: &Charger<'_>,
    request: ChargeRequest,
) -> (Performed, Result<(), StoreError>) {
    let performed = match local_refusal(charger, request).await {
        Ok(Some(rejected)) => rejected,
        Ok(None) => send(charger, request).await,
        Err(e) => {
            // Nothing sent: the row is left `sending` for its owner's death
            // to make `unknown`... unless we can say it was not sent.
            let performed = Performed::Rejected {
                code: "LOCAL_DATABASE_ERROR",
                message: format!("not sent: cannot check for an open charge: {e}"),
            };
            return record(charger, request, performed).await;
        }
    };
    record(charger, request, performed).await
}

async fn local_refusal(
    charger: &Charger<'_>,
    request: ChargeRequest,
) -> Result<Option<Performed>, StoreError> {
    let max = charger.settings.charge.max_amount;
    if request.amount > max {
        return Ok(Some(Performed::Rejected {
            code: "LOCAL_AMOUNT_TOO_LARGE",
            message: format!(
                "amount {} is above charge.max_amount ({max}): not sent",
                request.amount
            ),
        }));
    }
    if request.force {
        return Ok(None);
    }
    Ok(charger
        .store
        .open_charge(Some(request.id))
        .await?
        .map(|open| Performed::Rejected {
            code: "LOCAL_CHARGE_OPEN",
            message: match open {
                OpenCharge::Issuance { id, status } => format!(
                    "issuance {id} is still {status} (Bunjang allows one open charge per partner account): not sent; cancel it (`issuance-watcher cancel {id}`) or force it (`charge --force`, or force = 1 in charge_requests)"
                ),
                OpenCharge::Request { id, state } => format!(
                    "charge request {id} is still {state}: not sent; wait for it, or force it (`charge --force`, or force = 1 in charge_requests)"
                ),
            },
        }))
}

async fn send(charger: &Charger<'_>, request: ChargeRequest) -> Performed {
    if let Some(pacer) = charger.pacer {
        pacer.acquire().await;
    }
    match charger.client.create_charge(request.amount).await {
        ChargeOutcome::Created {
            id,
            observation,
            problem,
        } => Performed::Created {
            issuance_id: id,
            observation,
            problem,
        },
        ChargeOutcome::Refused(refusal) => {
            if let (Some(pacer), Some(wait)) = (charger.pacer, refusal.retry_after) {
                pacer.retry_after(wait);
            }
            Performed::Refused(refusal)
        }
        ChargeOutcome::Unknown(unknown) => Performed::Unknown(unknown),
    }
}

async fn record(
    charger: &Charger<'_>,
    request: ChargeRequest,
    performed: Performed,
) -> (Performed, Result<(), StoreError>) {
    let now = Utc::now();
    let observed_at = charger.clock.now();
    let result = match &performed {
        Performed::Created {
            issuance_id,
            observation,
            problem,
        } => ChargeResult::Created {
            issuance_id,
            observation: observation.as_ref(),
            decision: observation
                .as_ref()
                .map_or(Decision::PollAt(observed_at), |o| {
                    first_decision(o, charger.settings, observed_at)
                }),
            problem: problem.as_deref(),
        },
        Performed::Refused(r) => ChargeResult::Refused {
            http_status: r.http_status,
            code: &r.code,
            reason: &r.reason,
        },
        Performed::Unknown(u) => ChargeResult::Unknown {
            http_status: u.http_status,
            code: u.code,
            detail: &u.detail,
        },
        Performed::Rejected { code, message } => ChargeResult::Rejected { code, message },
    };
    let recorded = charger
        .store
        .finish_charge_request(request.id, result, now, observed_at)
        .await;
    crate::ops::metrics::charge_request(performed.state());
    match (&performed, &recorded) {
        (_, Err(e)) => {
            warn!(request = request.id, state = performed.state(), error = %e, "cannot record a charge request's outcome (it stays `sending` and becomes `unknown`)")
        }
        (Performed::Created { issuance_id, .. }, Ok(_)) => {
            info!(request = request.id, amount = request.amount, issuance = %issuance_id, "charge created")
        }
        (Performed::Unknown(u), Ok(_)) => {
            warn!(request = request.id, amount = request.amount, code = u.code, detail = %u.detail, "charge request of UNKNOWN outcome: a charge may exist; not retried")
        }
        (Performed::Refused(r), Ok(_)) => {
            warn!(request = request.id, amount = request.amount, code = %r.code, reason = %r.reason, "charge refused by the API")
        }
        (Performed::Rejected { code, message }, Ok(_)) => {
            warn!(request = request.id, amount = request.amount, code, %message, "charge request refused here, not sent")
        }
    }
    let recorded = recorded.map(|(_, recorded)| crate::ops::metrics::recorded(&recorded));
    (performed, recorded)
}

/// The `charge` command's work without its printing (the demo's too):
/// records the request as `sending`, performs it, and, with `follow_waited`,
/// follows a new issuance that is still WAITED for up to ten seconds (each
/// answer recorded like a poll's) so that its account can be shown. The
/// caller holds the store's owner lock meanwhile (`Store::hold_ownership`, or
/// a running watcher's): should the process die mid-request, whoever finds
/// the lock free makes the request `unknown`. Returns the request id, what it
/// came to and whether that was recorded.
pub async fn charge_with(
    charger: &Charger<'_>,
    amount: i64,
    force: bool,
    follow_waited: bool,
) -> Result<(i64, Performed, Result<(), StoreError>), StoreError> {
    let id = charger
        .store
        .start_charge_request(amount, force, Utc::now())
        .await?;
    let (performed, recorded) = perform(charger, ChargeRequest { id, amount, force }).await;
    if let Performed::Created {
        issuance_id,
        observation: Some(observation),
        ..
    } = &performed
        && observation.status == crate::domain::Status::Waited
        && recorded.is_ok()
        && follow_waited
    {
        follow_while_waited(charger, issuance_id).await;
    }
    Ok((id, performed, recorded))
}

async fn follow_while_waited(charger: &Charger<'_>, id: &str) {
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if let Some(pacer) = charger.pacer {
            pacer.acquire().await;
        }
        let Ok(observation) = charger.client.lookup(id).await.result else {
            continue;
        };
        let now = charger.clock.now();
        let decision = first_decision(&observation, charger.settings, now);
        if let Err(e) = charger
            .store
            .record_answer(id, &observation, decision, now)
            .await
        {
            warn!(issuance = %id, error = %e, "cannot record a lookup of the new charge");
        }
        if observation.status != crate::domain::Status::Waited {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_positive_whole_numbers_within_the_bound() {
        assert_eq!(parse_amount("50000", 100_000), Ok(50_000));
        assert_eq!(parse_amount(" 7 ", 100_000), Ok(7));
        for hostile in [
            "0", "-1", "1e9", "abc", "", "5.0", "50,000", "+5", "0x10", "１２",
        ] {
            assert!(parse_amount(hostile, 100_000).is_err(), "{hostile}");
        }
        let far = parse_amount("99999999999999999999999", 100_000).unwrap_err();
        assert!(far.contains("charge.max_amount"), "{far}");
        let above = parse_amount("100001", 100_000).unwrap_err();
        assert!(
            above.contains("above charge.max_amount (100000)"),
            "{above}"
        );
        assert!(parse_amount("0", 100).unwrap_err().contains("positive"));
    }
}
