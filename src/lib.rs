//! issuance-watcher: watches Bunjang point issuances until they settle.
//!
//! The parts, in reading order; each depends only on the ones above it:
//!
//! - [`domain`]: the vocabulary (status, flag kind, observation, decision,
//!   what a webhook sink and its deliveries are, time formats, the business
//!   clock). Depends on nothing.
//! - [`settings`]: the typed, validated configuration.
//! - [`api`]: the Bunjang point API client (signed requests, classified answers).
//! - [`store`]: the SQLite schema and every statement; SQL lives nowhere else.
//! - [`ops`]: how the daemon is seen from outside (logs, metrics, health,
//!   systemd notifications, the HTTP listener).
//! - [`watcher`]: the pure decisions (policy, flags, pacing) and the loop that
//!   moves data between the API and the store.
//! - [`deliver`]: the outbox's events delivered to webhook sinks (signed
//!   Standard Webhooks or Slack text), one worker per sink.
//! - [`web`]: the dashboard: server-rendered pages under `/` on the HTTP
//!   listener, read through the store, with actions for the admin token.
//! - [`app`]: the composition root that builds and runs the daemon.
//! - [`tools`]: the demo and the ground-truth oracle, which drive the watcher
//!   against the simulator.
//! - [`cli`]: the commands, on top of everything.
//!
//! Two workspace crates sit beside it: `bunjang-sim` (`crates/sim`), a
//! faithful simulator of the API for trying and testing without credentials,
//! and `business-clock` (`crates/clock`), the clock the simulator and the
//! watcher share ([`domain::clock`] re-exports it). The simulator depends only
//! on that clock; [`tools`] and [`cli`] use the simulator.
//!
//! `tests/it/architecture.rs` checks this order: each part uses only the parts
//! listed before it, and no two files in one part use each other.
#![forbid(unsafe_code)]

pub mod domain;
pub mod settings;

pub mod api;
pub mod store;

pub mod ops;
pub mod watcher;

pub mod deliver;

pub mod web;

pub mod app;

pub mod tools;

pub mod cli;
