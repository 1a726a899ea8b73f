//! issuance-watcher: watches Bunjang point issuances until they settle.
//!
//! Reading order: [`settings`] (what can be configured), [`api`] (the lookup and
//! its outcomes), [`policy`] and [`flags`] (pure decisions), [`store`] (the
//! SQLite schema and its transactions), [`scheduler`] (the loop that ties them
//! together), [`cli`] (the commands).
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod demo;
pub mod flags;
pub mod metrics;
pub mod notify;
pub mod observe;
pub mod pacing;
pub mod policy;
pub mod progress;
pub mod scheduler;
pub mod settings;
pub mod simulator;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod timefmt;
pub mod verify;
