//! Performing one charge request: the one code path of the `charge` command,
//! the daemon's requests from the database and the demo, and of any later
//! caller: what is refused here is refused for all of them.
//!
//! The request row is already `sending` when [`perform`] is called (inserted
//! so, or claimed). It is refused here (`rejected`, nothing sent) when its
//! amount exceeds `charge.max_amount`, or, unless forced, when something
//! stands in the way ([`gate`]): a request of unknown outcome that no person
//! has resolved (`LOCAL_CHARGE_UNKNOWN`: it may have created a charge that
//! nobody watches, and a second one would double the money asked for), an
//! issuance still WAITED or READY, or a request ahead of it, first come first
//! served (`LOCAL_CHARGE_OPEN`). A forced request sent past any of these
//! records what it was sent past before its POST leaves, and says so loudly.
//! Otherwise its POST is sent exactly once and whatever came back is written
//! over `sending`: created (with the issuance recorded as observed, so it is
//! watched at once; an id stored as settled is never adopted: `unknown`),
//! refused, or unknown. Nothing here retries a POST.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::api::{ApiClient, ChargeOutcome, Refusal, Unknown};
use crate::domain::{Clock, Decision, Observation};
use crate::settings::Settings;
use crate::store::{ChargeRequest, ChargeResult, ID_REUSED, OpenCharge, Store, StoreError};
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

/// Records the answer to a cancel of `id` (`cancel`, the dashboard) as an
/// observation of it, through the poll's path; whether it recorded a
/// transition (`false`: a poll had recorded it already).
pub async fn record_cancel(
    store: &Store,
    settings: &Settings,
    id: &str,
    observation: &Observation,
) -> Result<bool, StoreError> {
    let now = Utc::now();
    let decision = first_decision(observation, settings, now);
    let recorded = store.record_answer(id, observation, decision, now).await?;
    crate::ops::metrics::recorded(&recorded);
    Ok(!recorded.transitions.is_empty())
}

/// What [`perform`] did with a request.
#[derive(Debug)]
pub struct Attempt {
    pub performed: Performed,
    /// Whether that was recorded: a charge created but not recorded (the
    /// database failed) must still be shown to whoever asked.
    pub recorded: Result<(), StoreError>,
    /// What a forced request was sent past, as described to a person.
    pub forced_past: Option<String>,
}

/// Whether a request that passed the amount bound may be sent, given what
/// stands in the way (`open`, from [`Store::open_charge`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Send it; `past`: what a forced request is sent past.
    Send { past: Option<String> },
    /// Refuse it here: nothing is sent.
    Reject { code: &'static str, message: String },
}

/// Decides [`Gate`]: anything in the way refuses an unforced request, with
/// what to do about it; a forced one goes past it.
pub fn gate(force: bool, open: Option<&OpenCharge>) -> Gate {
    let Some(open) = open else {
        return Gate::Send { past: None };
    };
    if force {
        return Gate::Send {
            past: Some(describe(open)),
        };
    }
    const FORCE: &str = "or force it (`charge --force`, or force = 1 in charge_requests)";
    match open {
        OpenCharge::Unknown { id, .. } => Gate::Reject {
            code: "LOCAL_CHARGE_UNKNOWN",
            message: format!(
                "{} may have created a charge: check the partner console, then `charges resolve {id} --issuance ID` or `charges resolve {id} --none`: not sent; {FORCE}",
                describe(open)
            ),
        },
        OpenCharge::Issuance { id, .. } => Gate::Reject {
            code: "LOCAL_CHARGE_OPEN",
            message: format!(
                "{} (Bunjang allows one open charge per partner account): not sent; cancel it (`issuance-watcher cancel {id}`) {FORCE}",
                describe(open)
            ),
        },
        OpenCharge::Request { .. } => Gate::Reject {
            code: "LOCAL_CHARGE_OPEN",
            message: format!("{}: not sent; wait for it, {FORCE}", describe(open)),
        },
    }
}

/// What stands in the way, for a person.
fn describe(open: &OpenCharge) -> String {
    match open {
        OpenCharge::Unknown { id, amount, since } => {
            format!("charge request {id} ({amount} KRW, unknown since {since})")
        }
        OpenCharge::Issuance { id, status } => format!("issuance {id} is still {status}"),
        OpenCharge::Request { id, state } => format!("charge request {id} is still {state}"),
    }
}

/// Performs the request (see the module doc).
pub async fn perform(charger: &Charger<'_>, request: ChargeRequest) -> Attempt {
    let (performed, forced_past) = match local_refusal(charger, request).await {
        Ok(Gate::Reject { code, message }) => (Performed::Rejected { code, message }, None),
        Ok(Gate::Send { past }) => (send(charger, request).await, past),
        Err(e) => {
            // Nothing sent: say so, rather than leave the row `sending` for
            // its owner's death to make `unknown`.
            let performed = Performed::Rejected {
                code: "LOCAL_DATABASE_ERROR",
                message: format!("not sent: cannot check for an open charge: {e}"),
            };
            (performed, None)
        }
    };
    let (performed, recorded) = record(charger, request, performed).await;
    Attempt {
        performed,
        recorded,
        forced_past,
    }
}

