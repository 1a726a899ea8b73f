//! The pure lifecycle model: no I/O, no clock, no locks.
//!
//! At creation an issuance draws its whole future (a [`Schedule`]) from an RNG
//! seeded with the simulator seed and the issuance's sequence number, so the
//! result does not depend on request order or timing. Its status at any instant
//! is then a function of that schedule plus the rare forced changes (API
//! cancellations, `/_sim` forcing). Nothing runs per issuance: a million
//! issuances cost a million small structs and no timers.
//!
//! The parts, each using only the ones before it: `status` (the API's
//! vocabulary), `instants` (milliseconds, KST days, the API's datetime text),
//! `deposit` (when a payer pays, per deposit timing) and `schedule` (the
//! draw and the state machine over it).

mod deposit;
mod instants;
mod schedule;
mod status;

pub use instants::format_kst;
pub use schedule::{
    BANKS, Event, Schedule, State, VBANK_HOLDER, draw, issuance_seed, state_at, timeline,
};
pub use status::Status;
