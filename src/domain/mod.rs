//! The leaf vocabulary every other part speaks: issuance statuses, flag kinds,
//! event types, what a webhook sink and its undelivered deliveries are,
//! what a lookup observed, what the policy decided, the two time formats,
//! durations at the edges (`time`) and the business clock. Nothing here
//! depends on any other part of the crate.

pub mod clock;
pub mod decision;
pub mod delivery;
pub mod event;
pub mod excerpt;
pub mod flag;
pub mod money;
pub mod names;
pub mod observation;
pub mod status;
pub mod time;
pub mod timefmt;

pub use clock::Clock;
pub use decision::Decision;
pub use delivery::{DeliveryState, SinkHealth, SinkRowFacts};
pub use event::EventType;
pub use flag::{Flag, FlagKind};
pub use observation::{Observation, Vbank};
pub use status::Status;
