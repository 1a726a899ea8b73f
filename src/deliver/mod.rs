//! Delivering the outbox: one worker per configured `[[webhooks]]` sink, each
//! its own task, so a slow, failing or hanging receiver never slows polling or
//! another sink.
//!
//! The parts: `schedule` (pure: what an answer means, when to retry),
//! `assess` (pure: what an attempt comes to for its row and its sink), `message` (pure: the body, the signature, the Slack text), `sender`
//! (one HTTP POST, classified), `ping` (`events ping`: a `webhook.test`
//! message sent once, outside the outbox), `sinks` (the configured sinks,
//! built, registered and started), `holding` (which daemon sends a sink: the loop
//! that takes it) with `hold` (a held sink's renewal and validity) and
//! `worker` (a sink's loop while held: admit events, keep up to its
//! concurrency of attempts in flight, record each as it ends).
//!
//! Several daemons on one database: each sink is sent by the one daemon that
//! holds it (`holding`, `store::holders`); the others wait to take it over.
//!
//! Guarantees, and where they come from:
//! - at least once: a delivery is marked delivered only after a 2xx, in the
//!   database; a crash before that means it is sent again, with the same
//!   `webhook-id` (the event's id, stored);
//! - per issuance in order: a delivery is only read while no earlier open
//!   delivery of its issuance exists for the sink (see `store::events`), and
//!   only by the sink's holder, whose writes are fenced;
//! - no head-of-line blocking: only an issuance's own later events wait for
//!   its slow or failing delivery;
//! - retried with backoff and jitter for the sink's `retry_horizon`; a
//!   `Retry-After` pauses the whole sink until then; a `410 Gone` disables
//!   the sink until an operator clears it;
//! - a receiver that is back gets its backlog at its first 2xx, also after a
//!   restart (the failing state is `sinks.failing_since`).

mod assess;
mod hold;
mod holding;
mod message;
mod ping;
mod schedule;
mod sender;
mod sinks;
mod worker;

pub use message::{signature, slack_text, standard_body};
pub use ping::{Pinged, TEST_EVENT_TYPE, ping, test_event};
pub use schedule::{Answer, Backoff, Verdict, judge, probe_pause, retry_delay};
pub use sinks::{Sink, Sinks};