async fn local_refusal(charger: &Charger<'_>, request: ChargeRequest) -> Result<Gate, StoreError> {
    let max = charger.settings.charge.max_amount;
    if request.amount > max {
        return Ok(Gate::Reject {
            code: "LOCAL_AMOUNT_TOO_LARGE",
            message: format!(
                "amount {} is above charge.max_amount ({max}): not sent",
                request.amount
            ),
        });
    }
    let open = charger.store.open_charge(request.id, max).await?;
    let gate = gate(request.force, open.as_ref());
    if let Gate::Send { past: Some(past) } = &gate {
        warn!(request = request.id, amount = request.amount, past = %past, "FORCED: sending a charge request although {past}");
        if !charger.store.record_forced_past(request.id, past).await? {
            return Ok(Gate::Reject {
                code: "LOCAL_NOT_MINE",
                message: "not sent: the request is no longer in flight for this process".to_owned(),
            });
        }
    }
    Ok(gate)
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

/// Writes what the request came to; returns it as written (a created charge
/// whose id is stored as settled was written `unknown`), and whether it was.
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
    let finished = charger
        .store
        .finish_charge_request(request.id, result, now, observed_at)
        .await;
    let performed = match (&finished, performed) {
        (Ok(f), Performed::Created { issuance_id, .. }) if f.reused.is_some() => {
            warn!(request = request.id, amount = request.amount, issuance = %issuance_id, "ANOMALY: the API answered a charge with an issuance id stored here as settled; not merged, the request is unknown");
            Performed::Unknown(Unknown {
                http_status: None,
                code: ID_REUSED,
                detail: f.reused.clone().unwrap_or_default(),
            })
        }
        (_, performed) => performed,
    };
    crate::ops::metrics::charge_request(performed.state());
    match (&performed, &finished) {
        (_, Err(e)) => {
            warn!(request = request.id, state = performed.state(), error = %e, "cannot record a charge request's outcome (it stays `sending` and becomes `unknown`)")
        }
        (Performed::Created { issuance_id, .. }, Ok(_)) => {
            info!(request = request.id, amount = request.amount, issuance = %issuance_id, "charge created")
        }
        (Performed::Unknown(u), Ok(_)) => {
            warn!(request = request.id, amount = request.amount, code = u.code, detail = %u.detail, "charge request of UNKNOWN outcome: a charge may exist; not retried; new charges are refused until it is resolved")
        }
        (Performed::Refused(r), Ok(_)) => {
            warn!(request = request.id, amount = request.amount, code = %r.code, reason = %r.reason, "charge refused by the API")
        }
        (Performed::Rejected { code, message }, Ok(_)) => {
            warn!(request = request.id, amount = request.amount, code, %message, "charge request refused here, not sent")
        }
    }
    let recorded = finished.map(|f| crate::ops::metrics::recorded(&f.recorded));
    (performed, recorded)
}

/// The `charge` command's work without its printing (the demo's too):
/// records the request as `sending`, performs it, and, with `follow_waited`,
/// follows a new issuance that is still WAITED for up to ten seconds (each
/// answer recorded like a poll's) so that its account can be shown. The
/// caller holds the store's owner lock meanwhile (`Store::hold_ownership`, or
/// a running watcher's): should the process die mid-request, whoever finds
/// the lock free makes the request `unknown`. Returns the request id and
/// what became of it.
pub async fn charge_with(
    charger: &Charger<'_>,
    amount: i64,
    force: bool,
    follow_waited: bool,
) -> Result<(i64, Attempt), StoreError> {
    let id = charger
        .store
        .start_charge_request(amount, force, Utc::now())
        .await?;
    let attempt = perform(charger, ChargeRequest { id, amount, force }).await;
    if let Performed::Created {
        issuance_id,
        observation: Some(observation),
        ..
    } = &attempt.performed
        && observation.status == crate::domain::Status::Waited
        && attempt.recorded.is_ok()
        && follow_waited
    {
        follow_while_waited(charger, issuance_id).await;
    }
    Ok((id, attempt))
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

    #[test]
    fn an_unknown_request_refuses_unforced_charges_naming_it_and_how_to_resolve_it() {
        let unknown = OpenCharge::Unknown {
            id: 7,
            amount: 70_000,
            since: "2026-12-05T01:02:03.000Z".into(),
        };
        let Gate::Reject { code, message } = gate(false, Some(&unknown)) else {
            panic!("sent past an unknown request");
        };
        assert_eq!(code, "LOCAL_CHARGE_UNKNOWN");
        for said in [
            "charge request 7 (70000 KRW, unknown since 2026-12-05T01:02:03.000Z) may have created a charge",
            "partner console",
            "`charges resolve 7 --issuance ID`",
            "`charges resolve 7 --none`",
        ] {
            assert!(message.contains(said), "{said:?} not in {message}");
        }
        assert_eq!(
            gate(true, Some(&unknown)),
            Gate::Send {
                past: Some(
                    "charge request 7 (70000 KRW, unknown since 2026-12-05T01:02:03.000Z)".into()
                )
            },
            "forced: sent, saying what it goes past"
        );
    }

    #[test]
    fn open_charges_refuse_unforced_requests_and_nothing_in_the_way_sends() {
        let open = [
            OpenCharge::Issuance {
                id: "1000001".into(),
                status: "READY".into(),
            },
            OpenCharge::Request {
                id: 11,
                state: "pending".into(),
            },
        ];
        for open in &open {
            assert!(
                matches!(
                    gate(false, Some(open)),
                    Gate::Reject {
                        code: "LOCAL_CHARGE_OPEN",
                        ..
                    }
                ),
                "{open:?}"
            );
            assert!(matches!(
                gate(true, Some(open)),
                Gate::Send { past: Some(_) }
            ));
        }
        assert_eq!(gate(false, None), Gate::Send { past: None });
        assert_eq!(gate(true, None), Gate::Send { past: None });
    }
}
