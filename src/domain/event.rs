//! The event types announced through the outbox (`events.type`) and webhooks.
//! Their names are an interface other programs rely on: never rename one.

use std::fmt;
use std::str::FromStr;

use super::names::{by_name, shown};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// One per recorded transition.
    StatusChanged,
    /// A READY issuance reached a rung of the due-soon lead ladder.
    DueSoon,
    /// Still READY after the due date.
    Overdue,
    /// The watch ended without a terminal status (`not_found`, `rejected`).
    WatchEnded,
    /// The point balance fell below `balance.low_threshold` (once per crossing);
    /// about no issuance.
    BalanceLow,
    /// A sink failing continuously for its `disable_after` was disabled
    /// (once); about no issuance.
    SinkDisabled,
    /// A charge request's POST created an issuance: its virtual account
    /// (bank, account, holder, deadline) is what a person transfers to.
    ChargeCreated,
    /// The API refused a charge request (a 4xx): nothing was created.
    ChargeRefused,
    /// A charge request's outcome is unknown: a charge MAY exist, and a
    /// person must look in the partner console (the one event that must
    /// never be missed); about no issuance.
    ChargeUnknown,
    /// The top-up rule suspended itself (a charge of unknown outcome, or two
    /// refused in a row): it asks for nothing until a person resumes it;
    /// about no issuance.
    TopUpSuspended,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        Self::StatusChanged,
        Self::DueSoon,
        Self::Overdue,
        Self::WatchEnded,
        Self::BalanceLow,
        Self::SinkDisabled,
        Self::ChargeCreated,
        Self::ChargeRefused,
        Self::ChargeUnknown,
        Self::TopUpSuspended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StatusChanged => "issuance.status_changed",
            Self::DueSoon => "issuance.due_soon",
            Self::Overdue => "issuance.overdue",
            Self::WatchEnded => "issuance.watch_ended",
            Self::BalanceLow => "balance.low",
            Self::SinkDisabled => "sink.disabled",
            Self::ChargeCreated => "charge.created",
            Self::ChargeRefused => "charge.refused",
            Self::ChargeUnknown => "charge.unknown",
            Self::TopUpSuspended => "top_up.suspended",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        by_name(&Self::ALL, s, Self::as_str).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
            format!(
                "unknown event type {:?} (one of {})",
                shown(s),
                names.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_through_their_names() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
        }
        let err = "issuance.paid".parse::<EventType>().unwrap_err();
        assert!(err.contains("issuance.status_changed"), "{err}");
    }
}
